package promptdrain

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/stravahook/stravahook/lib/processor"
)

// Leases is the prompt drains' turn-taking in Redis; *store.Store
// implements it.
type Leases interface {
	StartPromptDrain(ctx context.Context, token string, lease, watch time.Duration) (bool, error)
	FinishPromptDrain(ctx context.Context, token string, lease time.Duration) (time.Duration, error)
	ReleasePromptDrain(ctx context.Context, token string) error
}

// leaseSlack is how much longer than its budget a prompt drain holds the
// lease: the Strava calls in flight when the budget ends may take up to 10
// s, and settling them a few more. Lease returns the whole.
const leaseSlack = 20 * time.Second

// Lease is how long a prompt drain with this budget may hold its turn; its
// context should end by then.
func Lease(budget time.Duration) time.Duration { return budget + leaseSlack }

// leaseOpTimeout bounds each lease operation.
const leaseOpTimeout = 2 * time.Second

// Drain runs prompt drains. Build one per instance.
type Drain struct {
	Leases Leases
	Logger *slog.Logger
	// Budget is the drain's budget (its processor's).
	Budget time.Duration
	// Processor builds the processor of one prompt drain from what this
	// package adds to its Config: Settle and Idle.
	Processor func(settle time.Duration, idle func(context.Context) time.Duration) *processor.Processor
	// HandOver asks for the next prompt drain when this one ran out of
	// budget while it was still working or watching.
	HandOver func()
}

// Run runs one prompt drain, or steps aside (steppedAside, an empty
// Summary) when another one holds the turn: that one then keeps watching
// the queue for this one.
func (d *Drain) Run(ctx context.Context) (sum processor.Summary, steppedAside bool, err error) {
	start := time.Now()
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	token := newToken()
	lease := Lease(d.Budget)
	lctx, cancel := context.WithTimeout(ctx, leaseOpTimeout)
	mine, err := d.Leases.StartPromptDrain(lctx, token, lease, watch)
	cancel()
	if err != nil {
		return processor.Summary{Remaining: -1}, false, err
	}
	if !mine {
		return processor.Summary{Remaining: -1}, true, nil
	}

	watchUntil := start.Add(watch)
	released := false
	idle := func(ctx context.Context) time.Duration {
		now := time.Now()
		if now.Before(watchUntil) {
			return min(poll, watchUntil.Sub(now))
		}
		lctx, cancel := context.WithTimeout(ctx, leaseOpTimeout)
		more, err := d.Leases.FinishPromptDrain(lctx, token, lease)
		cancel()
		if err != nil {
			// The lease ends by itself; the next trigger takes over.
			logger.Warn("prompt drain: end of turn not recorded", "error", err.Error())
			released = true
			return 0
		}
		if more > 0 {
			watchUntil = now.Add(more)
			return min(poll, more)
		}
		released = true
		return 0
	}
	sum, err = d.Processor(Settle, idle).Drain(ctx)
	if released {
		return sum, false, err
	}
	// Out of budget (or stopped by Strava's rate limit, or failing): give
	// the turn up, and when only time ran out, hand over so that the events
	// this drain was watching for do not wait for the cron.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseOpTimeout)
	if rerr := d.Leases.ReleasePromptDrain(rctx, token); rerr != nil {
		logger.Warn("prompt drain: turn not released; it ends by itself", "error", rerr.Error(), "lease_s", lease.Seconds())
	}
	cancel()
	if err == nil && !sum.RateLimited && d.HandOver != nil {
		d.HandOver()
	}
	return sum, false, err
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
