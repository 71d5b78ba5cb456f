package store

import (
	"errors"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
)

func activityIDs(acts []strava.DetailedActivity) []int64 {
	ids := make([]int64, len(acts))
	for i, a := range acts {
		ids[i] = a.ID
	}
	return ids
}

func zcard(t *testing.T, s *Store, athleteID int64) int64 {
	t.Helper()
	c := s.client
	n, err := c.Do(testCtx(t), c.B().Zcard().Key(s.activityIndexKey(athleteID)).Build()).AsInt64()
	if err != nil {
		t.Fatalf("ZCARD: %v", err)
	}
	return n
}

func TestActivitiesNewestFirstWithTTL(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// Kept in an order unrelated to their start times; ids exceed 32 bits.
	keep(t, s, activity(12345678902, 1, day.Add(9*time.Hour)), time.Hour)
	keep(t, s, activity(12345678901, 1, day.Add(-24*time.Hour)), time.Hour)
	keep(t, s, activity(12345678903, 1, day.Add(18*time.Hour)), 30*24*time.Hour) // asks for more than allowed
	keep(t, s, activity(555, 2, day.Add(12*time.Hour)), 0)                       // another athlete, default TTL

	acts, err := s.Activities(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := activityIDs(acts), []int64{12345678903, 12345678902, 12345678901}; !slices.Equal(got, want) {
		t.Errorf("Activities = %v; want newest first %v", got, want)
	}
	if got := acts[0]; got.Name != "Morning Run" || got.Distance != 10012.5 || !got.StartDate.Equal(day.Add(18*time.Hour)) || got.Athlete.ID != 1 {
		t.Errorf("activity read back = %+v; want what was kept", got)
	}
	acts, err = s.Activities(ctx, 1, 2)
	if err != nil || !slices.Equal(activityIDs(acts), []int64{12345678903, 12345678902}) {
		t.Errorf("Activities(limit 2) = %v, %v; want the 2 newest", activityIDs(acts), err)
	}
	if acts, err := s.Activities(ctx, 3, 0); err != nil || len(acts) != 0 {
		t.Errorf("Activities of an athlete with none = %v, %v; want none", acts, err)
	}

	for key, max := range map[string]time.Duration{
		s.activityKey("12345678902"): time.Hour,
		s.activityKey("12345678901"): time.Hour,
		s.activityKey("12345678903"): MaxKeep,
		s.activityKey("555"):         MaxKeep,
		s.activityIndexKey(1):        MaxKeep,
	} {
		if ttl := pttl(t, r, key); ttl <= max-time.Minute || ttl > max {
			t.Errorf("PTTL %s = %v; want just under %v", key, ttl, max)
		}
	}
	if ttl := pttl(t, r, s.activityIndexKey(2)); ttl <= 0 || ttl > MaxKeep {
		t.Errorf("PTTL of athlete 2's index = %v; want in (0, 7 days]", ttl)
	}

	a, err := s.Activity(ctx, 555)
	if err != nil || a.ID != 555 || a.Athlete.ID != 2 {
		t.Errorf("Activity(555) = %+v, %v", a, err)
	}
	if _, err := s.Activity(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Activity(999): %v; want ErrNotFound", err)
	}
}

func TestKeepActivityUpserts(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	start := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	keep(t, s, activity(42, 1, start), time.Hour)
	updated := activity(42, 1, start.Add(-time.Hour)) // title and start changed
	updated.Name = "Renamed Run"
	keep(t, s, updated, 2*time.Hour)

	acts, err := s.Activities(ctx, 1, 0)
	if err != nil || len(acts) != 1 || acts[0].Name != "Renamed Run" || !acts[0].StartDate.Equal(start.Add(-time.Hour)) {
		t.Fatalf("Activities after upsert = %+v, %v; want one copy, updated", acts, err)
	}
	if n := zcard(t, s, 1); n != 1 {
		t.Errorf("index holds %d entries; want 1", n)
	}
	if ttl := pttl(t, r, s.activityKey("42")); ttl <= time.Hour {
		t.Errorf("PTTL after upsert = %v; want the new 2h TTL", ttl)
	}
}

func TestKeepActivityRejectsInvalid(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	if err := s.KeepActivity(ctx, activity(0, 1, time.Now()), time.Hour); err == nil {
		t.Error("KeepActivity without id succeeded")
	}
	if err := s.KeepActivity(ctx, activity(5, 0, time.Now()), time.Hour); err == nil {
		t.Error("KeepActivity without athlete succeeded")
	}
	if keys := r.Keys(t); len(keys) != 0 {
		t.Errorf("keys after rejected keeps: %v", keys)
	}
}

func TestDeleteActivity(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	start := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	keep(t, s, activity(1, 7, start), time.Hour)
	keep(t, s, activity(2, 7, start.Add(time.Hour)), time.Hour)

	existed, err := s.DeleteActivity(ctx, 7, 2)
	if err != nil || !existed {
		t.Fatalf("DeleteActivity = %v, %v; want true", existed, err)
	}
	if _, err := s.Activity(ctx, 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("Activity(2) after delete: %v; want ErrNotFound", err)
	}
	if acts, err := s.Activities(ctx, 7, 0); err != nil || !slices.Equal(activityIDs(acts), []int64{1}) {
		t.Errorf("Activities after delete = %v, %v; want [1]", activityIDs(acts), err)
	}
	if n := zcard(t, s, 7); n != 1 {
		t.Errorf("index holds %d entries; want 1", n)
	}
	existed, err = s.DeleteActivity(ctx, 7, 2)
	if err != nil || existed {
		t.Errorf("second DeleteActivity = %v, %v; want false, nil", existed, err)
	}
}

func TestActivitiesSkipAndPruneExpired(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	start := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	for i := range int64(5) {
		keep(t, s, activity(10+i, 1, start.Add(time.Duration(i)*time.Hour)), time.Hour)
	}
	// The newest and a middle one expire.
	expireNow(t, r, s.activityKey("14"))
	expireNow(t, r, s.activityKey("12"))

	acts, err := s.Activities(ctx, 1, 2)
	if err != nil || !slices.Equal(activityIDs(acts), []int64{13, 11}) {
		t.Fatalf("Activities(limit 2) = %v, %v; want [13 11], the expired skipped", activityIDs(acts), err)
	}
	acts, err = s.Activities(ctx, 1, 0)
	if err != nil || !slices.Equal(activityIDs(acts), []int64{13, 11, 10}) {
		t.Fatalf("Activities = %v, %v; want [13 11 10]", activityIDs(acts), err)
	}
	if n := zcard(t, s, 1); n != 3 {
		t.Errorf("index holds %d entries after listing; want the 3 live ones", n)
	}
	// An expired activity kept again is listed again.
	keep(t, s, activity(14, 1, start.Add(4*time.Hour)), time.Hour)
	if acts, err := s.Activities(ctx, 1, 1); err != nil || !slices.Equal(activityIDs(acts), []int64{14}) {
		t.Errorf("Activities after re-keeping = %v, %v; want [14]", activityIDs(acts), err)
	}
}

// Every activity expires on its own; the index then expires too, so an
// athlete who stops recording leaves nothing behind in Redis but their
// connection (tokens do not expire).
func TestActivityIndexExpiresAfterItsActivities(t *testing.T) {
	s, r := newStore(t)
	if r.Mini == nil {
		t.Skip("needs miniredis's clock to jump 7 days")
	}
	keep(t, s, activity(1, 1, time.Now()), 0)
	r.Mini.FastForward(MaxKeep)
	keys := r.Keys(t)
	sort.Strings(keys)
	if want := []string{r.Prefix + "athlete:1", r.Prefix + "athletes"}; !slices.Equal(keys, want) {
		t.Errorf("keys after 7 days: %v; want only the athlete's %v", keys, want)
	}
}

// A drain that fetched an activity while its athlete was being removed
// must not bring their data back.
func TestKeepActivityOfARemovedAthleteKeepsNothing(t *testing.T) {
	s, r := newStore(t)
	keep(t, s, activity(1, 1, time.Now()), time.Hour)
	if _, err := s.RemoveAthlete(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	err := s.KeepActivity(testCtx(t), activity(2, 1, time.Now()), time.Hour)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("KeepActivity after removal = %v, want ErrNotFound", err)
	}
	if keys := r.Keys(t); len(keys) != 0 {
		t.Fatalf("keys after removal and a late keep: %v; want none", keys)
	}
}

// ListActivities merges every athlete's index, newest first, and applies
// since (inclusive, to the second) and limit across athletes.
func TestListActivitiesAcrossAthletes(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	keep(t, s, activity(101, 1, t0), time.Hour)
	keep(t, s, activity(201, 2, t0.Add(time.Hour)), time.Hour)
	keep(t, s, activity(102, 1, t0.Add(2*time.Hour)), time.Hour)
	keep(t, s, activity(301, 3, t0.Add(2*time.Hour)), time.Hour) // same start as 102: the higher id first
	keep(t, s, activity(202, 2, t0.Add(3*time.Hour)), time.Hour)

	for _, tc := range []struct {
		name string
		q    ActivityQuery
		want []int64
	}{
		{"every athlete", ActivityQuery{}, []int64{202, 301, 102, 201, 101}},
		{"limit across athletes", ActivityQuery{Limit: 3}, []int64{202, 301, 102}},
		{"one athlete", ActivityQuery{AthleteID: 2}, []int64{202, 201}},
		{"since is inclusive", ActivityQuery{Since: t0.Add(time.Hour)}, []int64{202, 301, 102, 201}},
		{"since within a second rounds up", ActivityQuery{Since: t0.Add(time.Hour - time.Millisecond)}, []int64{202, 301, 102, 201}},
		{"since after a start excludes it", ActivityQuery{Since: t0.Add(time.Hour + time.Millisecond)}, []int64{202, 301, 102}},
		{"since and limit and athlete", ActivityQuery{AthleteID: 1, Since: t0, Limit: 1}, []int64{102}},
		{"an athlete without activities", ActivityQuery{AthleteID: 4}, nil},
		{"since after everything", ActivityQuery{Since: t0.Add(24 * time.Hour)}, nil},
	} {
		acts, err := s.ListActivities(ctx, tc.q)
		if err != nil || !slices.Equal(activityIDs(acts), tc.want) {
			t.Errorf("%s: ListActivities(%+v) = %v, %v; want %v", tc.name, tc.q, activityIDs(acts), err, tc.want)
		}
	}
}

// A page whose newest entries expired is filled from older ones, across
// athletes, and the expired entries leave the indexes.
func TestListActivitiesFillsAPageAfterExpiredEntries(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	for i := range int64(4) {
		keep(t, s, activity(10+i, 1, t0.Add(time.Duration(2*i)*time.Hour)), time.Hour)
		keep(t, s, activity(20+i, 2, t0.Add(time.Duration(2*i+1)*time.Hour)), time.Hour)
	}
	expireNow(t, r, s.activityKey("23"))
	expireNow(t, r, s.activityKey("13"))
	acts, err := s.ListActivities(ctx, ActivityQuery{Limit: 3})
	if err != nil || !slices.Equal(activityIDs(acts), []int64{22, 12, 21}) {
		t.Fatalf("ListActivities(limit 3) = %v, %v; want [22 12 21]", activityIDs(acts), err)
	}
	if n1, n2 := zcard(t, s, 1), zcard(t, s, 2); n1 != 3 || n2 != 3 {
		t.Errorf("indexes hold %d and %d entries; want 3 and 3, the expired removed", n1, n2)
	}
}
