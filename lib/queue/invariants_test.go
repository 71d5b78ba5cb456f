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

// The dead list says when each event died, most recent first.
func TestDeadSaysWhenEachEventDied(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "first", "second")
	got, _ := q.Claim(ctx, 10, time.Hour)
	firstDied := c.Now()
	if _, err := q.Fail(ctx, got[0], "gone", 0, 0); err != nil {
		t.Fatal(err)
	}
	c.Advance(90 * time.Minute)
	if _, err := q.Fail(ctx, got[1], "gone", 0, 0); err != nil {
		t.Fatal(err)
	}
	dead, err := q.Dead(ctx, 10)
	if err != nil || len(dead) != 2 {
		t.Fatalf("Dead = %+v, %v", dead, err)
	}
	if dead[0].ID != "second" || !dead[0].DiedAt.Equal(c.Now()) || dead[1].ID != "first" || !dead[1].DiedAt.Equal(firstDied) {
		t.Fatalf("dead = %s at %s, %s at %s; want second at %s, first at %s",
			dead[0].ID, dead[0].DiedAt, dead[1].ID, dead[1].DiedAt, c.Now(), firstDied)
	}
	if one, _ := q.Dead(ctx, 1); len(one) != 1 || one[0].ID != "second" {
		t.Fatalf("Dead(1) = %+v, want the most recent only", one)
	}
}

// Operations on nothing answer at once, without a round trip: a drain
// with nothing to settle must not fail because Redis is slow.
func TestEmptyInputsNeedNoRedis(t *testing.T) {
	q, c, _ := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // any round trip would fail
	if msgs, err := q.Claim(ctx, 0, time.Minute); msgs != nil || err != nil {
		t.Errorf("Claim(0) = %v, %v", msgs, err)
	}
	if n, err := q.Ack(ctx, "tok"); n != 0 || err != nil {
		t.Errorf("Ack() = %d, %v", n, err)
	}
	if n, err := q.Release(ctx, "tok", c.Now()); n != 0 || err != nil {
		t.Errorf("Release() = %d, %v", n, err)
	}
	if n, err := q.Drop(ctx, "tok"); n != 0 || err != nil {
		t.Errorf("Drop() = %d, %v", n, err)
	}
	if dead, err := q.Dead(ctx, 0); dead != nil || err != nil {
		t.Errorf("Dead(0) = %v, %v", dead, err)
	}
}
