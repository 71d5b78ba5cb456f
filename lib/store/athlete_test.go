package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
)

func TestSaveAndReadAthletes(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return clock }

	athletes, err := s.Athletes(ctx)
	if err != nil || len(athletes) != 0 {
		t.Fatalf("Athletes on empty store = %v, %v; want none", athletes, err)
	}
	if _, err := s.Athlete(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Athlete(1) on empty store: %v; want ErrNotFound", err)
	}

	jane := Athlete{
		ID: 134815, Name: "Jane Doe",
		AccessToken: "a1", RefreshToken: "r1",
		ExpiresAt: time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC),
		Scope:     "read,activity:read_all",
	}
	bob := Athlete{ID: 9, AccessToken: "a2", RefreshToken: "r2", ExpiresAt: jane.ExpiresAt}
	big := Athlete{ID: 1 << 40, RefreshToken: "r3"} // ids exceed 32 bits
	for _, a := range []Athlete{jane, big, bob} {
		saveAthlete(t, s, a)
	}

	got, err := s.Athlete(ctx, jane.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := jane
	want.ConnectedAt, want.UpdatedAt = clock, clock
	if !equalAthletes(got, want) {
		t.Errorf("Athlete = %#v\nwant %#v", got, want)
	}
	if got.AccessToken != "a1" || got.RefreshToken != "r1" {
		t.Errorf("tokens read back = %q, %q; want a1, r1", got.AccessToken, got.RefreshToken)
	}

	athletes, err = s.Athletes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, a := range athletes {
		ids = append(ids, a.ID)
	}
	if !slices.Equal(ids, []int64{9, 134815, 1 << 40}) {
		t.Errorf("Athletes ids = %v; want sorted [9 134815 %d]", ids, int64(1<<40))
	}

	// Reconnecting later with new tokens keeps when the athlete first
	// connected and replaces the rest.
	later := clock.Add(48 * time.Hour)
	s.Now = func() time.Time { return later }
	saveAthlete(t, s, Athlete{ID: jane.ID, Name: "Jane D.", AccessToken: "a9", RefreshToken: "r9"})
	got, err = s.Athlete(ctx, jane.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ConnectedAt.Equal(clock) || !got.UpdatedAt.Equal(later) || got.Name != "Jane D." ||
		got.RefreshToken != "r9" || got.Scope != "" || !got.ExpiresAt.IsZero() {
		t.Errorf("after reconnect = %#v; want connected_at kept, the rest replaced", got)
	}
}

func equalAthletes(a, b Athlete) bool {
	return a.ID == b.ID && a.Name == b.Name && a.AccessToken == b.AccessToken &&
		a.RefreshToken == b.RefreshToken && a.ExpiresAt.Equal(b.ExpiresAt) && a.Scope == b.Scope &&
		a.ConnectedAt.Equal(b.ConnectedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func TestSaveAthleteRejectsInvalid(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	for _, a := range []Athlete{
		{ID: 0, RefreshToken: "r"},
		{ID: -5, RefreshToken: "r"},
		{ID: 5, AccessToken: "a"}, // no refresh token
	} {
		if err := s.SaveAthlete(ctx, a); err == nil {
			t.Errorf("SaveAthlete(%#v) succeeded; want an error", a)
		}
	}
	if keys := r.Keys(t); len(keys) != 0 {
		t.Errorf("keys after rejected saves: %v; want none", keys)
	}
}

func TestRemoveAthleteDeletesOnlyTheirData(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	saveAthlete(t, s, Athlete{ID: 1, AccessToken: "a1", RefreshToken: "r1"})
	saveAthlete(t, s, Athlete{ID: 2, AccessToken: "a2", RefreshToken: "r2"})
	start := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	// More activities than one removal batch for athlete 1.
	const many = removeBatch + 20
	for i := range int64(many) {
		keep(t, s, activity(1000+i, 1, start.Add(time.Duration(i)*time.Minute)), time.Hour)
	}
	keep(t, s, activity(2001, 2, start), time.Hour)
	keep(t, s, activity(2002, 2, start.Add(time.Hour)), time.Hour)
	// One of athlete 1's activities has already expired: not counted.
	expireNow(t, r, s.activityKey("1000"))
	if err := s.SetSubscriptionID(ctx, 77); err != nil {
		t.Fatal(err)
	}
	before := r.Keys(t)

	removed, err := s.RemoveAthlete(ctx, 1)
	if err != nil || removed != many-1 {
		t.Fatalf("RemoveAthlete(1) = %d, %v; want %d", removed, err, many-1)
	}

	gone := map[string]bool{s.athleteKey(1): true, s.activityIndexKey(1): true}
	for i := range int64(many) {
		gone[s.activityKey(formatID(1000+i))] = true
	}
	var wantLeft []string
	for _, k := range before {
		if !gone[k] {
			wantLeft = append(wantLeft, k)
		}
	}
	left := r.Keys(t)
	slices.Sort(left)
	slices.Sort(wantLeft)
	if !slices.Equal(left, wantLeft) {
		t.Errorf("keys after removal = %v\nwant %v", left, wantLeft)
	}
	if !slices.Contains(left, s.athleteKey(2)) || !slices.Contains(left, s.activityIndexKey(2)) {
		t.Errorf("athlete 2's data missing after removing athlete 1: %v", left)
	}

	if _, err := s.Athlete(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Athlete(1) after removal: %v; want ErrNotFound", err)
	}
	if acts, err := s.Activities(ctx, 1, 0); err != nil || len(acts) != 0 {
		t.Errorf("Activities(1) after removal = %d, %v; want none", len(acts), err)
	}
	athletes, err := s.Athletes(ctx)
	if err != nil || len(athletes) != 1 || athletes[0].ID != 2 {
		t.Errorf("Athletes after removal = %v, %v; want only athlete 2", athletes, err)
	}
	if acts, err := s.Activities(ctx, 2, 0); err != nil || len(acts) != 2 {
		t.Errorf("Activities(2) after removing athlete 1 = %d, %v; want 2", len(acts), err)
	}

	// Idempotent.
	if removed, err := s.RemoveAthlete(ctx, 1); err != nil || removed != 0 {
		t.Errorf("second RemoveAthlete(1) = %d, %v; want 0, nil", removed, err)
	}
}

func activity(id, athleteID int64, start time.Time) strava.DetailedActivity {
	return strava.DetailedActivity{
		ID:        id,
		Athlete:   strava.MetaAthlete{ID: athleteID, ResourceState: 1},
		Name:      "Morning Run",
		Type:      "Run",
		SportType: "Run",
		Distance:  10012.5,
		StartDate: start,
	}
}

// keep stores a, first connecting its athlete if need be: activities are
// kept only for stored athletes.
func keep(t *testing.T, s *Store, a strava.DetailedActivity, ttl time.Duration) {
	t.Helper()
	if _, err := s.Athlete(testCtx(t), a.Athlete.ID); errors.Is(err, ErrNotFound) {
		if err := s.SaveAthlete(testCtx(t), Athlete{ID: a.Athlete.ID, AccessToken: "a", RefreshToken: "r", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatalf("SaveAthlete(%d): %v", a.Athlete.ID, err)
		}
	}
	if err := s.KeepActivity(testCtx(t), a, ttl); err != nil {
		t.Fatalf("KeepActivity(%d): %v", a.ID, err)
	}
}
