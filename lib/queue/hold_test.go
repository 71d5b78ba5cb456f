package queue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/queue"
)

// Held events spend no attempt, are counted as held, are not claimed, are
// still recognized as redeliveries, and become ready when their group is
// released.
func TestHoldParksEventsUntilUnhold(t *testing.T) {
	q, c, r := setup(t)
	ctx := context.Background()
	guard := refusedGuard(t, r)
	mustEnqueue(t, q, "a", "b", "other")
	got, _ := q.Claim(ctx, 10, time.Minute)
	if res, err := q.Hold(ctx, got[0].Token, "athlete:7", guard, "a", "b"); res != (queue.HoldResult{Held: 2}) || err != nil {
		t.Fatalf("Hold = %+v, %v; want 2 held", res, err)
	}
	if n, _ := q.Ack(ctx, got[0].Token, "other"); n != 1 {
		t.Fatal("ack other")
	}
	c.Advance(time.Hour)
	if s := mustStats(t, q); s.Held != 2 || s.Ready != 0 || s.Delayed != 0 || s.Leased != 0 || s.Dead != 0 {
		t.Fatalf("stats while held = %+v; want 2 held, nothing else", s)
	}
	if again, _ := q.Claim(ctx, 10, time.Minute); len(again) != 0 {
		t.Fatalf("held events claimed: %v", ids(again))
	}
	if added, err := q.Enqueue(ctx, "a", []byte("x")); added || err != nil {
		t.Fatalf("redelivery of a held event = %v, %v; want a duplicate", added, err)
	}
	if groups, err := q.HeldGroups(ctx); err != nil || len(groups) != 1 || groups[0] != "athlete:7" {
		t.Fatalf("HeldGroups = %v, %v; want athlete:7", groups, err)
	}
	if n, err := q.Unhold(ctx, "athlete:7"); n != 2 || err != nil {
		t.Fatalf("Unhold = %d, %v; want 2", n, err)
	}
	if groups, _ := q.HeldGroups(ctx); len(groups) != 0 {
		t.Fatalf("HeldGroups after Unhold = %v; want none", groups)
	}
	back, _ := q.Claim(ctx, 10, time.Minute)
	if len(back) != 2 || back[0].Attempts != 0 || back[1].Attempts != 0 {
		t.Fatalf("after Unhold claimed %+v; want a and b with no attempt spent", back)
	}
	if n, _ := q.Unhold(ctx, "athlete:7"); n != 0 {
		t.Fatalf("second Unhold moved %d", n)
	}
}

// Without the guard's field (the athlete reconnected between the drain's
// read and its hold), Hold makes the events ready instead of parking them.
func TestHoldWithoutTheGuardMakesReady(t *testing.T) {
	q, _, r := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a")
	got, _ := q.Claim(ctx, 10, time.Minute)
	guard := queue.Guard{Key: r.Prefix + "athlete:7", Field: "reconnect_reason"}
	if res, err := q.Hold(ctx, got[0].Token, "athlete:7", guard, "a"); res != (queue.HoldResult{}) || err != nil {
		t.Fatalf("Hold = %+v, %v; want nothing held", res, err)
	}
	if s := mustStats(t, q); s.Ready != 1 || s.Held != 0 {
		t.Fatalf("stats = %+v; want 1 ready", s)
	}
}

// Dropped events leave nothing in Redis: no dedupe record, no payload.
func TestDropLeavesNoTrace(t *testing.T) {
	q, _, r := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a", "b")
	got, _ := q.Claim(ctx, 10, time.Minute)
	if n, err := q.Drop(ctx, got[0].Token, "a", "b"); n != 2 || err != nil {
		t.Fatalf("Drop = %d, %v", n, err)
	}
	if keys := r.Keys(t); len(keys) != 0 {
		t.Fatalf("keys after drop: %v; want none", keys)
	}
	if s := mustStats(t, q); s != (queue.Stats{}) {
		t.Fatalf("stats = %+v", s)
	}
}

func bury(t *testing.T, q *queue.Queue, id string) {
	t.Helper()
	ctx := context.Background()
	mustEnqueue(t, q, id)
	got, err := q.Claim(ctx, 1, time.Minute)
	if err != nil || len(got) != 1 || got[0].ID != id {
		t.Fatalf("claim %s: %v, %v", id, got, err)
	}
	if res, err := q.Fail(ctx, got[0], "boom", time.Minute, 0); err != nil || !res.Dead {
		t.Fatalf("Fail = %+v, %v", res, err)
	}
}

// The dead list keeps at most its cap, oldest pruned first, with their
// payloads and errors.
func TestDeadListIsCapped(t *testing.T) {
	q, c, r := setup(t, queue.WithDeadRetention(0, 3))
	for i := range 5 {
		bury(t, q, fmt.Sprintf("e%d", i))
		c.Advance(time.Second)
	}
	dead, err := q.Dead(context.Background(), 10)
	if err != nil || len(dead) != 3 || dead[0].ID != "e4" || dead[2].ID != "e2" {
		t.Fatalf("Dead = %+v, %v; want e4, e3, e2", dead, err)
	}
	for _, key := range []string{"payloads", "errors", "attempts"} {
		if n, _ := r.Client.Do(context.Background(), r.Client.B().Hlen().Key(r.Prefix+key).Build()).AsInt64(); n != 3 {
			t.Errorf("%s holds %d entries, want 3", key, n)
		}
	}
}

// Entries older than the retention are pruned, by the next bury or by
// PruneDead.
func TestDeadListForgetsOldEntries(t *testing.T) {
	q, c, r := setup(t, queue.WithDeadRetention(30*24*time.Hour, 0))
	bury(t, q, "old")
	c.Advance(29 * 24 * time.Hour)
	bury(t, q, "newer")
	if s := mustStats(t, q); s.Dead != 2 {
		t.Fatalf("dead = %d after 29 days, want 2", s.Dead)
	}
	c.Advance(2 * 24 * time.Hour)
	if n, err := q.PruneDead(context.Background()); n != 1 || err != nil {
		t.Fatalf("PruneDead = %d, %v; want 1", n, err)
	}
	dead, _ := q.Dead(context.Background(), 10)
	if len(dead) != 1 || dead[0].ID != "newer" {
		t.Fatalf("dead after 31 days = %+v; want newer only", dead)
	}
	if n, _ := r.Client.Do(context.Background(), r.Client.B().Hexists().Key(r.Prefix+"payloads").Field("old").Build()).AsBool(); n {
		t.Fatal("the pruned entry's payload is still stored")
	}
}

// Leases of a drain that died are not counted as leased once they end, and
// "oldest ready" counts from when the event was first queued, not from
// when its lease ended.
func TestStatsCountLiveLeasesAndFirstQueuedTime(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a", "b")
	if got, _ := q.Claim(ctx, 10, time.Minute); len(got) != 2 {
		t.Fatal("claim")
	}
	if s := mustStats(t, q); s.Leased != 2 || s.Delayed != 2 {
		t.Fatalf("during the lease: %+v", s)
	}
	c.Advance(5 * time.Minute) // the drain died; its lease ended
	s := mustStats(t, q)
	if s.Leased != 0 || s.Ready != 2 || s.OldestReady != 5*time.Minute {
		t.Fatalf("after the lease ended: %+v; want 0 leased, 2 ready, oldest 5m", s)
	}
	mustEnqueue(t, q, "c")
	if s := mustStats(t, q); s.OldestReady != 5*time.Minute {
		t.Fatalf("a newer event changed the oldest: %+v", s)
	}
}

// A group holds at most its cap (WithHeldMax): events beyond it go to the
// bounded dead list with an error that says why, across several holds,
// and the newest are the ones buried (those held first stay held).
func TestHoldBeyondTheCapBuriesTheNewest(t *testing.T) {
	q, c, r := setup(t, queue.WithHeldMax(3))
	ctx := context.Background()
	guard := refusedGuard(t, r)
	hold := func(ids ...string) queue.HoldResult {
		t.Helper()
		mustEnqueue(t, q, ids...)
		got, err := q.Claim(ctx, 10, time.Minute)
		if err != nil || len(got) != len(ids) {
			t.Fatalf("claim %v: %v, %v", ids, got, err)
		}
		res, err := q.Hold(ctx, got[0].Token, "athlete:7", guard, ids...)
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Second)
		return res
	}
	if res := hold("e0", "e1"); res != (queue.HoldResult{Held: 2}) {
		t.Fatalf("first Hold = %+v; want 2 held", res)
	}
	if res := hold("e2", "e3", "e4"); res != (queue.HoldResult{Held: 1, Buried: 2}) {
		t.Fatalf("second Hold = %+v; want 1 held, 2 buried", res)
	}
	if s := mustStats(t, q); s.Held != 3 || s.Dead != 2 || s.Ready != 0 || s.Delayed != 0 {
		t.Fatalf("stats = %+v; want 3 held, 2 dead", s)
	}
	dead, err := q.Dead(ctx, 10)
	if err != nil || len(dead) != 2 || dead[0].ID != "e4" || dead[1].ID != "e3" {
		t.Fatalf("Dead = %+v, %v; want e4, e3", dead, err)
	}
	for _, d := range dead {
		if !strings.Contains(d.Error, "held beyond the cap") || !strings.Contains(d.Error, "reconnect") {
			t.Errorf("dead %s error = %q; want it to say it was held beyond the cap while the athlete must reconnect", d.ID, d.Error)
		}
	}
	if added, err := q.Enqueue(ctx, "e4", []byte("x")); added || err != nil {
		t.Fatalf("redelivery of a buried overflow = %v, %v; want a duplicate", added, err)
	}
	if n, err := q.Unhold(ctx, "athlete:7"); n != 3 || err != nil {
		t.Fatalf("Unhold = %d, %v; want the 3 held", n, err)
	}
}

// A zero cap (an unset setting passed through) keeps the default: it must
// not bury every event an athlete who must reconnect receives.
func TestZeroHeldMaxKeepsTheDefault(t *testing.T) {
	q, _, r := setup(t, queue.WithHeldMax(0))
	ctx := context.Background()
	mustEnqueue(t, q, "e0", "e1")
	got, err := q.Claim(ctx, 10, time.Minute)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim: %v, %v", got, err)
	}
	if res, err := q.Hold(ctx, got[0].Token, "athlete:7", refusedGuard(t, r), "e0", "e1"); err != nil || res != (queue.HoldResult{Held: 2}) {
		t.Fatalf("Hold = %+v, %v; want both held", res, err)
	}
}
