package app

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A prefetch's failure (perhaps a freeze of the instance, not Redis) is not
// answered to the event that waited for it, nor remembered: the event reads
// again.
func TestFailedPrefetchOfTheSubscriptionIDIsReadAgain(t *testing.T) {
	release := make(chan struct{})
	var reads atomic.Int32
	c := &subscriptionCache{ttl: time.Minute, budget: 10 * time.Second, load: func(ctx context.Context) (int64, error) {
		if reads.Add(1) == 1 {
			<-release
			return 0, errors.New("i/o timeout")
		}
		return 7, nil
	}}
	c.prefetch()
	got := make(chan error, 1)
	go func() {
		id, err := c.Get(context.Background())
		if err == nil && id != 7 {
			err = errors.New("wrong id")
		}
		got <- err
	}()
	WaitForGoroutine(t, "(*subscriptionCache).Get", "[select")
	close(release)
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Get after a failed prefetch: %v, want 7", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Get did not return")
	}
	if n := reads.Load(); n != 2 {
		t.Fatalf("%d reads, want 2 (the prefetch, the event's own)", n)
	}
}

// A failure of the event's own read is remembered for a second: with Redis
// gone, every POST would otherwise start a read of its own.
func TestFailedReadOfTheSubscriptionIDIsRememberedBriefly(t *testing.T) {
	var reads atomic.Int32
	c := &subscriptionCache{ttl: time.Minute, budget: 10 * time.Second, load: func(ctx context.Context) (int64, error) {
		reads.Add(1)
		return 0, errors.New("connection refused")
	}}
	for range 3 {
		if _, err := c.Get(context.Background()); err == nil {
			t.Fatal("Get succeeded")
		}
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads for 3 events within a second, want 1", n)
	}
}
