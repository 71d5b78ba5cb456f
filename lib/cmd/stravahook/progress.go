package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progressEvery is how often a progress line is redrawn.
const progressEvery = 250 * time.Millisecond

// startProgress redraws status() on one line of stderr while a long
// operation runs, when stderr is a terminal; piped or redirected, it
// writes nothing. stop clears the line.
func startProgress(e env, status func() string) (stop func()) {
	return showProgress(e.stderr, isTerminal(e.stderr) && e.getenv("TERM") != "dumb", progressEvery, status)
}

func showProgress(w io.Writer, terminal bool, every time.Duration, status func() string) (stop func()) {
	if !terminal {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-tick.C:
				fmt.Fprintf(w, "\r\033[K%s (%.1f s)", status(), time.Since(start).Seconds())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// isTerminal reports whether w is a character device (a terminal), not a
// pipe, a file or a buffer.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
