package app

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// WaitForGoroutine waits until one goroutine's stack holds every one of
// parts (a function, the test that started it, a wait state such as
// "[select"): a test's way to know that a request is waiting where it means
// it to before it changes what that request waits for. It fails the test
// after 10 s.
func WaitForGoroutine(t testing.TB, parts ...string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
	goroutines:
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			for _, part := range parts {
				if !strings.Contains(g, part) {
					continue goroutines
				}
			}
			return
		}
	}
	t.Fatalf("no goroutine's stack holds all of %q after 10 s", parts)
}
