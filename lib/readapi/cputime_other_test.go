//go:build !unix

package readapi_test

import "time"

func processCPUTime() (time.Duration, bool) { return 0, false }
