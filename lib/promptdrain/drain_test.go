package promptdrain_test

import (
	"context"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/processor"
	"github.com/stravahook/stravahook/lib/promptdrain"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/store"
)

func newDrain(t *testing.T, budget time.Duration) (*promptdrain.Drain, *store.Store, *int) {
	t.Helper()
	r := rdbtest.New(t)
	st := store.New(r.Client, r.Prefix)
	q := queue.New(r.Client, r.Prefix+"queue:")
	handOvers := 0
	d := &promptdrain.Drain{
		Leases: st,
		Budget: budget,
		Processor: func(settle time.Duration, idle func(context.Context) time.Duration) *processor.Processor {
			return processor.New(processor.Config{Budget: budget, Settle: settle, Idle: idle}, q, st, nil, nil)
		},
		HandOver: func() { handOvers++ },
	}
	return d, st, &handOvers
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A drain that watched the queue to the end gives its turn back and asks
// for no successor.
func TestPromptDrainEndsItsTurn(t *testing.T) {
	d, st, handOvers := newDrain(t, 8*time.Second)
	ctx := testCtx(t)
	_, stepped, err := d.Run(ctx)
	if err != nil || stepped {
		t.Fatalf("Run = stepped %v, %v", stepped, err)
	}
	if *handOvers != 0 {
		t.Fatalf("%d hand-overs, want 0", *handOvers)
	}
	if ok, _ := st.StartPromptDrain(ctx, "next", time.Minute, time.Second); !ok {
		t.Fatal("the turn was not given back")
	}
}

// A drain whose budget ends while it should still be watching gives the
// turn up and hands over to a new prompt drain, so that what it watched
// for does not wait for the cron.
func TestPromptDrainOutOfBudgetHandsOver(t *testing.T) {
	d, st, handOvers := newDrain(t, 300*time.Millisecond) // less than it watches
	ctx := testCtx(t)
	if _, stepped, err := d.Run(ctx); err != nil || stepped {
		t.Fatalf("Run = stepped %v, %v", stepped, err)
	}
	if *handOvers != 1 {
		t.Fatalf("%d hand-overs, want 1", *handOvers)
	}
	if ok, _ := st.StartPromptDrain(ctx, "successor", time.Minute, time.Second); !ok {
		t.Fatal("the successor cannot take the turn")
	}
}

func TestPromptDrainStepsAsideWhileAnotherRuns(t *testing.T) {
	d, st, handOvers := newDrain(t, 8*time.Second)
	ctx := testCtx(t)
	st.StartPromptDrain(ctx, "running", time.Minute, time.Second)
	sum, stepped, err := d.Run(ctx)
	if err != nil || !stepped || sum.Claimed != 0 || *handOvers != 0 {
		t.Fatalf("Run = %+v, stepped %v, %v, %d hand-overs", sum, stepped, err, *handOvers)
	}
	if more, _ := st.FinishPromptDrain(ctx, "running", time.Minute); more <= 0 {
		t.Fatal("no note left for the running drain")
	}
}
