package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/strava"
)

// testCtx is the context of every test's Redis calls: with a deadline, so a
// broken Redis fails the test instead of hanging it (rueidis retries
// read-only commands until the context ends).
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newStore(t *testing.T) (*Store, *rdbtest.Redis) {
	t.Helper()
	r := rdbtest.New(t)
	return New(r.Client, r.Prefix), r
}

// expireNow makes key expire as if its TTL had run out: miniredis only
// expires keys when its clock is moved; a real server needs a moment.
func expireNow(t *testing.T, r *rdbtest.Redis, key string) {
	t.Helper()
	ctx := testCtx(t)
	if err := r.Client.Do(ctx, r.Client.B().Pexpire().Key(key).Milliseconds(1).Build()).Error(); err != nil {
		t.Fatalf("PEXPIRE %s: %v", key, err)
	}
	if r.Mini != nil {
		r.Mini.FastForward(2 * time.Millisecond)
		return
	}
	for {
		n, err := r.Client.Do(ctx, r.Client.B().Exists().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatalf("EXISTS %s: %v", key, err)
		}
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func pttl(t *testing.T, r *rdbtest.Redis, key string) time.Duration {
	t.Helper()
	ms, err := r.Client.Do(testCtx(t), r.Client.B().Pttl().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return time.Duration(ms) * time.Millisecond
}

func TestRateLimitedUntilNeverMovesEarlier(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)

	got, err := s.RateLimitedUntil(ctx)
	if err != nil || !got.IsZero() {
		t.Fatalf("RateLimitedUntil on empty store = %v, %v; want zero time", got, err)
	}

	now := time.Now().Truncate(time.Millisecond)
	set := func(until time.Time) {
		t.Helper()
		if err := s.SetRateLimitedUntil(ctx, until); err != nil {
			t.Fatalf("SetRateLimitedUntil(%v): %v", until, err)
		}
	}
	want := func(until time.Time) {
		t.Helper()
		got, err := s.RateLimitedUntil(ctx)
		if err != nil || !got.Equal(until) {
			t.Fatalf("RateLimitedUntil = %v, %v; want %v", got, err, until)
		}
	}

	set(now.Add(time.Hour))
	want(now.Add(time.Hour))
	if ttl := pttl(t, r, s.rateLimitedUntilKey()); ttl <= 0 || ttl > time.Hour {
		t.Errorf("PTTL of the rate-limit key = %v; want in (0, 1h]", ttl)
	}

	set(now.Add(30 * time.Minute)) // an earlier end (the 15-minute window) must not win
	want(now.Add(time.Hour))

	set(now.Add(-time.Minute)) // already past
	want(now.Add(time.Hour))

	set(now.Add(24 * time.Hour)) // the daily limit
	want(now.Add(24 * time.Hour))
	if ttl := pttl(t, r, s.rateLimitedUntilKey()); ttl <= time.Hour || ttl > 24*time.Hour {
		t.Errorf("PTTL after moving later = %v; want in (1h, 24h]", ttl)
	}
}

func TestSubscriptionID(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)

	if id, err := s.SubscriptionID(ctx); err != nil || id != 0 {
		t.Fatalf("SubscriptionID on empty store = %d, %v; want 0, nil", id, err)
	}
	if err := s.SetSubscriptionID(ctx, 120475); err != nil {
		t.Fatal(err)
	}
	if id, err := s.SubscriptionID(ctx); err != nil || id != 120475 {
		t.Fatalf("SubscriptionID = %d, %v; want 120475", id, err)
	}
	if err := s.SetSubscriptionID(ctx, 0); err == nil {
		t.Error("SetSubscriptionID(0) succeeded; want an error")
	}
	if err := s.ClearSubscriptionID(ctx); err != nil {
		t.Fatal(err)
	}
	if id, err := s.SubscriptionID(ctx); err != nil || id != 0 {
		t.Fatalf("SubscriptionID after clear = %d, %v; want 0", id, err)
	}
	if err := s.ClearSubscriptionID(ctx); err != nil {
		t.Fatalf("second ClearSubscriptionID: %v", err)
	}
}

func TestAthleteFormattingNeverShowsTokens(t *testing.T) {
	a := Athlete{
		ID:           134815,
		Name:         "Jane Doe",
		AccessToken:  "acc-SECRET-83ebeabdec09f6670863766f792ead24d61fe3f9",
		RefreshToken: "ref-SECRET-e5n567567e5n567567e5n567567e5n567567",
		ExpiresAt:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Scope:        "read,activity:read_all",
	}
	if got, want := a.String(), "athlete 134815 (Jane Doe)"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	if got, want := (Athlete{ID: 7}).String(), "athlete 7"; got != want {
		t.Errorf("String() without name = %q; want %q", got, want)
	}

	var outputs []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		outputs = append(outputs,
			fmt.Sprintf(format, a),
			fmt.Sprintf(format, &a),
			fmt.Sprintf(format, []Athlete{a}),
			fmt.Sprintf(format, struct{ A Athlete }{a}),
		)
	}
	outputs = append(outputs, fmt.Sprint(a), fmt.Sprintln(&a), fmt.Errorf("save %v: %w", a, errors.New("x")).Error())

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("connected", "athlete", a, "ptr", &a)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("connected", "athlete", a, slog.Any("ptr", &a))
	outputs = append(outputs, buf.String())

	for _, out := range outputs {
		if strings.Contains(out, "SECRET") {
			t.Errorf("output shows a token: %s", out)
		}
	}
	if got := fmt.Sprintf("%#v", a); !strings.Contains(got, "REDACTED") || !strings.Contains(got, "134815") {
		t.Errorf("%%#v = %s; want the Go syntax with REDACTED tokens", got)
	}
	if !strings.Contains(buf.String(), `"id":134815`) {
		t.Errorf("slog JSON = %s; want the athlete's id", buf.String())
	}
}

// TestRedisCutFailsInsteadOfHanging: every operation on a Redis that went
// away returns an error before its context ends.
func TestRedisCutFailsInsteadOfHanging(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	s := New(rdbtest.Dial(t, proxy.URL()), r.Prefix)
	ctx := testCtx(t)
	if err := s.SaveAthlete(ctx, Athlete{ID: 1, AccessToken: "a", RefreshToken: "r", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()

	var refreshCalls atomic.Int32
	refresh := func(context.Context, string) (*strava.Token, error) {
		refreshCalls.Add(1)
		return &strava.Token{AccessToken: "new"}, nil
	}
	ops := map[string]func(context.Context) error{
		"SaveAthlete": func(ctx context.Context) error {
			return s.SaveAthlete(ctx, Athlete{ID: 2, RefreshToken: "r"})
		},
		"Athlete":  func(ctx context.Context) error { _, err := s.Athlete(ctx, 1); return err },
		"Athletes": func(ctx context.Context) error { _, err := s.Athletes(ctx); return err },
		"RemoveAthlete": func(ctx context.Context) error {
			_, err := s.RemoveAthlete(ctx, 1)
			return err
		},
		"AccessToken": func(ctx context.Context) error { _, err := s.AccessToken(ctx, 1, refresh); return err },
		"ForceRefresh": func(ctx context.Context) error {
			_, err := s.ForceRefresh(ctx, 1, "a", refresh)
			return err
		},
		"KeepActivity": func(ctx context.Context) error {
			return s.KeepActivity(ctx, strava.DetailedActivity{ID: 5, Athlete: strava.MetaAthlete{ID: 1}}, time.Hour)
		},
		"DeleteActivity": func(ctx context.Context) error { _, err := s.DeleteActivity(ctx, 1, 5); return err },
		"Activity":       func(ctx context.Context) error { _, err := s.Activity(ctx, 5); return err },
		"Activities":     func(ctx context.Context) error { _, err := s.Activities(ctx, 1, 0); return err },
		"RateLimitedUntil": func(ctx context.Context) error {
			_, err := s.RateLimitedUntil(ctx)
			return err
		},
		"SetRateLimitedUntil": func(ctx context.Context) error {
			return s.SetRateLimitedUntil(ctx, time.Now().Add(time.Hour))
		},
		"SubscriptionID": func(ctx context.Context) error {
			_, err := s.SubscriptionID(ctx)
			return err
		},
		"SetSubscriptionID":   func(ctx context.Context) error { return s.SetSubscriptionID(ctx, 9) },
		"ClearSubscriptionID": func(ctx context.Context) error { return s.ClearSubscriptionID(ctx) },
	}
	t.Cleanup(func() {
		if n := refreshCalls.Load(); n != 0 {
			t.Errorf("Strava refresh called %d times with Redis cut; want 0", n)
		}
	})
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := op(ctx)
			if err == nil {
				t.Fatalf("%s with Redis cut succeeded; want an error", name)
			}
			t.Logf("%s: %v", name, err)
		})
	}
}
