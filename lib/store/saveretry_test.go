package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// failNextDo is a Redis client whose next command, once armed, fails
// without reaching the server (a dropped connection, as far as the caller
// can tell); every other command goes through.
type failNextDo struct {
	rueidis.Client
	armed  atomic.Bool
	failed atomic.Int32
}

func (c *failNextDo) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if c.armed.CompareAndSwap(true, false) {
		c.failed.Add(1)
		dead, cancel := context.WithCancel(ctx)
		cancel()
		return c.Client.Do(dead, cmd)
	}
	return c.Client.Do(ctx, cmd)
}

// Strava has rotated the refresh token, so the old one is dead: a save of
// the new pair that fails once is tried again, and the athlete keeps a
// working token instead of having to reconnect.
func TestAccessTokenSaveFailingOnceIsRetried(t *testing.T) {
	_, r := newStore(t)
	client := &failNextDo{Client: r.Client}
	s := New(client, r.Prefix)
	saveAthlete(t, s, expiredAthlete(1))
	f := &fakeStrava{during: func() { client.armed.Store(true) }}
	var pauses []time.Duration
	s.sleep = func(d time.Duration) { pauses = append(pauses, d) }

	tok, err := s.AccessToken(testCtx(t), 1, f.refresh)
	if err != nil || tok != "access-1" {
		t.Fatalf("AccessToken = %q, %v with the save failing once; want access-1", tok, err)
	}
	if n := client.failed.Load(); n != 1 {
		t.Fatalf("%d commands failed, want the save's first try", n)
	}
	if h := storedTokens(t, s, r, 1); h["access_token"] != "access-1" || h["refresh_token"] != "refresh-1" {
		t.Errorf("stored %v, want the rotated pair access-1/refresh-1", h)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	// A moment for a dropped connection to come back before trying again.
	if len(pauses) != 1 || pauses[0] != 100*time.Millisecond {
		t.Errorf("paused %v before the retry, want 100ms once", pauses)
	}
}

// A caller waiting for another's refresh looks again soon, then less and
// less often, but never less than every lockPollMax: each pause is between
// half and all of 10 ms, 20 ms, 40 ms, … up to 250 ms.
func TestWaitingForAnotherRefreshLooksAgainWithinTheBackoff(t *testing.T) {
	s, r := newStore(t)
	saveAthlete(t, s, expiredAthlete(1))
	// Another drain holds the lock for longer than we look.
	if err := r.Client.Do(testCtx(t), r.Client.B().Set().Key(s.refreshLockKey(1)).Value("other-drain").Px(time.Minute).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{10, 20, 40, 80, 160, 250, 250}
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var pauses []time.Duration
	s.lockBusy = func(_ context.Context, pause time.Duration) {
		pauses = append(pauses, pause)
		if len(pauses) == len(want) {
			cancel()
		}
	}
	f := &fakeStrava{}
	if _, err := s.AccessToken(ctx, 1, f.refresh); err == nil {
		t.Fatal("AccessToken returned without the lock")
	}
	if len(pauses) != len(want) {
		t.Fatalf("%d pauses, want %d", len(pauses), len(want))
	}
	for i, p := range pauses {
		if w := want[i] * time.Millisecond; p < w/2 || p > w {
			t.Errorf("pause %d = %s, want between %s and %s", i+1, p, w/2, w)
		}
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("refresh called %d times while another drain held the lock; want 0", n)
	}
}
