package clocktest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/clocktest"
)

func TestClockStandsUntilMoved(t *testing.T) {
	start := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	c := clocktest.New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now %s, want %s", got, start)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Advance(time.Minute); _ = c.Now() }()
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(10*time.Minute); !got.Equal(want) {
		t.Fatalf("after ten minutes: %s, want %s", got, want)
	}
	c.Set(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("after Set: %s, want %s", got, start)
	}
}
