// Package clocktest is test support shared by the packages' tests: a clock
// the test sets and advances, handed to code that takes a Now func, so
// tests jump past backoffs and windows instead of sleeping. Only tests
// import it; nothing under api/ may.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a settable time source, safe for the code under test to read
// from its own goroutines while the test moves it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New is a Clock standing at start.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock d forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
