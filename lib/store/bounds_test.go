package store

import (
	"errors"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
)

// An activity without an id (or without an athlete) is refused as
// invalid, never stored, and never reported as "athlete not stored": the
// drain skips an event on that answer, and would skip a bad one silently.
func TestKeepActivityRefusesZeroIDsEvenForAStoredAthlete(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	saveAthlete(t, s, Athlete{ID: 1, AccessToken: "a", RefreshToken: "r", ExpiresAt: time.Now().Add(time.Hour)})
	before := len(r.Keys(t))
	for name, a := range map[string]strava.DetailedActivity{"no id": activity(0, 1, time.Now()), "no athlete": activity(5, 0, time.Now())} {
		err := s.KeepActivity(ctx, a, time.Hour)
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("%s: KeepActivity = %v; want an invalid-activity error", name, err)
		}
	}
	if after := len(r.Keys(t)); after != before {
		t.Errorf("refused activities left %d keys", after-before)
	}
}

// A TTL of zero (or less) means the longest allowed, not "expire now".
func TestKeepActivityWithoutTTLKeepsForMaxKeep(t *testing.T) {
	s, r := newStore(t)
	for _, ttl := range []time.Duration{0, -time.Second, MaxKeep, MaxKeep + time.Hour} {
		keep(t, s, activity(7, 1, time.Now()), ttl)
		if got := pttl(t, r, s.activityKey("7")); got < MaxKeep-time.Minute || got > MaxKeep {
			t.Errorf("ttl %s: kept for %s, want %s", ttl, got, MaxKeep)
		}
	}
}

// A limit of zero lists every kept activity.
func TestActivitiesWithoutLimitListsAll(t *testing.T) {
	s, _ := newStore(t)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const kept = 105 // more than the API's default page
	for i := range int64(kept) {
		keep(t, s, activity(100+i, 1, start.Add(time.Duration(i)*time.Minute)), time.Hour)
	}
	for _, limit := range []int{0, -1} {
		all, err := s.Activities(testCtx(t), 1, limit)
		if err != nil || len(all) != kept {
			t.Fatalf("Activities(limit %d) = %d activities, %v; want %d", limit, len(all), err, kept)
		}
	}
	if two, _ := s.Activities(testCtx(t), 1, 2); len(two) != 2 || two[0].ID != 100+kept-1 {
		t.Fatalf("Activities(limit 2) = %v, want the 2 newest", activityIDs(two))
	}
}

// Activities of athlete 0 (or less) is a caller's mistake, not "every
// athlete's" (that is ListActivities with AthleteID 0).
func TestActivitiesOfNoAthleteIsAnError(t *testing.T) {
	s, _ := newStore(t)
	keep(t, s, activity(7, 1, time.Now()), time.Hour)
	for _, id := range []int64{0, -1} {
		if got, err := s.Activities(testCtx(t), id, 10); err == nil {
			t.Errorf("Activities(%d) = %v, nil; want an error", id, activityIDs(got))
		}
	}
}
