package store

import (
	"testing"
	"time"
)

// One prompt drain at a time; the others step aside and leave the holder a
// note, which keeps it watching; with no note, finishing frees the turn.
func TestPromptDrainsTakeTurns(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	const lease, watch = 30 * time.Second, 3 * time.Second

	first, err := s.StartPromptDrain(ctx, "tok-a", lease, watch)
	if err != nil || !first {
		t.Fatalf("first start = %v, %v; want the turn", first, err)
	}
	if d := pttl(t, r, s.promptDrainKey()); d <= 0 || d > lease {
		t.Fatalf("lease TTL %v, want (0, %v]", d, lease)
	}
	second, err := s.StartPromptDrain(ctx, "tok-b", lease, watch)
	if err != nil || second {
		t.Fatalf("second start = %v, %v; want to step aside", second, err)
	}
	if d := pttl(t, r, s.promptWantedKey()); d <= 0 || d > watch {
		t.Fatalf("note TTL %v, want (0, %v]", d, watch)
	}

	// The holder finishes: the note keeps it watching, and is consumed.
	more, err := s.FinishPromptDrain(ctx, "tok-a", lease)
	if err != nil || more <= 0 || more > watch {
		t.Fatalf("finish with a note = %v, %v; want (0, %v]", more, err, watch)
	}
	// A stranger's token finishes nothing.
	if more, err := s.FinishPromptDrain(ctx, "tok-b", lease); err != nil || more != 0 {
		t.Fatalf("finish by a non-holder = %v, %v", more, err)
	}
	if again, _ := s.StartPromptDrain(ctx, "tok-c", lease, watch); again {
		t.Fatal("the turn was free while its holder was still watching")
	}
	if more, _ := s.FinishPromptDrain(ctx, "tok-a", lease); more <= 0 {
		t.Fatal("the note left by tok-c was lost")
	}
	// No note: the turn is free.
	if more, err := s.FinishPromptDrain(ctx, "tok-a", lease); err != nil || more != 0 {
		t.Fatalf("finish without a note = %v, %v; want 0", more, err)
	}
	if next, err := s.StartPromptDrain(ctx, "tok-d", lease, watch); err != nil || !next {
		t.Fatalf("after the turn ended: %v, %v; want the turn", next, err)
	}

	// Release gives the turn up even with a note waiting; only the holder can.
	s.StartPromptDrain(ctx, "tok-e", lease, watch)
	if err := s.ReleasePromptDrain(ctx, "tok-e"); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.StartPromptDrain(ctx, "tok-f", lease, watch); again {
		t.Fatal("a non-holder released the turn")
	}
	if err := s.ReleasePromptDrain(ctx, "tok-d"); err != nil {
		t.Fatal(err)
	}
	if next, _ := s.StartPromptDrain(ctx, "tok-g", lease, watch); !next {
		t.Fatal("the holder's release did not free the turn")
	}
}

// A drain that died holds the turn only until its lease ends.
func TestPromptDrainTurnEndsWithItsLease(t *testing.T) {
	s, r := newStore(t)
	ctx := testCtx(t)
	if ok, _ := s.StartPromptDrain(ctx, "dead", time.Minute, time.Second); !ok {
		t.Fatal("no turn")
	}
	expireNow(t, r, s.promptDrainKey())
	if ok, err := s.StartPromptDrain(ctx, "next", time.Minute, time.Second); err != nil || !ok {
		t.Fatalf("after the lease ended: %v, %v", ok, err)
	}
}

func TestLastDrain(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	if d, err := s.LastDrain(ctx); err != nil || d != nil {
		t.Fatalf("before any drain: %v, %v", d, err)
	}
	at := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	s.SetLastDrain(ctx, LastDrain{At: at, Trigger: "cron", Claimed: 1})
	if err := s.SetLastDrain(ctx, LastDrain{At: at.Add(time.Second), Trigger: "prompt", Claimed: 3, Kept: 2, Deleted: 1, DurationMS: 1200}); err != nil {
		t.Fatal(err)
	}
	d, err := s.LastDrain(ctx)
	if err != nil || d == nil || !d.At.Equal(at.Add(time.Second)) || d.Trigger != "prompt" || d.Claimed != 3 || d.Kept != 2 || d.Deleted != 1 || d.DurationMS != 1200 {
		t.Fatalf("LastDrain = %+v, %v", d, err)
	}
}
