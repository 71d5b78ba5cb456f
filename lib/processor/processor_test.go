package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

const (
	jane = int64(28004310)
	john = int64(134815)
)

func TestDrainCoalescesEventsPerActivity(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	const (
		created         = int64(1491968222)
		createdDeleted  = int64(1491968223)
		createdTwice    = int64(1491968224)
		deleted         = int64(1491968225)
		createdUpdated  = int64(1491968226)
		sameSecondGone  = int64(1491968227)
		deletedRecreate = int64(1491968228)
		// Deleted, then created in the same second: gone all the same.
		sameSecondDeleteFirst = int64(1491968229)
	)
	for _, id := range []int64{created, createdDeleted, createdTwice, createdUpdated, sameSecondGone, deletedRecreate, sameSecondDeleteFirst} {
		e.strava.activity(id, jane)
	}
	e.keepBefore(deleted, jane)
	e.enqueue(
		event(strava.AspectCreate, jane, created, 100),
		event(strava.AspectCreate, jane, createdDeleted, 100),
		event(strava.AspectCreate, jane, createdTwice, 100),
		event(strava.AspectDelete, jane, createdDeleted, 101),
		event(strava.AspectCreate, jane, createdTwice, 102),
		event(strava.AspectDelete, jane, deleted, 103),
		event(strava.AspectCreate, jane, createdUpdated, 104),
		event(strava.AspectUpdate, jane, createdUpdated, 105),
		event(strava.AspectCreate, jane, sameSecondGone, 106),
		event(strava.AspectDelete, jane, sameSecondGone, 106),
		// Made private then public again ("Only You" without activity:read_all).
		event(strava.AspectDelete, jane, deletedRecreate, 107),
		event(strava.AspectCreate, jane, deletedRecreate, 108),
		event(strava.AspectDelete, jane, sameSecondDeleteFirst, 109),
	)
	// Queued a moment later, so claimed after the delete (events queued at
	// the same instant come in key order: create before delete).
	e.clock.Advance(time.Millisecond)
	e.enqueue(event(strava.AspectCreate, jane, sameSecondDeleteFirst, 109))

	sum := e.drain(e.processor(Config{}))

	for id, want := range map[int64]int{created: 1, createdDeleted: 0, createdTwice: 1, deleted: 0, createdUpdated: 1, sameSecondGone: 0, deletedRecreate: 1, sameSecondDeleteFirst: 0} {
		if got := e.strava.calls(id); got != want {
			t.Errorf("GET /activities/%d: %d calls, want %d", id, got, want)
		}
	}
	for _, id := range []int64{created, createdTwice, createdUpdated, deletedRecreate} {
		e.wantKeptFromStrava(id, jane)
	}
	for _, id := range []int64{createdDeleted, deleted, sameSecondGone, sameSecondDeleteFirst} {
		e.wantNotKept(id)
	}
	if n := e.strava.refreshCalls(); n != 0 {
		t.Errorf("%d token refreshes with a fresh token, want 0", n)
	}
	want := Summary{Claimed: 14, Fetched: 4, Kept: 4, Deleted: 4, Skipped: 6}
	if got := withoutTimes(sum); got != want {
		t.Errorf("summary = %+v, want %+v", got, want)
	}
	e.wantQueueEmpty()
	listed, err := e.store.Activities(context.Background(), jane, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 4 {
		t.Errorf("athlete lists %d activities, want 4", len(listed))
	}
}

// withoutTimes drops the fields that vary from run to run.
func withoutTimes(s Summary) Summary {
	s.DurationMS = 0
	s.RateLimitedUntil = nil
	return s
}

func TestDrainOfAnEmptyQueue(t *testing.T) {
	e := newEnv(t)
	sum := e.drain(e.processor(Config{}))
	if got := withoutTimes(sum); got != (Summary{}) {
		t.Errorf("summary = %+v, want zeros", got)
	}
	if e.strava.totalGets()+e.strava.refreshCalls() != 0 {
		t.Error("Strava was called for an empty queue")
	}
}

func TestDrainRefreshesOnlyExpiredTokens(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	// John's token expires in a minute: within the refresh margin.
	_, refresh := e.strava.athlete(john)
	e.save(stored(john, "access-expiring", refresh, e.clock.Now().Add(time.Minute)))
	for i := range int64(5) {
		e.strava.activity(100+i, jane)
		e.strava.activity(200+i, john)
		e.enqueue(event(strava.AspectCreate, jane, 100+i, 10), event(strava.AspectCreate, john, 200+i, 10))
	}

	sum := e.drain(e.processor(Config{Concurrency: 4}))

	if n := e.strava.refreshCalls(); n != 1 {
		t.Errorf("%d token refreshes, want 1 (John's expiring token only)", n)
	}
	if sum.Kept != 10 || e.strava.totalGets() != 10 {
		t.Errorf("kept %d with %d GETs, want 10 and 10", sum.Kept, e.strava.totalGets())
	}
	a, err := e.store.Athlete(context.Background(), john)
	if err != nil {
		t.Fatal(err)
	}
	if a.RefreshToken == refresh || a.AccessToken == "access-expiring" || !a.ExpiresAt.After(e.clock.Now().Add(time.Hour)) {
		t.Errorf("John's rotated tokens were not stored: %#v", a)
	}
	e.wantQueueEmpty()
}

func stored(id int64, access, refresh string, expiresAt time.Time) store.Athlete {
	return store.Athlete{ID: id, Name: "Athlete", AccessToken: access, RefreshToken: refresh, ExpiresAt: expiresAt}
}

func TestTwoDrainsAtOnceFetchEachActivityOnceAndRefreshOnce(t *testing.T) {
	e := newEnv(t)
	_, refresh := e.strava.athlete(jane)
	e.save(stored(jane, "access-expired", refresh, e.clock.Now().Add(-time.Hour)))
	e.connect(john)
	var ids []int64
	for i := range int64(40) {
		owner := jane
		if i%4 == 0 {
			owner = john
		}
		id := 5000 + i
		ids = append(ids, id)
		e.strava.activity(id, owner)
		e.enqueue(event(strava.AspectCreate, owner, id, 10))
	}
	e.strava.delay = 5 * time.Millisecond // keeps both drains busy at once

	cfg := Config{BatchSize: 4, Concurrency: 4}
	first, second := e.processor(cfg), e.processor(cfg)
	var wg sync.WaitGroup
	sums := make([]Summary, 2)
	for i, p := range []*Processor{first, second} {
		wg.Go(func() { sums[i] = e.drain(p) })
	}
	wg.Wait()

	for _, id := range ids {
		if n := e.strava.calls(id); n != 1 {
			t.Errorf("activity %d fetched %d times, want 1", id, n)
		}
	}
	if n := e.strava.refreshCalls(); n != 1 {
		t.Errorf("%d token refreshes, want 1", n)
	}
	if sums[0].Kept+sums[1].Kept != 40 {
		t.Errorf("kept %d + %d, want 40", sums[0].Kept, sums[1].Kept)
	}
	if sums[0].Claimed == 0 || sums[1].Claimed == 0 {
		t.Logf("one drain got no work (%d/%d claimed); the drains did not overlap", sums[0].Claimed, sums[1].Claimed)
	}
	if !e.athleteStored(jane) {
		t.Error("Jane was removed: a second refresh used an already rotated token")
	}
	e.wantQueueEmpty()
}

func TestKilledDrainLosesNothing(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.connect(john)
	var ids []int64
	for i := range int64(24) {
		owner := []int64{jane, john}[i%2]
		id := 7000 + i
		ids = append(ids, id)
		e.strava.activity(id, owner)
		e.enqueue(event(strava.AspectCreate, owner, id, 10))
	}
	e.strava.holdAfter(t, 8, 100)

	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{Concurrency: 4}
	done := make(chan error, 1)
	var sum Summary
	go func() {
		var err error
		sum, err = e.processor(cfg).Drain(ctx)
		done <- err
	}()
	e.strava.waitBlocked(t, 4) // every worker is stuck in a call
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Drain did not return after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Drain error = %v, want context.Canceled", err)
	}
	if sum.Kept != 8 || sum.Retried != 0 || sum.Dead != 0 {
		t.Errorf("killed drain: %+v, want 8 kept, nothing failed", sum)
	}
	s := e.stats()
	if s.Ready+s.Delayed != 16 || s.Dead != 0 {
		t.Errorf("after the killed drain the queue holds %+v, want the 16 unfinished events", s)
	}

	// A new drain before the lease ends finds nothing; after it, everything.
	closeOnce(e.strava)
	if sum := e.drain(e.processor(cfg)); sum.Claimed != 0 {
		t.Errorf("a drain during the lease claimed %d events", sum.Claimed)
	}
	e.clock.Advance(DefaultLease + time.Second)
	sum = e.drain(e.processor(cfg))
	if sum.Claimed != 16 || sum.Kept != 16 {
		t.Errorf("drain after the lease: %+v, want 16 claimed and kept", sum)
	}
	for i, id := range ids {
		e.wantKeptFromStrava(id, []int64{jane, john}[i%2])
	}
	for _, athlete := range []int64{jane, john} {
		listed, err := e.store.Activities(context.Background(), athlete, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(listed) != 12 {
			t.Errorf("athlete %d lists %d activities, want 12", athlete, len(listed))
		}
	}
	e.wantQueueEmpty()
}

var closeMu sync.Mutex

// holdAfter makes the stand-in's GETs numbered above n wait at a gate
// (until closeOnce, at the latest when the test ends) and report their
// activity ids on blocked, which holds capacity of them.
func (s *standIn) holdAfter(t *testing.T, n, capacity int) {
	s.gate = make(chan struct{})
	s.blockAfter = n
	s.blocked = make(chan int64, capacity)
	t.Cleanup(func() { closeOnce(s) })
}

func closeOnce(s *standIn) {
	closeMu.Lock()
	defer closeMu.Unlock()
	select {
	case <-s.gate:
	default:
		close(s.gate)
	}
}

func TestServerErrorsAreRetriedWithBackoffThenDead(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	const id = int64(4242)
	e.strava.activity(id, jane)
	e.strava.status = func(call int, _ int64) int { return http.StatusServiceUnavailable }
	e.enqueue(event(strava.AspectCreate, jane, id, 10))
	p := e.processor(Config{MaxAttempts: 3})

	// Attempt n waits within [base·2^(n-1), 1.5·base·2^(n-1)].
	for attempt, maxWait := range []time.Duration{30 * time.Second, time.Minute} {
		sum := e.drain(p)
		if sum.Retried != 1 || sum.Dead != 0 {
			t.Fatalf("attempt %d: %+v, want retried", attempt+1, sum)
		}
		if s := e.stats(); s.Ready != 0 || s.Delayed != 1 {
			t.Fatalf("attempt %d: queue %+v, want the event delayed", attempt+1, s)
		}
		e.clock.Advance(maxWait - time.Millisecond)
		if sum := e.drain(p); sum.Claimed != 0 {
			t.Fatalf("attempt %d: retried before the backoff (%s)", attempt+1, maxWait)
		}
		e.clock.Advance(maxWait/2 + time.Millisecond)
	}
	sum := e.drain(p)
	if sum.Dead != 1 || sum.Retried != 0 {
		t.Fatalf("last attempt: %+v, want dead", sum)
	}
	if n := e.strava.calls(id); n != 3 {
		t.Errorf("%d GETs, want 3", n)
	}
	dead := e.dead()
	if len(dead) != 1 || dead[0].Attempts != 3 || !strings.Contains(dead[0].Error, "503") || !strings.Contains(dead[0].Error, "call 3") {
		t.Errorf("dead = %+v, want one event with 3 attempts and the last error (503, call 3)", dead)
	}
	e.wantNotKept(id)
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	d := &drain{p: New(Config{}, nil, nil, nil, nil)}
	for attempt, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 11: MaxBackoff, 64: MaxBackoff, 1000: MaxBackoff} {
		for range 50 {
			if got := d.backoff(attempt); got < want || got > min(want*3/2, MaxBackoff) {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, got, want, min(want*3/2, MaxBackoff))
			}
		}
	}
}

func TestRateLimit429StopsTheDrainWithoutCountingAttempts(t *testing.T) {
	for _, concurrency := range []int{1, 4} {
		t.Run(fmt.Sprint("concurrency=", concurrency), func(t *testing.T) {
			e := newEnv(t)
			e.connect(jane)
			var ids []int64
			for i := range int64(20) {
				ids = append(ids, 300+i)
				e.strava.activity(300+i, jane)
				e.enqueue(event(strava.AspectCreate, jane, 300+i, 10))
			}
			e.strava.UseUpWindowAfter(5) // others use up the window after our 5th call
			p := e.processor(Config{Concurrency: concurrency})

			sum := e.drain(p)
			windowEnd := strava.NextQuarterHour(e.clock.Now())
			if !sum.RateLimited || sum.RateLimitedUntil == nil || !sum.RateLimitedUntil.Equal(windowEnd) {
				t.Errorf("summary %+v, want rate limited until %s", sum, windowEnd)
			}
			past := e.strava.rejected()
			if past < 1 || past > concurrency {
				t.Errorf("%d calls answered 429, want 1..%d", past, concurrency)
			}
			if sum.Kept != 5 || sum.Retried != 0 || sum.Dead != 0 || sum.Remaining != 15 {
				t.Errorf("summary %+v, want 5 kept, 15 remaining, no attempt counted", sum)
			}
			until, err := e.store.RateLimitedUntil(context.Background())
			if err != nil || !until.Equal(windowEnd) {
				t.Errorf("RateLimitedUntil = %v, %v; want %s", until, err, windowEnd)
			}

			// Before the window ends: no call at all.
			calls := e.strava.totalGets()
			e.clock.Set(windowEnd.Add(-time.Second))
			if sum := e.drain(p); !sum.RateLimited || sum.Claimed != 0 {
				t.Errorf("drain inside the window: %+v, want rate limited, nothing claimed", sum)
			}
			if n := e.strava.totalGets(); n != calls {
				t.Errorf("%d calls inside the window", n-calls)
			}

			// The released events come back at the window end with no
			// attempt counted.
			e.clock.Set(windowEnd)
			e.strava.newWindow()
			msgs, err := e.queue.Claim(context.Background(), 100, time.Minute)
			if err != nil || len(msgs) != 15 {
				t.Fatalf("claim at the window end: %d events, %v; want 15", len(msgs), err)
			}
			var claimed []string
			for _, m := range msgs {
				if m.Attempts != 0 {
					t.Errorf("event %s has %d attempts, want 0", m.ID, m.Attempts)
				}
				claimed = append(claimed, m.ID)
			}
			if _, err := e.queue.Release(context.Background(), msgs[0].Token, e.clock.Now(), claimed...); err != nil {
				t.Fatal(err)
			}

			sum = e.drain(p)
			if sum.RateLimited || sum.Kept != 15 {
				t.Errorf("drain after the window: %+v, want 15 kept", sum)
			}
			for _, id := range ids {
				e.wantKeptFromStrava(id, jane)
			}
			e.wantQueueEmpty()
		})
	}
}

func TestUsageAtTheLimitKeepsTheActivityThenStops(t *testing.T) {
	for _, tc := range []struct {
		name              string
		concurrency       int
		limit15, limitDay int
		calls             int
		windowEnd         func(time.Time) time.Time
	}{
		{"15-minute", 1, 3, 30000, 3, strava.NextQuarterHour},
		{"daily", 1, 600, 2, 2, strava.NextUTCMidnight},
		// Calls in flight stay within what the last answer said is left.
		{"15-minute, concurrency 8", 8, 5, 30000, 5, strava.NextQuarterHour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.connect(jane)
			e.queueCreates(jane, 600, 10)
			e.strava.setLimits(tc.limit15, tc.limitDay)

			sum := e.drain(e.processor(Config{Concurrency: tc.concurrency}))

			if n := e.strava.totalGets(); n != tc.calls {
				t.Errorf("%d GETs, want %d (none past the limit)", n, tc.calls)
			}
			if e.strava.rejected() != 0 {
				t.Errorf("%d calls past the limit", e.strava.rejected())
			}
			want := tc.windowEnd(e.clock.Now())
			if sum.Kept != tc.calls || !sum.RateLimited || !sum.RateLimitedUntil.Equal(want) || sum.Remaining != int64(10-tc.calls) {
				t.Errorf("summary %+v, want %d kept, rate limited until %s", sum, tc.calls, want)
			}
			kept := 0
			for i := range int64(10) {
				if _, ok := e.kept(600 + i); ok {
					e.wantKeptFromStrava(600+i, jane)
					kept++
				}
			}
			if kept != tc.calls {
				t.Errorf("%d activities kept, want %d", kept, tc.calls)
			}
		})
	}
}

func TestRateLimitRememberedByAnEarlierDrainMeansNoCall(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.queueCreates(jane, 1, 1)
	until := e.clock.Now().Add(10 * time.Minute).Truncate(time.Millisecond)
	if err := e.store.SetRateLimitedUntil(context.Background(), until); err != nil {
		t.Fatal(err)
	}
	sum := e.drain(e.processor(Config{}))
	if !sum.RateLimited || sum.RateLimitedUntil == nil || !sum.RateLimitedUntil.Equal(until) || sum.Claimed != 0 || sum.Remaining != 1 {
		t.Errorf("summary %+v, want rate limited until %s and nothing claimed", sum, until)
	}
	if e.strava.totalGets()+e.strava.refreshCalls() != 0 {
		t.Error("Strava was called while rate limited")
	}
}

func TestNotFoundIsTreatedAsDeleted(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	const id = int64(8080)
	e.keepBefore(id, jane) // kept, then made private or deleted on Strava
	e.enqueue(event(strava.AspectUpdate, jane, id, 10))

	sum := e.drain(e.processor(Config{}))

	if sum.Deleted != 1 || sum.Fetched != 0 || e.strava.calls(id) != 1 {
		t.Errorf("summary %+v after %d GETs, want 1 deleted after 1 GET", sum, e.strava.calls(id))
	}
	e.wantNotKept(id)
	e.wantQueueEmpty()
}

func TestUnauthorizedRefreshesOnceThenFetches(t *testing.T) {
	e := newEnv(t)
	// The stored access token was revoked on Strava's side, though not
	// expired; the refresh token still works.
	_, refresh := e.strava.athlete(jane)
	e.save(stored(jane, "access-revoked", refresh, e.clock.Now().Add(time.Hour)))
	e.queueCreates(jane, 900, 3)

	sum := e.drain(e.processor(Config{Concurrency: 3}))

	if n := e.strava.refreshCalls(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	if sum.Kept != 3 || sum.Deleted != 0 {
		t.Errorf("summary %+v, want 3 kept", sum)
	}
	for i := range int64(3) {
		e.wantKeptFromStrava(900+i, jane)
	}
	e.wantQueueEmpty()
}

// A refused refresh is not a deauthorization (a drain that died after
// Strava rotated the token ends the same way): the athlete is marked as
// needing to reconnect, nothing of theirs is deleted, and their events are
// held without spending an attempt until they connect again.
func TestRefusedRefreshHoldsEventsUntilReconnect(t *testing.T) {
	e := newEnv(t)
	e.save(stored(jane, "access-revoked", "refresh-revoked", e.clock.Now().Add(time.Hour)))
	e.connect(john)
	e.keepBefore(10, jane)
	e.keepBefore(11, jane)
	e.keepBefore(20, john)
	e.queueCreates(jane, 12, 3)
	e.queueCreates(john, 21, 1)

	sum := e.drain(e.processor(Config{Concurrency: 4}))

	a, err := e.store.Athlete(context.Background(), jane)
	if err != nil || !a.NeedsReconnect() || a.ReconnectSince.IsZero() {
		t.Fatalf("Jane = %+v, %v; want stored and marked as needing to reconnect", a, err)
	}
	for _, id := range []int64{10, 11} {
		if _, ok := e.kept(id); !ok {
			t.Errorf("Jane's kept activity %d was deleted", id)
		}
	}
	e.wantKeptFromStrava(21, john)
	if n := e.strava.refreshCalls(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	want := Summary{Claimed: 4, Fetched: 1, Kept: 1, Held: 3}
	if got := withoutTimes(sum); got != want {
		t.Errorf("summary %+v, want %+v", got, want)
	}
	if s := e.stats(); s.Held != 3 || s.Ready != 0 || s.Delayed != 0 || s.Dead != 0 {
		t.Errorf("queue %+v, want Jane's 3 events held", s)
	}

	// A new event for Jane: held too, without asking Strava again.
	e.strava.activity(15, jane)
	e.enqueue(event(strava.AspectCreate, jane, 15, 20))
	getsBefore := e.strava.totalGets()
	sum = e.drain(e.processor(Config{}))
	if sum.Held != 1 || e.strava.refreshCalls() != 1 || e.strava.totalGets() != getsBefore {
		t.Errorf("second drain %+v after %d refreshes, %d more GETs; want the event held without a call",
			sum, e.strava.refreshCalls(), e.strava.totalGets()-getsBefore)
	}

	// Jane connects again, and the release that the connect callback makes
	// right after saving her is lost (a crash in between): the next drain
	// releases her held events itself, with no attempt spent.
	access, refresh := e.strava.athlete(jane)
	e.save(stored(jane, access, refresh, e.clock.Now().Add(time.Hour)))
	sum = e.drain(e.processor(Config{}))
	if sum.Kept != 4 || sum.Retried != 0 || sum.Dead != 0 {
		t.Errorf("after reconnecting: %+v, want 4 kept", sum)
	}
	for _, id := range []int64{12, 13, 14, 15} {
		e.wantKeptFromStrava(id, jane)
	}
	e.wantQueueEmpty()
}

func TestUnauthorizedTwiceIsTreatedAsDeleted(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	const id = int64(401401)
	e.strava.activity(id, jane)
	e.keepBefore(id, jane)
	e.strava.status = func(_ int, got int64) int {
		if got == id {
			return http.StatusUnauthorized // e.g. a scope the athlete did not grant
		}
		return 0
	}
	e.enqueue(event(strava.AspectUpdate, jane, id, 10))

	sum := e.drain(e.processor(Config{}))

	if e.strava.calls(id) != 2 || e.strava.refreshCalls() != 1 {
		t.Errorf("%d GETs and %d refreshes, want 2 and 1", e.strava.calls(id), e.strava.refreshCalls())
	}
	if sum.Deleted != 1 || sum.Deauthorized != 0 {
		t.Errorf("summary %+v, want 1 deleted", sum)
	}
	e.wantNotKept(id)
	if !e.athleteStored(jane) {
		t.Error("Jane was removed")
	}
	e.wantQueueEmpty()
}

func TestDeauthorizationIsConfirmedWithStravaFirst(t *testing.T) {
	t.Run("forged", func(t *testing.T) {
		e := newEnv(t)
		e.connect(jane)
		e.keepBefore(10, jane)
		e.enqueue(deauthorization(jane, 10))

		sum := e.drain(e.processor(Config{}))

		if !e.athleteStored(jane) {
			t.Error("Jane was removed on a deauthorization Strava did not confirm")
		}
		if _, ok := e.kept(10); !ok {
			t.Error("Jane's activity was deleted on a deauthorization Strava did not confirm")
		}
		if e.strava.refreshCalls() != 1 || sum.Deauthorized != 0 || sum.Skipped != 1 {
			t.Errorf("summary %+v after %d refreshes, want 1 refresh, 1 skipped", sum, e.strava.refreshCalls())
		}
		e.wantQueueEmpty()
	})
	t.Run("real", func(t *testing.T) {
		e := newEnv(t)
		jane := e.connect(jane)
		e.connect(john)
		e.keepBefore(10, jane.ID)
		e.keepBefore(11, jane.ID)
		e.keepBefore(20, john)
		e.strava.activity(12, jane.ID)
		e.strava.activity(21, john)
		// Jane revoked access on Strava: her refresh token is refused.
		e.strava.Revoke(jane.ID)
		e.enqueue(
			event(strava.AspectCreate, jane.ID, 12, 10),
			deauthorization(jane.ID, 11),
			event(strava.AspectCreate, john, 21, 12),
		)

		sum := e.drain(e.processor(Config{}))

		if e.athleteStored(jane.ID) {
			t.Error("Jane's tokens are still stored")
		}
		for _, id := range []int64{10, 11, 12} {
			e.wantNotKept(id)
		}
		if e.strava.calls(12) != 0 {
			t.Error("an activity of the deauthorized athlete was fetched")
		}
		if !e.athleteStored(john) {
			t.Error("John was removed")
		}
		if _, ok := e.kept(20); !ok {
			t.Error("John's kept activity was deleted")
		}
		e.wantKeptFromStrava(21, john)
		if sum.Deauthorized != 1 || sum.Kept != 1 || sum.Skipped != 1 || sum.Dead != 0 {
			t.Errorf("summary %+v, want 1 deauthorized, 1 kept, Jane's create skipped", sum)
		}
		e.wantQueueEmpty()
	})
	t.Run("athlete not stored", func(t *testing.T) {
		e := newEnv(t)
		e.enqueue(deauthorization(jane, 10))
		sum := e.drain(e.processor(Config{}))
		if e.strava.refreshCalls() != 0 || sum.Dropped != 1 {
			t.Errorf("summary %+v after %d refreshes, want dropped without a call", sum, e.strava.refreshCalls())
		}
		e.wantQueueEmpty()
	})
	t.Run("token endpoint down", func(t *testing.T) {
		e := newEnv(t)
		e.connect(jane)
		e.keepBefore(10, jane)
		e.strava.refreshStatus = func() int { return http.StatusBadGateway }
		e.enqueue(deauthorization(jane, 10))
		sum := e.drain(e.processor(Config{}))
		if sum.Retried != 1 || sum.Deauthorized != 0 {
			t.Errorf("summary %+v, want the event retried", sum)
		}
		if !e.athleteStored(jane) {
			t.Error("Jane was removed though Strava did not answer")
		}
		if _, ok := e.kept(10); !ok {
			t.Error("Jane's activity was deleted though Strava did not answer")
		}
	})
}

// Anyone can post events for any athlete id: those of athletes who are not
// connected cost no Strava call, never reach the dead list, and leave
// nothing in Redis (not even a dedupe record).
func TestEventsOfAthletesNotConnectedAreDropped(t *testing.T) {
	e := newEnv(t)
	const stranger = int64(999)
	e.strava.activity(77, stranger)
	e.enqueue(event(strava.AspectCreate, stranger, 77, 10), event(strava.AspectCreate, stranger, 78, 11),
		event(strava.AspectDelete, stranger+1, 79, 11))

	sum := e.drain(e.processor(Config{}))

	if e.strava.totalGets()+e.strava.refreshCalls() != 0 {
		t.Errorf("%d GETs, %d refreshes for athletes without tokens", e.strava.totalGets(), e.strava.refreshCalls())
	}
	if want := (Summary{Claimed: 3, Dropped: 3}); withoutTimes(sum) != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if dead := e.dead(); len(dead) != 0 {
		t.Errorf("dead = %+v, want none", dead)
	}
	if keys := e.redis.Keys(t); len(keys) != 0 {
		t.Errorf("keys left in redis: %v", keys)
	}
	e.wantNotKept(77)
}

func TestUndecodablePayloadIsDead(t *testing.T) {
	e := newEnv(t)
	if _, err := e.queue.Enqueue(context.Background(), "garbage", []byte(`{"object_type":"activity"`)); err != nil {
		t.Fatal(err)
	}
	sum := e.drain(e.processor(Config{}))
	dead := e.dead()
	if sum.Dead != 1 || len(dead) != 1 || !strings.HasPrefix(dead[0].Error, "undecodable payload") {
		t.Errorf("summary %+v, dead %+v; want the event dead as undecodable", sum, dead)
	}
}

func TestSpentBudgetHandsUnstartedEventsBack(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.queueCreates(jane, 50, 5)
	// The first call outlasts the budget: it starts after the drain did
	// and lasts the whole budget. The budget is long enough for that call
	// to start on a loaded machine under -race (50 ms was not always: no
	// call, nothing kept).
	const budget = time.Second
	e.strava.delay = budget

	sum := e.drain(e.processor(Config{Budget: budget, Concurrency: 1}))

	if sum.Kept != 1 || e.strava.totalGets() != 1 {
		t.Errorf("summary %+v after %d GETs, want 1 kept", sum, e.strava.totalGets())
	}
	if s := e.stats(); s.Ready != 4 || s.Leased != 0 {
		t.Errorf("queue %+v, want the 4 unstarted events ready again at once", s)
	}
	e.strava.delay = 0
	if sum := e.drain(e.processor(Config{})); sum.Kept != 4 {
		t.Errorf("next drain kept %d, want 4", sum.Kept)
	}
	e.wantQueueEmpty()
}

// A drain with Config.Idle keeps watching the queue when it finds it
// empty: an event queued while it waits is worked by the same drain, and
// the drain ends when Idle says 0.
func TestIdleDrainWorksEventsQueuedWhileItWaits(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	asked := 0
	idle := func(context.Context) time.Duration {
		asked++
		if asked == 1 {
			e.queueCreates(jane, 60, 1) // arrives while the drain waits
			return time.Millisecond
		}
		return 0
	}

	sum := e.drain(e.processor(Config{Idle: idle}))

	if sum.Claimed != 1 || sum.Kept != 1 {
		t.Errorf("summary %+v, want the event queued while idle claimed and kept", sum)
	}
	if asked != 2 {
		t.Errorf("Idle asked %d times, want 2 (the drain ends when it answers 0)", asked)
	}
	e.wantKeptFromStrava(60, jane)
}

func TestSummaryJSON(t *testing.T) {
	until := time.Date(2030, 1, 7, 10, 15, 0, 0, time.UTC)
	b, err := json.Marshal(Summary{RateLimited: true, RateLimitedUntil: &until})
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"claimed", "dead", "deauthorized", "deleted", "dropped", "duration_ms", "fetched", "held", "kept", "rate_limited", "rate_limited_until", "remaining", "retried", "skipped"}
	if !slices.Equal(keys, want) {
		t.Errorf("JSON keys %v, want %v", keys, want)
	}
	if fields["rate_limited_until"] != "2030-01-07T10:15:00Z" {
		t.Errorf("rate_limited_until = %v", fields["rate_limited_until"])
	}
}

func TestRateLimitedTokenRefreshStopsTheDrain(t *testing.T) {
	e := newEnv(t)
	_, refresh := e.strava.athlete(jane)
	e.save(stored(jane, "access-expired", refresh, e.clock.Now().Add(-time.Minute)))
	e.queueCreates(jane, 1, 1)
	e.strava.refreshStatus = func() int { return http.StatusTooManyRequests }

	sum := e.drain(e.processor(Config{}))

	if !sum.RateLimited || sum.Retried != 0 || sum.Dead != 0 || sum.Deauthorized != 0 || sum.Remaining != 1 {
		t.Errorf("summary %+v, want rate limited with the event left queued", sum)
	}
	if e.strava.refreshCalls() != 1 || e.strava.totalGets() != 0 {
		t.Errorf("%d refreshes and %d GETs, want 1 and 0", e.strava.refreshCalls(), e.strava.totalGets())
	}
	if !e.athleteStored(jane) {
		t.Error("Jane was removed over a 429")
	}
}

func TestRedisLostMidDrainLosesNothing(t *testing.T) {
	e := newEnv(t)
	redis := &cuttable{Client: e.cmds}
	cutQueue := queue.New(redis, e.redis.Prefix+"queue:", queue.WithClock(e.clock.Now))
	cutStore := store.New(redis, e.redis.Prefix)
	cutStore.Now = e.clock.Now

	e.connect(jane)
	e.queueCreates(jane, 30, 6)
	e.strava.holdAfter(t, 1, 10)

	done := make(chan error, 1)
	go func() {
		p := New(Config{Concurrency: 6, Now: e.clock.Now}, cutQueue, cutStore, e.client, testLogger(t))
		_, err := p.Drain(context.Background())
		done <- err
	}()
	e.strava.waitBlocked(t, 5)
	redis.cut.Store(true) // Redis goes away while Strava answers
	closeOnce(e.strava)
	select {
	case err := <-done:
		if err == nil {
			t.Error("Drain reported success without Redis")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Drain did not return with Redis gone")
	}

	e.clock.Advance(DefaultLease + time.Second)
	sum := e.drain(e.processor(Config{}))
	// None was acked: the batch's ack comes after its work, and Redis was
	// gone by then.
	if sum.Claimed != 6 || sum.Kept != 6 {
		t.Errorf("drain after Redis came back: %+v, want all 6 claimed and kept", sum)
	}
	for i := range int64(6) {
		e.wantKeptFromStrava(30+i, jane)
	}
	e.wantQueueEmpty()
}

// An athlete removed (by `athlete remove` or another drain's confirmed
// deauthorization) while this drain fetched their activity: the fetched
// activity is not kept, so their data does not come back.
func TestAthleteRemovedDuringTheFetchKeepsNothing(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	const id = int64(7070)
	e.strava.activity(id, jane)
	e.strava.status = func(int, int64) int {
		if _, err := e.store.RemoveAthlete(context.Background(), jane); err != nil {
			t.Errorf("remove athlete: %v", err)
		}
		return 0 // answer the GET normally
	}
	e.enqueue(event(strava.AspectCreate, jane, id, 10))

	sum := e.drain(e.processor(Config{}))

	if sum.Kept != 0 || sum.Dead != 0 || sum.Retried != 0 || e.strava.calls(id) != 1 {
		t.Errorf("summary %+v after %d GETs, want nothing kept, retried or dead after 1 GET", sum, e.strava.calls(id))
	}
	e.wantNotKept(id)
	if e.athleteStored(jane) {
		t.Error("the removed athlete is stored again")
	}
	e.wantQueueEmpty()
}

// The lease always outlasts the budget plus the work started at its end,
// so that a long `process -budget` never lets another drain take events
// this one is still working on.
func TestLeaseOutlastsTheBudget(t *testing.T) {
	for _, budget := range []time.Duration{0, 8 * time.Second, 10 * time.Minute} {
		cfg := Config{Budget: budget}.withDefaults()
		if cfg.Lease < cfg.Budget+callTimeout+tokenTimeout {
			t.Errorf("budget %s: lease %s, want at least budget + a token wait + a Strava call", cfg.Budget, cfg.Lease)
		}
	}
	if cfg := (Config{Budget: time.Second, Lease: time.Hour}).withDefaults(); cfg.Lease != time.Hour {
		t.Errorf("a longer configured lease was changed to %s", cfg.Lease)
	}
}

// A deauthorization event for an athlete who must reconnect cannot be
// confirmed by a refresh: their refresh token is refused whether they
// revoked access or a drain died after Strava rotated it (and anyone can
// post the event). Their stored access token answers instead while it has
// not expired; once it has, nothing can confirm and the event is applied.
func TestDeauthorizationOfAnAthleteWhoMustReconnect(t *testing.T) {
	setup := func(t *testing.T, expiresIn time.Duration) *env {
		e := newEnv(t)
		access, _ := e.strava.athlete(jane)
		// The refresh token stored was rotated away by a drain that died.
		e.save(stored(jane, access, "refresh-rotated-away", e.clock.Now().Add(expiresIn)))
		key, field := e.store.ReconnectGuard(jane)
		if err := e.redis.Client.Do(context.Background(), e.redis.Client.B().Hset().Key(key).FieldValue().
			FieldValue(field, "Strava refused the refresh token").Build()).Error(); err != nil {
			t.Fatal(err)
		}
		e.keepBefore(10, jane)
		e.enqueue(deauthorization(jane, 10))
		return e
	}
	t.Run("forged: the access token still works", func(t *testing.T) {
		e := setup(t, time.Hour)
		sum := e.drain(e.processor(Config{}))
		if !e.athleteStored(jane) {
			t.Error("Jane was removed though Strava still accepts her access token")
		}
		if _, ok := e.kept(10); !ok {
			t.Error("Jane's kept activity was deleted though Strava still accepts her access token")
		}
		if n, r := e.strava.athleteCalls(), e.strava.refreshCalls(); n != 1 || r != 0 {
			t.Errorf("%d athlete calls and %d refreshes, want 1 and 0", n, r)
		}
		if sum.Deauthorized != 0 || sum.Skipped != 1 {
			t.Errorf("summary %+v, want the event skipped", sum)
		}
		e.wantQueueEmpty()
	})
	for _, tc := range []struct {
		name          string
		expiresIn     time.Duration
		revoked       bool
		wantAthleteGs int // GET /api/v3/athlete calls
	}{
		{name: "real: the access token is refused", expiresIn: time.Hour, revoked: true, wantAthleteGs: 1},
		{name: "access token expired: applied without a call", expiresIn: -time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, tc.expiresIn)
			if tc.revoked {
				e.strava.Revoke(jane)
			}
			sum := e.drain(e.processor(Config{}))
			if e.athleteStored(jane) {
				t.Error("Jane's tokens are still stored")
			}
			e.wantNotKept(10)
			if n, r := e.strava.athleteCalls(), e.strava.refreshCalls(); n != tc.wantAthleteGs || r != 0 {
				t.Errorf("%d athlete calls and %d refreshes, want %d and 0", n, r, tc.wantAthleteGs)
			}
			if sum.Deauthorized != 1 {
				t.Errorf("summary %+v, want 1 deauthorized", sum)
			}
			e.wantQueueEmpty()
		})
	}
}
