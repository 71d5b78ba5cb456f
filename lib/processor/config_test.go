package processor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// Zero (or negative) values take the documented defaults; a lease shorter
// than MinLease(Budget) is lengthened; KeepFor never exceeds Strava's 7 days.
func TestConfigDefaults(t *testing.T) {
	type tuning struct {
		Budget, Lease        time.Duration
		BatchSize, Conc, Max int
		BackoffBase, KeepFor time.Duration
	}
	of := func(c Config) tuning {
		c = c.withDefaults()
		if c.Now == nil {
			t.Error("no default clock")
		}
		return tuning{c.Budget, c.Lease, c.BatchSize, c.Concurrency, c.MaxAttempts, c.BackoffBase, c.KeepFor}
	}
	defaults := tuning{DefaultBudget, DefaultLease, DefaultBatchSize, DefaultConcurrency, DefaultMaxAttempts, DefaultBackoffBase, store.MaxKeep}
	for name, tc := range map[string]struct {
		cfg  Config
		want tuning
	}{
		"zero":     {Config{}, defaults},
		"negative": {Config{Budget: -1, Lease: -1, BatchSize: -1, Concurrency: -1, MaxAttempts: -1, BackoffBase: -1, KeepFor: -1}, defaults},
		"given": {Config{Budget: time.Second, Lease: time.Hour, BatchSize: 7, Concurrency: 3, MaxAttempts: 2, BackoffBase: time.Minute, KeepFor: time.Hour},
			tuning{time.Second, time.Hour, 7, 3, 2, time.Minute, time.Hour}},
		"short lease":   {Config{Lease: time.Second}, func() tuning { d := defaults; d.Lease = MinLease(DefaultBudget); return d }()},
		"long budget":   {Config{Budget: time.Minute}, func() tuning { d := defaults; d.Budget, d.Lease = time.Minute, MinLease(time.Minute); return d }()},
		"keep too long": {Config{KeepFor: store.MaxKeep + time.Second}, defaults},
	} {
		if got := of(tc.cfg); got != tc.want {
			t.Errorf("%s: %+v\nwant %+v", name, got, tc.want)
		}
	}
	if MinLease(DefaultBudget) >= DefaultLease {
		t.Errorf("MinLease(DefaultBudget) = %s, not below DefaultLease %s: the 'short lease' case tests nothing", MinLease(DefaultBudget), DefaultLease)
	}
}

// bareStrava answers every GetActivity with an activity that names neither
// itself nor its athlete (a summary-level answer, or a double's).
type bareStrava struct{}

func (bareStrava) GetActivity(context.Context, string, int64) (*strava.DetailedActivity, *strava.Response, error) {
	return &strava.DetailedActivity{Name: "bare"}, &strava.Response{}, nil
}

func (bareStrava) RefreshToken(context.Context, string) (*strava.Token, error) {
	return nil, errors.New("not expected")
}

func (bareStrava) GetAuthenticatedAthlete(context.Context, string) (*strava.Athlete, *strava.Response, error) {
	return nil, nil, errors.New("not expected")
}

// An answer without ids is kept under the event's activity and owner.
func TestActivityAnsweredWithoutIDsIsKeptUnderTheEventsIDs(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.enqueue(event(strava.AspectCreate, jane, 4711, 10))
	sum := e.drain(New(Config{Now: e.clock.Now}, e.queue, e.store, bareStrava{}, nil))
	if sum.Kept != 1 || sum.Retried+sum.Dead != 0 {
		t.Fatalf("summary %+v, want 1 kept", sum)
	}
	a, ok := e.kept(4711)
	if !ok || a.ID != 4711 || a.Athlete.ID != jane || a.Name != "bare" {
		t.Fatalf("kept %+v (%v), want activity 4711 of athlete %d", a, ok, jane)
	}
}
