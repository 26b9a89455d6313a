package procstat

import "golang.org/x/sys/unix"

// ThreadCPU is the CPU time of the calling OS thread, in seconds: a loop pinned to its thread
// (runtime.LockOSThread) is timed by the CPU it used, which other processes on a shared machine
// disturb far less than the wall clock.
func ThreadCPU() float64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// ProcessCPU is the CPU time (user+system) of the whole process, in seconds.
func ProcessCPU() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
