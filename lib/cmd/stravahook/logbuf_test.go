package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/logtest"
)

func TestLogBufferDeliversEveryLine(t *testing.T) {
	var out logtest.Buffer
	b := newLogBuffer(&out, 10*time.Millisecond)
	b.Write([]byte("first\n"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "first") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "first") {
		t.Fatal("a buffered line was never flushed")
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); b.Write([]byte("line\n")) }()
	}
	wg.Wait()
	b.Close()
	if n := strings.Count(out.String(), "line\n"); n != 50 {
		t.Fatalf("%d lines after Close, want 50", n)
	}
}
