package queue_test

import (
	"context"
	"testing"
	"time"
)

// A drain whose lease ended hands back nothing: the events belong to the
// drain that claimed them since, and stay hidden from everyone else.
func TestStaleDrainCannotReleaseAnotherDrainsEvents(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a", "b")
	stale, _ := q.Claim(ctx, 10, time.Second)
	c.Advance(2 * time.Second)
	current, _ := q.Claim(ctx, 10, time.Minute)
	if len(current) != 2 {
		t.Fatalf("second claim got %v, want both events", ids(current))
	}
	n, err := q.Release(ctx, stale[0].Token, c.Now(), "a", "b")
	if err != nil || n != 0 {
		t.Fatalf("stale Release = %d, %v; want 0, nil", n, err)
	}
	if got, _ := q.Claim(ctx, 10, time.Minute); len(got) != 0 {
		t.Fatalf("a stale release made %v claimable while another drain holds them", ids(got))
	}
	if n, _ := q.Ack(ctx, current[0].Token, "a", "b"); n != 2 {
		t.Fatalf("the current holder acked %d, want 2", n)
	}
}

// Redrive revives the dead only: an acked event stays done (its dedupe
// record intact, its work not redone), a delayed one keeps its time.
func TestRedriveLeavesAckedAndDelayedEventsAlone(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "acked", "dead", "delayed")
	got, _ := q.Claim(ctx, 10, time.Minute)
	byID := map[string]int{}
	for i, m := range got {
		byID[m.ID] = i
	}
	if n, _ := q.Ack(ctx, got[0].Token, "acked"); n != 1 {
		t.Fatal("ack failed")
	}
	if _, err := q.Fail(ctx, got[byID["dead"]], "gone", 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Fail(ctx, got[byID["delayed"]], "502", time.Hour, 5); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)

	if n, err := q.Redrive(ctx); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v; want 1 (the dead event only)", n, err)
	}
	back, _ := q.Claim(ctx, 10, time.Minute)
	if len(back) != 1 || back[0].ID != "dead" {
		t.Fatalf("claimable after redrive: %v, want only the dead event", ids(back))
	}
	if added, _ := q.Enqueue(ctx, "acked", []byte("x")); added {
		t.Fatal("redrive dropped the acked event's dedupe record")
	}
	if s := mustStats(t, q); s.Delayed != 2 || s.Dead != 0 {
		t.Fatalf("stats %+v, want the delayed retry and the new lease delayed, none dead", s)
	}
}
