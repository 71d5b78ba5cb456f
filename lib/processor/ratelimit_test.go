package processor

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/logtest"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// rateLimitedDrain queues n creates of a connected athlete and drains them
// against a Strava answering every GET with 429 (with retryAfter as its
// Retry-After, if any) while its usage headers show room: what other
// applications' traffic, or Strava's own throttling, can give.
func rateLimitedDrain(t *testing.T, n int, retryAfter string) (*env, *standIn, Summary) {
	t.Helper()
	e, api, sum, _ := rateLimitedDrainLogged(t, n, retryAfter)
	return e, api, sum
}

// rateLimitedDrainLogged is rateLimitedDrain with the drain's log kept.
func rateLimitedDrainLogged(t *testing.T, n int, retryAfter string) (*env, *standIn, Summary, *logtest.Buffer) {
	t.Helper()
	e := newEnv(t)
	e.connect(jane)
	e.queueCreates(jane, 7000, n)
	e.strava.FailNext(stravatest.RouteActivity, 1<<30, http.StatusTooManyRequests)
	if retryAfter != "" {
		e.strava.Wrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			w.Header().Set("Retry-After", retryAfter)
			next.ServeHTTP(w, r)
		})
	}
	logs := &logtest.Buffer{}
	p := New(Config{Now: e.clock.Now}, e.queue, e.store, e.client, slog.New(slog.NewJSONHandler(logs, nil)))
	return e, e.strava, e.drain(p), logs
}

// A 429 stops the drain even when the usage headers say there is room:
// Strava refused, and every further call would be refused (and counted)
// too. One GET, not one per event.
func TestA429UnderTheLimitsStopsTheDrain(t *testing.T) {
	const events = 50
	e, api, sum, logs := rateLimitedDrainLogged(t, events, "")
	if n := api.totalGets(); n != 1 {
		t.Errorf("%d GETs after a 429, want 1", n)
	}
	windowEnd := strava.NextQuarterHour(e.clock.Now())
	if !sum.RateLimited || sum.RateLimitedUntil == nil || !sum.RateLimitedUntil.Equal(windowEnd) {
		t.Errorf("summary %+v, want rate limited until %s", sum, windowEnd)
	}
	if sum.Retried != 0 || sum.Dead != 0 || sum.Remaining != events {
		t.Errorf("summary %+v, want no attempt counted and all %d events remaining", sum, events)
	}
	// A warning says the drain stopped; nothing went wrong.
	warned := false
	for _, l := range logs.Lines(t) {
		warned = warned || l["level"] == "WARN" && l["msg"] == "strava rate limit reached; drain stops"
		if l["level"] == "ERROR" {
			t.Errorf("logged %v", l)
		}
	}
	if !warned {
		t.Error("no warning that the rate limit stopped the drain")
	}
}

// Events handed back after a 429 wait for the window's end: visible at
// once, the next drain (or another instance's) would spend its first call
// on the same refusal.
func TestEventsReleasedAfterA429WaitForTheWindowsEnd(t *testing.T) {
	const events = 20
	e, _, _ := rateLimitedDrain(t, events, "")
	windowEnd := strava.NextQuarterHour(e.clock.Now())
	ctx := context.Background()
	if s := e.stats(); s.Ready != 0 || s.Delayed != events || s.Leased != 0 {
		t.Fatalf("queue after the drain %+v, want all %d delayed and none leased", s, events)
	}
	e.clock.Set(windowEnd.Add(-time.Millisecond))
	if early, err := e.queue.Claim(ctx, 100, time.Minute); err != nil || len(early) != 0 {
		t.Fatalf("claim just before the window's end: %d events, %v; want none", len(early), err)
	}
	e.clock.Set(windowEnd)
	back, err := e.queue.Claim(ctx, 100, time.Minute)
	if err != nil || len(back) != events {
		t.Fatalf("claim at the window's end: %d events, %v; want %d", len(back), err, events)
	}
	for _, m := range back {
		if m.Attempts != 0 {
			t.Errorf("event %s has %d attempts, want 0", m.ID, m.Attempts)
		}
	}
}

// Retry-After longer than the window wins; a shorter one does not cut the
// window short. The drain, the shared rate-limit record and the released
// events all use the same end.
func TestRetryAfterLongerThanTheWindowIsHonoured(t *testing.T) {
	for _, tc := range []struct {
		retryAfter string
		want       func(now time.Time) time.Time
	}{
		{"", strava.NextQuarterHour},
		{"60", strava.NextQuarterHour},
		{"1800", func(now time.Time) time.Time { return now.Add(30 * time.Minute) }},
	} {
		t.Run("Retry-After="+tc.retryAfter, func(t *testing.T) {
			e, _, sum := rateLimitedDrain(t, 3, tc.retryAfter)
			want := tc.want(e.clock.Now())
			if sum.RateLimitedUntil == nil || !sum.RateLimitedUntil.Equal(want) {
				t.Errorf("rate limited until %v, want %s", sum.RateLimitedUntil, want)
			}
			if until, err := e.store.RateLimitedUntil(context.Background()); err != nil || !until.Equal(want) {
				t.Errorf("remembered until %v (%v), want %s", until, err, want)
			}
			e.clock.Set(want.Add(-time.Millisecond))
			if early, _ := e.queue.Claim(context.Background(), 10, time.Minute); len(early) != 0 {
				t.Errorf("%d events visible before %s", len(early), want)
			}
		})
	}
}

// Events that failed together must not come back together: each retry's
// wait is drawn from [d, 1.5·d], and draws spread over that range.
func TestBackoffIsJittered(t *testing.T) {
	d := &drain{p: New(Config{}, nil, nil, nil, nil)}
	for attempt, base := range map[int]time.Duration{1: 30 * time.Second, 3: 2 * time.Minute} {
		seen := map[time.Duration]bool{}
		low, high := false, false
		for range 200 {
			got := d.backoff(attempt)
			seen[got] = true
			low = low || got < base+base/4
			high = high || got > base+base/4
		}
		if len(seen) < 100 || !low || !high {
			t.Errorf("backoff(%d): %d distinct waits in 200, lower quarter hit %v, upper hit %v; want them spread over [%s, %s]",
				attempt, len(seen), low, high, base, base*3/2)
		}
	}
}

// With slow answers all of a drain's workers overlap: the calls in flight
// must still stay within what the last answer said is left of the window.
func TestCallsInFlightStayWithinWhatIsLeftWhenAnswersAreSlow(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.queueCreates(jane, 900, 10)
	e.strava.setLimits(5, 30000)
	e.strava.delay = 20 * time.Millisecond // every call overlaps the others
	sum := e.drain(e.processor(Config{Concurrency: 8}))
	if n, past := e.strava.totalGets(), e.strava.rejected(); n != 5 || past != 0 {
		t.Errorf("%d GETs, %d past the limit; want 5, none past it", n, past)
	}
	if sum.Kept != 5 || !sum.RateLimited {
		t.Errorf("summary %+v, want 5 kept and rate limited", sum)
	}
}

// The tightest window decides, whichever it is: with the daily window
// almost used up and the 15-minute one nearly empty, a drain sends only
// what the day has left, none past it.
func TestCallsInFlightStayWithinTheDailyWindowWhenItIsTheTightest(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.queueCreates(jane, 900, 10)
	e.strava.setLimits(600, 30000)
	rl := e.strava.RateLimit()
	rl.UsageDaily = 30000 - 5
	e.strava.SetRateLimit(rl)
	e.strava.delay = 20 * time.Millisecond // every call overlaps the others
	sum := e.drain(e.processor(Config{Concurrency: 8}))
	if n, past := e.strava.totalGets(), e.strava.rejected(); n != 5 || past != 0 {
		t.Errorf("%d GETs, %d past the limit; want 5, none past it", n, past)
	}
	if sum.Kept != 5 || !sum.RateLimited {
		t.Errorf("summary %+v, want 5 kept and rate limited", sum)
	}
}
