// Package processor owns one drain of the event queue: it claims queued
// webhook events, coalesces those about the same object, fetches each
// created activity from Strava with its athlete's token and keeps it,
// applies deletions and confirmed deauthorizations, and settles every event
// with the queue — acked once its work is done, retried with backoff, buried
// after the last attempt, or released untouched when Strava's rate limit
// stops the drain. What it did comes back as a Summary.
//
// A drain is at-least-once: nothing is acked before its work is done, and a
// drain that dies leaves its events leased, so they reappear when the lease
// ends. The work is idempotent (activities are upserted by id), so redoing
// it is harmless.
package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stravahook/stravahook/lib/notify"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// Strava is the part of the Strava client a drain uses; *strava.Client
// implements it.
type Strava interface {
	GetActivity(ctx context.Context, accessToken string, id int64) (*strava.DetailedActivity, *strava.Response, error)
	RefreshToken(ctx context.Context, refreshToken string) (*strava.Token, error)
	GetAuthenticatedAthlete(ctx context.Context, accessToken string) (*strava.Athlete, *strava.Response, error)
}

// Defaults for Config.
const (
	// DefaultBudget is how long one drain may run: well inside the
	// process_events function's maxDuration (vercel.json), which must
	// also cover the lease the drain's events are held with.
	DefaultBudget      = 8 * time.Second
	DefaultLease       = 2 * time.Minute
	DefaultBatchSize   = 500
	DefaultConcurrency = 16
	DefaultMaxAttempts = 8
	DefaultBackoffBase = 30 * time.Second
	// MaxBackoff caps the wait before a retry.
	MaxBackoff = 6 * time.Hour
)

// Timeouts of single operations, each derived from the drain's context so
// none outlives the drain's deadline.
const (
	// callTimeout bounds one GetActivity.
	callTimeout = 10 * time.Second
	// tokenTimeout bounds getting a token: it may wait for another drain's
	// refresh (store's lock lives 15 s) and then refresh itself.
	tokenTimeout = 20 * time.Second
	// redisTimeout bounds one Redis operation: rueidis retries read-only
	// commands until the context ends, so every call needs a deadline.
	redisTimeout = 5 * time.Second
	// settleTimeout bounds the acks sent after the drain's context ended, so
	// that work already done is not redone after the lease.
	settleTimeout = 2 * time.Second
)

// Config tunes a Processor. Zero values take the defaults.
type Config struct {
	// Budget is how long the drain keeps claiming and starting work
	// (default 8 s). Work already started finishes; unstarted events are
	// handed back at once. It must leave room inside the function's
	// maxDuration for the calls in flight (at most callTimeout).
	Budget time.Duration
	// Lease hides claimed events from other drains (default 2 min, more than
	// Budget plus the function's maxDuration of 60 s): a crashed drain's
	// events reappear when it ends. It is never shorter than MinLease(Budget):
	// a longer budget lengthens it, so that no event's lease ends while the
	// drain that holds it still works on it.
	Lease time.Duration
	// BatchSize is how many events one claim takes (default 500: large, so
	// that a create and its later delete meet in one batch and cost no call).
	BatchSize int
	// Concurrency is how many events are worked on at once, hence the
	// number of Strava calls in flight (default 16).
	Concurrency int
	// MaxAttempts is how many failed attempts bury an event in the dead
	// list with its last error (default 8).
	MaxAttempts int
	// BackoffBase is the first retry's delay (default 30 s). Attempt n waits
	// a random time in [d, 1.5·d] with d = BackoffBase·2^(n-1), capped at
	// MaxBackoff.
	BackoffBase time.Duration
	// KeepFor is how long a fetched activity is kept (default and maximum
	// store.MaxKeep, Strava's 7 days).
	KeepFor time.Duration
	// Now is the wall clock used against Strava's rate-limit windows
	// (default time.Now). The budget is measured on the monotonic clock.
	Now func() time.Time
	// Notifier, when enabled (NOTIFY_URL), gets a notification for each
	// event's work, stored before the event is acked and delivered after
	// the Strava work (notify.go).
	Notifier *notify.Notifier
	// Settle makes each claim wait until the oldest ready event has been
	// ready this long, so that an update or delete right behind a create is
	// claimed, and coalesced, with it (prompt drains; default 0: claim at
	// once).
	Settle time.Duration
	// Idle, when set, is asked what to do when a claim finds nothing: the
	// drain waits the duration it returns and claims again, or ends when it
	// returns 0. The waits count against the budget. Prompt drains use it to
	// keep watching the queue for a moment (see lib/promptdrain).
	Idle func(ctx context.Context) time.Duration
}

func (c Config) withDefaults() Config {
	if c.Budget <= 0 {
		c.Budget = DefaultBudget
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	c.Lease = max(c.Lease, MinLease(c.Budget))
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.KeepFor <= 0 {
		c.KeepFor = store.MaxKeep
	}
	c.KeepFor = min(c.KeepFor, store.MaxKeep)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// MinLease is the shortest lease a drain with this budget uses: the budget,
// plus the longest piece of work started at its very end (getting a token,
// which may include waiting for another drain's refresh, and one Strava
// call), plus the settling acks and a margin.
func MinLease(budget time.Duration) time.Duration {
	return budget + tokenTimeout + callTimeout + 2*redisTimeout + 30*time.Second
}

// Processor drains the queue. It is safe for concurrent use; each Drain
// keeps its own state, and several drains (in one process or many) share
// the queue safely.
type Processor struct {
	cfg    Config
	queue  *queue.Queue
	store  *store.Store
	api    Strava
	logger *slog.Logger
}

// New returns a Processor. A nil logger discards logs.
func New(cfg Config, q *queue.Queue, st *store.Store, api Strava, logger *slog.Logger) *Processor {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Processor{cfg: cfg.withDefaults(), queue: q, store: st, api: api, logger: logger}
}

// Summary is what one drain did. Event counts (Claimed, Skipped, Retried,
// Dead) count queue events; Fetched, Kept and Deleted count activities,
// Deauthorized athletes.
type Summary struct {
	Claimed int `json:"claimed"`
	// Fetched is how many activities Strava returned.
	Fetched int `json:"fetched"`
	Kept    int `json:"kept"`
	// Deleted counts activities removed: delete events, 404s and activities
	// unreadable even with a fresh token.
	Deleted int `json:"deleted"`
	// Skipped counts events acked without work of their own: superseded by a
	// later event about the same object, about an athlete removed in this
	// drain, or deauthorizations Strava did not confirm.
	Skipped      int `json:"skipped"`
	Retried      int `json:"retried"`
	Dead         int `json:"dead"`
	Deauthorized int `json:"deauthorized"`
	// Held counts events set aside until their athlete reconnects (Strava
	// refused the athlete's refresh token); no attempt was counted.
	Held int `json:"held"`
	// Dropped counts events of athletes who are not connected: no Strava
	// call, nothing kept of them.
	Dropped int `json:"dropped"`
	// RateLimited says Strava's rate limit stopped (or prevented) the drain;
	// RateLimitedUntil is when its window ends. Events not yet done were
	// left queued until then, without counting an attempt.
	RateLimited      bool       `json:"rate_limited"`
	RateLimitedUntil *time.Time `json:"rate_limited_until,omitempty"`
	// Remaining is how many events wait in the queue after the drain (ready
	// and delayed, leased included); -1 when it was not counted (the drain
	// failed or was interrupted).
	Remaining  int64 `json:"remaining"`
	DurationMS int64 `json:"duration_ms"`
	// Notifications is what the drain stored and delivered; absent when
	// NOTIFY_URL is not set.
	Notifications *notify.Summary `json:"notifications,omitempty"`
}

// Drain claims and works off queued events until the queue is empty, the
// budget is spent, Strava's rate limit is reached or ctx ends. It returns
// an error when Redis fails it or ctx ends; the Summary is filled in
// either way. Events it did not finish stay queued.
func (p *Processor) Drain(ctx context.Context) (Summary, error) {
	start := time.Now()
	d := &drain{p: p, start: start, deadline: start.Add(p.cfg.Budget), athletes: map[int64]*athleteEntry{}, quota: newQuota()}
	if p.cfg.Notifier.Enabled() {
		d.sum.Notifications = &notify.Summary{}
	}
	finishDelivering := d.startDelivering(ctx)
	d.releaseReconnected(ctx)
	err := d.run(ctx)
	if err == nil {
		err = d.lostUpdate()
	}
	finishDelivering()

	sum := d.summary()
	sum.Remaining = -1
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, redisTimeout)
		if _, pruneErr := p.queue.PruneDead(pctx); pruneErr != nil {
			p.logger.Warn("prune the dead list", "error", pruneErr)
		}
		cancel()
		sctx, cancel := context.WithTimeout(ctx, redisTimeout)
		stats, statsErr := p.queue.Stats(sctx)
		cancel()
		if statsErr != nil {
			p.logger.Warn("count the queue after the drain", "error", statsErr)
		} else {
			sum.Remaining = stats.Ready + stats.Delayed
		}
	}
	sum.DurationMS = time.Since(d.start).Milliseconds()

	attrs := []any{
		"claimed", sum.Claimed, "fetched", sum.Fetched, "kept", sum.Kept, "deleted", sum.Deleted,
		"skipped", sum.Skipped, "retried", sum.Retried, "dead", sum.Dead, "deauthorized", sum.Deauthorized,
		"held", sum.Held, "dropped", sum.Dropped,
		"rate_limited", sum.RateLimited, "remaining", sum.Remaining, "duration_ms", sum.DurationMS,
	}
	if sum.RateLimitedUntil != nil {
		attrs = append(attrs, "rate_limited_until", sum.RateLimitedUntil.UTC().Format(time.RFC3339))
	}
	attrs = append(attrs, notificationAttrs(sum.Notifications)...)
	if err != nil {
		p.logger.Error("drain", append(attrs, "error", err)...)
	} else {
		p.logger.Info("drain", attrs...)
	}
	return sum, err
}

// drain is the state of one Drain call.
type drain struct {
	p     *Processor
	start time.Time
	// deadline ends the budget: no claim and no work starts after it.
	deadline time.Time

	// limited is set the moment Strava says its rate limit is reached, so
	// that no new call starts; limitUntil is the latest window end seen.
	limited    atomic.Bool
	limitMu    sync.Mutex
	limitUntil time.Time
	quota      *quota

	athletesMu sync.Mutex
	athletes   map[int64]*athleteEntry

	// delivering is kicked when notifications were stored (notify.go).
	delivering *notify.Session

	sumMu sync.Mutex
	sum   Summary
	// lost is the first failure to record an event's failure in the queue:
	// the event stays leased until the lease ends, and the caller should
	// hear that Redis is failing.
	lost error
}

func (d *drain) noteLost(err error) {
	d.sumMu.Lock()
	if d.lost == nil {
		d.lost = err
	}
	d.sumMu.Unlock()
}

func (d *drain) lostUpdate() error {
	d.sumMu.Lock()
	defer d.sumMu.Unlock()
	if d.lost == nil {
		return nil
	}
	return fmt.Errorf("drain: %w", d.lost)
}

func (d *drain) count(f func(s *Summary)) {
	d.sumMu.Lock()
	f(&d.sum)
	d.sumMu.Unlock()
}

func (d *drain) summary() Summary {
	d.sumMu.Lock()
	s := d.sum
	d.sumMu.Unlock()
	if d.limited.Load() {
		d.limitMu.Lock()
		until := d.limitUntil
		d.limitMu.Unlock()
		s.RateLimited = true
		s.RateLimitedUntil = &until
	}
	return s
}

func (d *drain) budgetSpent() bool { return !time.Now().Before(d.deadline) }

func (d *drain) run(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("drain interrupted: %w", context.Cause(ctx))
		}
		if d.budgetSpent() || d.limited.Load() {
			return nil
		}
		// Read before every claim: another drain may have hit the limit.
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		until, err := d.p.store.RateLimitedUntil(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		if until.After(d.p.cfg.Now()) {
			d.noteLimit(until)
			return nil
		}

		rctx, cancel = context.WithTimeout(ctx, redisTimeout)
		msgs, err := d.p.queue.ClaimSettled(rctx, d.p.cfg.BatchSize, d.p.cfg.Lease, d.p.cfg.Settle)
		cancel()
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		if len(msgs) == 0 {
			if !d.idle(ctx) {
				return nil
			}
			continue
		}
		d.count(func(s *Summary) { s.Claimed += len(msgs) })
		if err := d.batch(ctx, msgs); err != nil {
			return err
		}
	}
}

// idle waits as long as Config.Idle asks, within the budget, and says
// whether to claim again.
func (d *drain) idle(ctx context.Context) bool {
	if d.p.cfg.Idle == nil {
		return false
	}
	wait := min(d.p.cfg.Idle(ctx), time.Until(d.deadline))
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return true // the loop reports the interruption
	}
}

// batch works off one claim: coalesce, deauthorizations first (so that
// the activities of an athlete who left are not fetched), then activities,
// then one ack and at most one release for the whole claim.
func (d *drain) batch(ctx context.Context, msgs []queue.Message) error {
	groups, undecodable := coalesce(msgs)
	for _, bad := range undecodable {
		d.failMessage(ctx, bad.msg, "undecodable event", "undecodable payload: "+bad.err.Error(), true)
	}
	var athletes, activities []*group
	for _, g := range groups {
		if g.kind == strava.KindDeauthorize {
			athletes = append(athletes, g)
		} else {
			activities = append(activities, g)
		}
	}
	d.work(ctx, athletes)
	d.work(ctx, activities)
	d.storeNotifications(ctx, groups)
	return d.settle(ctx, msgs[0].Token, groups)
}

// work runs groups on at most Concurrency workers. A worker stops taking
// groups once the drain must stop starting work; those left are
// outcomeUnstarted.
func (d *drain) work(ctx context.Context, groups []*group) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(d.p.cfg.Concurrency, len(groups)) {
		wg.Go(func() {
			for {
				if ctx.Err() != nil || d.limited.Load() || d.budgetSpent() {
					return
				}
				i := int(next.Add(1) - 1)
				if i >= len(groups) {
					return
				}
				d.process(ctx, groups[i])
			}
		})
	}
	wg.Wait()
}

// settle acks the done groups in one round trip and hands back the
// unstarted and rate-limited ones in another. After ctx ended it only acks
// (briefly, so the work is not redone); the rest stays leased until the
// lease ends.
func (d *drain) settle(ctx context.Context, token string, groups []*group) error {
	var done, back, dropped []string
	held := map[int64][]string{}
	skipped := 0
	for _, g := range groups {
		switch g.outcome {
		case outcomeDrop:
			for _, m := range g.msgs {
				dropped = append(dropped, m.ID)
			}
		case outcomeHold:
			owner := g.decider.OwnerID
			for _, m := range g.msgs {
				held[owner] = append(held[owner], m.ID)
			}
		case outcomeDone:
			for _, m := range g.msgs {
				done = append(done, m.ID)
			}
			if g.skipAll {
				skipped += len(g.msgs)
			} else {
				skipped += len(g.msgs) - 1
			}
		case outcomeUnstarted, outcomeRelease:
			for _, m := range g.msgs {
				back = append(back, m.ID)
			}
		}
	}
	d.count(func(s *Summary) { s.Skipped += skipped })

	interrupted := ctx.Err() != nil
	actx, cancel := context.WithTimeout(ctx, redisTimeout)
	if interrupted {
		actx, cancel = context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	}
	defer cancel()
	var errs []error
	// The queue's calls answer at once, without Redis, for no ids.
	n, err := d.p.queue.Drop(actx, token, dropped...)
	if err != nil {
		errs = append(errs, fmt.Errorf("drain: %w", err))
	}
	d.count(func(s *Summary) { s.Dropped += n })
	for owner, ids := range held {
		key, field := d.p.store.ReconnectGuard(owner)
		res, err := d.p.queue.Hold(actx, token, HoldGroup(owner), queue.Guard{Key: key, Field: field}, ids...)
		if err != nil {
			// Still leased: they reappear when the lease ends.
			errs = append(errs, fmt.Errorf("drain: %w", err))
		}
		if res.Buried > 0 {
			d.p.logger.Warn("events held beyond the cap while the athlete must reconnect were moved to the dead list",
				"athlete", owner, "buried", res.Buried)
		}
		d.count(func(s *Summary) { s.Held += res.Held; s.Dead += res.Buried })
	}
	if n, err := d.p.queue.Ack(actx, token, done...); err != nil {
		errs = append(errs, fmt.Errorf("drain: %w", err))
	} else if n < len(done) {
		d.p.logger.Warn("some done events were no longer leased by this drain; another drain may redo them",
			"acked", n, "done", len(done))
	}
	if interrupted {
		// run's next turn reports the interruption.
		return errors.Join(errs...)
	}
	visibleAt := d.p.cfg.Now()
	if d.limited.Load() {
		d.limitMu.Lock()
		visibleAt = d.limitUntil
		d.limitMu.Unlock()
	}
	if _, err := d.p.queue.Release(actx, token, visibleAt, back...); err != nil {
		// They reappear when the lease ends; nothing is lost.
		errs = append(errs, fmt.Errorf("drain: %w", err))
	}
	return errors.Join(errs...)
}

// rateLimited stops the drain: no call starts after this, and the window
// end is remembered in Redis for every drain.
func (d *drain) rateLimited(ctx context.Context, rl strava.RateLimit, retryAfter time.Duration) {
	now := d.p.cfg.Now()
	until := rl.ResetAt(now)
	// ResetAt is after now, so a missing (0) Retry-After never wins.
	if after := now.Add(retryAfter); after.After(until) {
		until = after
	}
	first := !d.limited.Swap(true)
	d.noteLimit(until)

	// Recorded even when the drain is being cancelled: it protects the
	// next drain from calling Strava into the same wall.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	if err := d.p.store.SetRateLimitedUntil(sctx, until); err != nil {
		d.p.logger.Error("remember strava's rate limit", "until", until.UTC().Format(time.RFC3339), "error", err)
	}
	if first {
		d.p.logger.Warn("strava rate limit reached; drain stops",
			"until", until.UTC().Format(time.RFC3339),
			"usage_15min", rl.Usage15, "limit_15min", rl.Limit15,
			"usage_daily", rl.UsageDaily, "limit_daily", rl.LimitDaily,
			"read_usage_15min", rl.ReadUsage15, "read_limit_15min", rl.ReadLimit15,
			"read_usage_daily", rl.ReadUsageDaily, "read_limit_daily", rl.ReadLimitDaily)
	}
}

func (d *drain) noteLimit(until time.Time) {
	d.limited.Store(true)
	d.quota.stop()
	d.limitMu.Lock()
	if until.After(d.limitUntil) {
		d.limitUntil = until
	}
	d.limitMu.Unlock()
}

// fail records a failed attempt for every event of g (or buries them at
// once when permanent).
func (d *drain) fail(ctx context.Context, g *group, cause string, permanent bool) {
	if ctx.Err() != nil {
		// The drain is being stopped, not the event failing: leave it leased.
		g.outcome = outcomeAbandoned
		return
	}
	g.outcome = outcomeFailed
	for _, m := range g.msgs {
		d.failMessage(ctx, m, g.describe(), cause, permanent)
	}
}

func (d *drain) failMessage(ctx context.Context, m queue.Message, what, cause string, permanent bool) {
	maxAttempts := d.p.cfg.MaxAttempts
	if permanent {
		maxAttempts = 0
	}
	retryIn := d.backoff(m.Attempts + 1)
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	res, err := d.p.queue.Fail(rctx, m, cause, retryIn, maxAttempts)
	cancel()
	if err != nil {
		// Still leased: it reappears when the lease ends.
		d.p.logger.Error("record a failed event", "event", m.ID, "object", what, "cause", cause, "error", err)
		if !errors.Is(err, queue.ErrLeaseLost) {
			d.noteLost(err)
		}
		return
	}
	if res.Dead {
		d.count(func(s *Summary) { s.Dead++ })
		d.p.logger.Error("event dead", "event", m.ID, "object", what, "attempts", res.Attempts, "error", cause)
		return
	}
	d.count(func(s *Summary) { s.Retried++ })
	d.p.logger.Warn("event failed; will retry", "event", m.ID, "object", what,
		"attempts", res.Attempts, "retry_in", retryIn.Round(time.Second).String(), "error", cause)
}

// backoff is the wait before retrying after failed attempt n (1-based):
// d = BackoffBase·2^(n-1), jittered within [d, 1.5·d] so that events failed
// together do not come back together, and capped at MaxBackoff.
func (d *drain) backoff(attempt int) time.Duration {
	delay := min(d.p.cfg.BackoffBase, MaxBackoff)
	for range attempt - 1 {
		delay = min(2*delay, MaxBackoff)
	}
	// Jitter only lengthens the wait: no retry comes sooner than d.
	return min(time.Duration(float64(delay)*(1+rand.Float64()/2)), MaxBackoff)
}
