//go:build !linux

package procstat

// ThreadCPU is unavailable here.
func ThreadCPU() float64 { return 0 }

// ProcessCPU is unavailable here.
func ProcessCPU() float64 { return 0 }
