package app

import (
	"context"
	"errors"
	"runtime"
	"strings"
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
	waitForAWaiterOf(t, "(*subscriptionCache).Get")
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

func waitForAWaiterOf(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, fn) && strings.Contains(g, "[select") {
				return
			}
		}
	}
	t.Fatalf("nothing waits in %s after 10 s", fn)
}
