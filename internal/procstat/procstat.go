// Package procstat reads what the benchmarks report about their own process: resident memory from
// /proc/self/status and CPU time of the process or of the calling thread. It has no dependencies
// beyond golang.org/x/sys, so the tests of any package can use it. Off Linux every reading is 0.
package procstat

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// StatusMB is a memory field of /proc/self/status in MiB: VmHWM (peak resident set), VmRSS,
// RssAnon (anonymous memory: the heap, not mapped files). 0 where there is no /proc.
func StatusMB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// ResetPeak sets VmHWM back to the current resident set (Linux clear_refs), so that StatusMB("VmHWM")
// afterwards is the peak of what follows.
func ResetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }
