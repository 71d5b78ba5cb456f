//go:build unix

package readapi_test

import (
	"syscall"
	"time"
)

// processCPUTime is the CPU time (user and system) this test process has
// used: on a shared, loaded machine it says what an answer costs when
// wall time mostly says how busy the neighbours are.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
