package logtest_test

import (
	"sync"
	"testing"

	"github.com/stravahook/stravahook/lib/logtest"
)

// Lines written from many goroutines all arrive, each decoded once.
func TestBufferConcurrentLines(t *testing.T) {
	log, buf := logtest.JSON()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); log.Info("event", "n", i) }()
	}
	wg.Wait()
	lines := buf.WaitLines(t, 20)
	if len(lines) != 20 {
		t.Fatalf("%d lines, want 20", len(lines))
	}
	seen := map[float64]bool{}
	for _, l := range lines {
		if l["msg"] != "event" || l["level"] != "INFO" {
			t.Errorf("line %v, want an info line 'event'", l)
		}
		seen[l["n"].(float64)] = true
	}
	if len(seen) != 20 {
		t.Errorf("%d distinct lines, want 20", len(seen))
	}
}

// An empty buffer has no lines; blank lines are skipped.
func TestBufferBlankLines(t *testing.T) {
	var b logtest.Buffer
	if got := b.Lines(t); len(got) != 0 {
		t.Fatalf("empty buffer: %v", got)
	}
	b.Write([]byte("\n{\"a\":1}\n\n"))
	if got := b.Lines(t); len(got) != 1 || got[0]["a"] != float64(1) {
		t.Fatalf("lines %v, want one {a:1}", got)
	}
	if b.String() != "\n{\"a\":1}\n\n" {
		t.Fatalf("String %q", b.String())
	}
}
