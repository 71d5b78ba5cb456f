package processor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// errStopped says a Strava call was not made because the rate limit
// stopped the drain.
var errStopped = errors.New("strava's rate limit stopped the drain")

// errRemoved says the athlete was removed in this drain (they deauthorized
// us): their events need no work.
var errRemoved = errors.New("athlete removed in this drain")

// notConnectedError says no tokens are stored for the athlete.
type notConnectedError struct{ athleteID int64 }

func (e notConnectedError) Error() string {
	return fmt.Sprintf("athlete %d not connected", e.athleteID)
}

// errReconnect says the athlete must connect again: Strava refused their
// refresh token. Their events are held until they do.
var errReconnect = errors.New("athlete must reconnect")

func (d *drain) process(ctx context.Context, g *group) {
	switch g.kind {
	case strava.KindFetch:
		d.fetch(ctx, g)
	case strava.KindDelete:
		if d.ownerUnknown(ctx, g) {
			return
		}
		d.forget(ctx, g, "deleted on Strava")
	case strava.KindDeauthorize:
		d.deauthorize(ctx, g)
	default:
		g.outcome, g.skipAll = outcomeDone, true
	}
}

// fetch gets the activity with its owner's token and keeps it. A 401 earns
// one token refresh and one more try.
func (d *drain) fetch(ctx context.Context, g *group) {
	owner, id := g.decider.OwnerID, g.decider.ObjectID
	token, err := d.token(ctx, owner)
	if err != nil {
		d.tokenFailed(ctx, g, err)
		return
	}
	activity, err := d.getActivity(ctx, token, id)
	if strava.IsUnauthorized(err) {
		if token, err = d.forceRefresh(ctx, owner, token); err != nil {
			d.tokenFailed(ctx, g, err)
			return
		}
		activity, err = d.getActivity(ctx, token, id)
		if strava.IsUnauthorized(err) {
			d.forget(ctx, g, "unreadable: 401 with a fresh token")
			return
		}
	}
	switch {
	case err == nil:
		d.keep(ctx, g, activity)
	case errors.Is(err, errStopped), strava.IsRateLimited(err):
		g.outcome = outcomeRelease
	case strava.IsNotFound(err):
		d.forget(ctx, g, "gone or private on Strava (404)")
	case ctx.Err() != nil:
		g.outcome = outcomeAbandoned
	default:
		d.fail(ctx, g, fmt.Sprintf("fetch activity %d: %v", id, err), false)
	}
}

// getActivity fetches one activity (see call).
func (d *drain) getActivity(ctx context.Context, token string, id int64) (*strava.DetailedActivity, error) {
	var activity *strava.DetailedActivity
	err := d.call(ctx, func(cctx context.Context) (resp *strava.Response, err error) {
		activity, resp, err = d.p.api.GetActivity(cctx, token, id)
		return resp, err
	})
	if err == nil {
		if activity == nil {
			return nil, fmt.Errorf("strava: get activity %d: empty answer", id)
		}
		d.count(func(s *Summary) { s.Fetched++ })
	}
	return activity, err
}

// call makes one Strava API call, unless the rate limit stopped the drain,
// and stops the drain when the answer says the limit is reached: after a
// 429, or after any answer whose usage is at a limit (that answer's own
// work still counts).
func (d *drain) call(ctx context.Context, do func(context.Context) (*strava.Response, error)) error {
	if d.limited.Load() || !d.quota.acquire() {
		return errStopped
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	resp, err := do(cctx)
	cancel()
	var rl strava.RateLimit
	if resp != nil {
		rl = resp.RateLimit
	}
	var serr *strava.Error
	if errors.As(err, &serr) && !rl.Known() {
		rl = serr.RateLimit
	}
	// Stop before releasing the quota slot, so that no waiting worker
	// starts a call in between.
	switch {
	case strava.IsRateLimited(err):
		d.rateLimited(ctx, rl, serr.RetryAfter)
	case rl.Exhausted():
		d.rateLimited(ctx, rl, 0)
	}
	d.quota.release(rl)
	return err
}

func (d *drain) keep(ctx context.Context, g *group, a *strava.DetailedActivity) {
	owner := g.decider.OwnerID
	if a.ID == 0 {
		a.ID = g.decider.ObjectID
	}
	if a.Athlete.ID == 0 {
		a.Athlete.ID = owner
	}
	// Keeping it after the athlete was removed in this drain would bring
	// their data back.
	if d.removed(owner) {
		g.outcome, g.skipAll = outcomeDone, true
		return
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	err := d.p.store.KeepActivity(rctx, *a, d.p.cfg.KeepFor)
	cancel()
	switch {
	case err == nil:
		d.count(func(s *Summary) { s.Kept++ })
		g.outcome, g.fetched = outcomeDone, a
	case errors.Is(err, store.ErrNotFound):
		// The athlete was removed while we fetched: nothing to keep.
		g.outcome, g.skipAll = outcomeDone, true
	case ctx.Err() != nil:
		g.outcome = outcomeAbandoned
	default:
		d.fail(ctx, g, err.Error(), false)
	}
}

// forget deletes the kept copy of the group's activity, if any.
func (d *drain) forget(ctx context.Context, g *group, why string) {
	owner, id := g.decider.OwnerID, g.decider.ObjectID
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	existed, err := d.p.store.DeleteActivity(rctx, owner, id)
	cancel()
	switch {
	case err == nil:
		d.count(func(s *Summary) { s.Deleted++ })
		d.p.logger.Debug("activity deleted", "activity", id, "athlete", owner, "was_kept", existed, "why", why)
		g.outcome, g.gone = outcomeDone, true
	case ctx.Err() != nil:
		g.outcome = outcomeAbandoned
	default:
		d.fail(ctx, g, err.Error(), false)
	}
}

// deauthorize acts on "the athlete revoked our access" only once Strava
// confirms it by refusing the athlete's refresh token: webhook events are
// not signed, and anyone can POST one.
func (d *drain) deauthorize(ctx context.Context, g *group) {
	id := g.decider.ObjectID
	e := d.athlete(id)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state == stateRemoved {
		g.outcome, g.skipAll = outcomeDone, true
		return
	}

	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	a, err := d.p.store.Athlete(rctx, id)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		d.p.logger.Debug("deauthorization of an athlete not stored; nothing to delete", "athlete", id)
		g.outcome = outcomeDrop
		return
	case err != nil && ctx.Err() != nil:
		g.outcome = outcomeAbandoned
		return
	case err != nil:
		d.fail(ctx, g, err.Error(), false)
		return
	}
	if a.NeedsReconnect() {
		d.deauthorizeReconnectNeeded(ctx, g, e, a)
		return
	}

	tctx, cancel := context.WithTimeout(ctx, tokenTimeout)
	token, err := d.p.store.ConfirmAuthorization(tctx, id, a.AccessToken, d.refresh)
	cancel()
	switch {
	case err == nil:
		d.p.logger.Warn("deauthorization event not confirmed: Strava still refreshes the athlete's token; nothing deleted",
			"athlete", id, "event_time", g.decider.EventTime)
		e.state, e.token = stateReady, token
		g.outcome, g.skipAll = outcomeDone, true
	case errors.Is(err, errStopped):
		g.outcome = outcomeRelease
	case ctx.Err() != nil:
		g.outcome = outcomeAbandoned
	case errors.Is(err, store.ErrNotFound):
		g.outcome, g.skipAll = outcomeDone, true // removed meanwhile
	case strava.IsRefreshRefused(err), errors.Is(err, store.ErrReconnectNeeded):
		d.applyDeauthorization(ctx, g, e, id, "deauthorization event confirmed by Strava")
	default:
		d.fail(ctx, g, fmt.Sprintf("confirm deauthorization of athlete %d: %v", id, err), false)
	}
}

// deauthorizeReconnectNeeded settles a deauthorization event for an
// athlete whose refresh token Strava already refused, with e.mu held. A
// refresh proves nothing for them: it is refused whether they revoked
// access or a drain died after Strava rotated the token, and anyone can
// post the event. Their stored access token is asked instead
// (GET /api/v3/athlete) while it has not expired: a 401 confirms, a 200
// says they did not deauthorize us.
func (d *drain) deauthorizeReconnectNeeded(ctx context.Context, g *group, e *athleteEntry, a store.Athlete) {
	id := a.ID
	if a.AccessToken == "" || !a.ExpiresAt.After(d.p.cfg.Now()) {
		// Nothing can confirm the event any more. Strava's API agreement
		// requires deleting the data of an athlete who deauthorized the
		// application, so the event is applied: a forgery succeeds only
		// against an athlete who must reconnect anyway.
		d.applyDeauthorization(ctx, g, e, id,
			"deauthorization event for an athlete who must reconnect; their access token expired, so Strava cannot confirm it")
		return
	}
	err := d.call(ctx, func(cctx context.Context) (*strava.Response, error) {
		_, resp, err := d.p.api.GetAuthenticatedAthlete(cctx, a.AccessToken)
		return resp, err
	})
	switch {
	case err == nil:
		d.p.logger.Warn("deauthorization event not confirmed: Strava still accepts the athlete's access token; nothing deleted",
			"athlete", id, "event_time", g.decider.EventTime)
		g.outcome, g.skipAll = outcomeDone, true
	case strava.IsUnauthorized(err):
		d.applyDeauthorization(ctx, g, e, id, "deauthorization event confirmed by Strava (access token refused)")
	case errors.Is(err, errStopped), strava.IsRateLimited(err):
		g.outcome = outcomeRelease
	case ctx.Err() != nil:
		g.outcome = outcomeAbandoned
	default:
		d.fail(ctx, g, fmt.Sprintf("confirm deauthorization of athlete %d: %v", id, err), false)
	}
}

// applyDeauthorization removes the athlete (removeLocked) and settles g.
func (d *drain) applyDeauthorization(ctx context.Context, g *group, e *athleteEntry, id int64, why string) {
	if err := d.removeLocked(ctx, e, id, why); err != nil {
		if ctx.Err() != nil {
			g.outcome = outcomeAbandoned
		} else {
			d.fail(ctx, g, err.Error(), false)
		}
		return
	}
	g.outcome = outcomeDone
}

// tokenFailed settles g after its owner's token could not be had.
func (d *drain) tokenFailed(ctx context.Context, g *group, err error) {
	var nc notConnectedError
	switch {
	case errors.Is(err, errStopped):
		g.outcome = outcomeRelease
	case errors.Is(err, errRemoved):
		g.outcome, g.skipAll = outcomeDone, true
	case errors.As(err, &nc):
		// Anyone can post events for any athlete id: those of athletes we
		// do not know cost no Strava call and leave nothing behind.
		g.outcome = outcomeDrop
	case errors.Is(err, errReconnect):
		g.outcome = outcomeHold
	case ctx.Err() != nil:
		g.outcome = outcomeAbandoned
	default:
		d.fail(ctx, g, err.Error(), false)
	}
}

// athleteState is what a drain learned about an athlete's tokens. It is
// remembered for the rest of the drain so that an athlete's hundred events
// cost one token read, and a broken token endpoint one call.
type athleteState int

const (
	stateUnknown      athleteState = iota
	stateReady                     // token holds a usable access token
	stateNotConnected              // no tokens stored
	stateRemoved                   // removed in this drain: they deauthorized us
	stateBroken                    // err says why no token could be had
	stateReconnect                 // Strava refused their refresh token: they must reconnect
)

type athleteEntry struct {
	// mu serializes token work per athlete within the drain; the store's
	// lock does the same across drains.
	mu    sync.Mutex
	state athleteState
	token string
	err   error
}

func (d *drain) athlete(id int64) *athleteEntry {
	d.athletesMu.Lock()
	defer d.athletesMu.Unlock()
	e := d.athletes[id]
	if e == nil {
		e = &athleteEntry{}
		d.athletes[id] = e
	}
	return e
}

func (d *drain) removed(id int64) bool {
	e := d.athlete(id)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state == stateRemoved
}

// known returns what the drain already learned about the athlete's token;
// ok is false when nothing is known yet.
func (e *athleteEntry) known(id int64) (token string, ok bool, err error) {
	switch e.state {
	case stateReady:
		return e.token, true, nil
	case stateNotConnected:
		return "", true, notConnectedError{id}
	case stateRemoved:
		return "", true, errRemoved
	case stateReconnect:
		return "", true, errReconnect
	case stateBroken:
		return "", true, e.err
	}
	return "", false, nil
}

// token is a usable access token for the athlete (refreshed by the store
// when it expires within a few minutes).
func (d *drain) token(ctx context.Context, id int64) (string, error) {
	e := d.athlete(id)
	e.mu.Lock()
	defer e.mu.Unlock()
	if token, ok, err := e.known(id); ok {
		return token, err
	}
	tctx, cancel := context.WithTimeout(ctx, tokenTimeout)
	token, err := d.p.store.AccessToken(tctx, id, d.refresh)
	cancel()
	if err != nil {
		return "", d.tokenError(ctx, e, id, err)
	}
	e.state, e.token = stateReady, token
	return token, nil
}

// forceRefresh replaces an access token Strava answered 401 to. When
// another worker already replaced it, that token is used without a call.
func (d *drain) forceRefresh(ctx context.Context, id int64, stale string) (string, error) {
	e := d.athlete(id)
	e.mu.Lock()
	defer e.mu.Unlock()
	if token, ok, err := e.known(id); ok && (err != nil || token != stale) {
		return token, err
	}
	tctx, cancel := context.WithTimeout(ctx, tokenTimeout)
	token, err := d.p.store.ForceRefresh(tctx, id, stale, d.refresh)
	cancel()
	if err != nil {
		return "", d.tokenError(ctx, e, id, err)
	}
	e.state, e.token = stateReady, token
	return token, nil
}

// tokenError classifies a failure to get a token, with e.mu held, and
// remembers the lasting ones for the rest of the drain.
func (d *drain) tokenError(ctx context.Context, e *athleteEntry, id int64, err error) error {
	switch {
	case errors.Is(err, errStopped):
		return errStopped
	case ctx.Err() != nil:
		return err
	case errors.Is(err, store.ErrNotFound):
		e.state = stateNotConnected
		return notConnectedError{id}
	case errors.Is(err, store.ErrReconnectNeeded):
		// Not a deauthorization: a drain that died after Strava rotated the
		// token and before it was saved ends the same way. Nothing is
		// deleted; the athlete's events wait for them to reconnect.
		if e.state != stateReconnect {
			d.p.logger.Warn("athlete must reconnect: strava refused their refresh token; their events are held until they connect again at /api/connect",
				"athlete", id)
		}
		e.state = stateReconnect
		return errReconnect
	default:
		err = fmt.Errorf("token of athlete %d: %w", id, err)
		e.state, e.err = stateBroken, err
		return err
	}
}

// removeLocked deletes the athlete's tokens and kept activities, with e.mu
// held.
func (d *drain) removeLocked(ctx context.Context, e *athleteEntry, id int64, why string) error {
	rctx, cancel := context.WithTimeout(ctx, 2*redisTimeout)
	n, err := d.p.store.RemoveAthlete(rctx, id)
	cancel()
	if err != nil {
		return fmt.Errorf("remove deauthorized athlete %d: %w", id, err)
	}
	e.state, e.token = stateRemoved, ""
	d.count(func(s *Summary) { s.Deauthorized++ })
	d.p.logger.Info("athlete deauthorized us; tokens and kept activities deleted",
		"athlete", id, "activities_deleted", n, "why", why)
	// Events held while they were asked to reconnect: ready again, and the
	// next drain drops them (their owner is no longer connected).
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
	defer cancel()
	if _, err := d.p.queue.Unhold(uctx, HoldGroup(id)); err != nil {
		d.p.logger.Warn("release the events held for a removed athlete", "athlete", id, "error", err)
	}
	return nil
}

// releaseReconnected makes ready the events held for athletes who no longer
// need to reconnect (or are gone): the connect callback releases them
// itself right after saving the athlete, and this catches a release that a
// crash in between missed. One read when nothing is held.
func (d *drain) releaseReconnected(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	groups, err := d.p.queue.HeldGroups(rctx)
	if err != nil {
		d.p.logger.Warn("list the athletes whose events are held", "error", err)
		return
	}
	for _, group := range groups {
		id, err := strconv.ParseInt(strings.TrimPrefix(group, holdGroupPrefix), 10, 64)
		if err != nil || !strings.HasPrefix(group, holdGroupPrefix) {
			continue
		}
		a, err := d.p.store.Athlete(rctx, id)
		if err == nil && a.NeedsReconnect() || err != nil && !errors.Is(err, store.ErrNotFound) {
			continue
		}
		if n, err := d.p.queue.Unhold(rctx, group); err != nil {
			d.p.logger.Warn("release held events", "athlete", id, "error", err)
		} else if n > 0 {
			d.p.logger.Info("held events released: their athlete no longer needs to reconnect", "athlete", id, "events", n)
		}
	}
}

const holdGroupPrefix = "athlete:"

// HoldGroup is the queue group that holds an athlete's events while they
// must reconnect; releasing it (queue.Unhold) makes them ready.
func HoldGroup(athleteID int64) string { return holdGroupPrefix + strconv.FormatInt(athleteID, 10) }

// ownerUnknown settles g as dropped when its owner is not a connected
// athlete, and reports whether it did; one Redis read per athlete per drain.
func (d *drain) ownerUnknown(ctx context.Context, g *group) bool {
	id := g.decider.OwnerID
	e := d.athlete(id)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.state {
	case stateNotConnected, stateRemoved:
		g.outcome = outcomeDrop
		return true
	case stateUnknown:
	default:
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	_, err := d.p.store.Athlete(rctx, id)
	cancel()
	if errors.Is(err, store.ErrNotFound) {
		e.state = stateNotConnected
		g.outcome = outcomeDrop
		return true
	}
	// Known, or unknown because Redis failed: forget's own call tells.
	return false
}

// refresh is the store's RefreshFunc: Strava's token endpoint, unless the
// rate limit stopped the drain. A 429 stops the drain and comes back
// wrapping errStopped, so that the event is handed back, not failed.
func (d *drain) refresh(ctx context.Context, refreshToken string) (*strava.Token, error) {
	if d.limited.Load() {
		return nil, errStopped
	}
	tok, err := d.p.api.RefreshToken(ctx, refreshToken)
	var serr *strava.Error
	if errors.As(err, &serr) && strava.IsRateLimited(err) {
		d.rateLimited(ctx, serr.RateLimit, serr.RetryAfter)
		return nil, fmt.Errorf("%w: %w", errStopped, err)
	}
	return tok, err
}

// quota keeps the calls in flight within what Strava's latest answer said
// is left of its rate limits, so that a drain alone on the application's
// quota stops at the limit instead of sending up to Concurrency calls past
// it (Strava counts those too, and they only earn 429s).
type quota struct {
	mu       sync.Mutex
	cond     *sync.Cond
	inFlight int
	// left is what the tightest window still allows (math.MaxInt while no
	// answer gave a limit); a window used past its limit leaves less than
	// nothing, which waits the same as nothing.
	left     int
	answered bool // some call came back: until then one call probes the quota
	stopped  bool
}

func newQuota() *quota {
	q := &quota{left: math.MaxInt}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// acquire waits for a slot and reports false once the drain stopped. It
// only waits while calls are in flight, whose answers free slots.
func (q *quota) acquire() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.stopped && q.inFlight > 0 && (!q.answered || q.inFlight >= q.left) {
		q.cond.Wait()
	}
	if q.stopped {
		return false
	}
	q.inFlight++
	return true
}

// release frees a slot and learns from the answer's rate-limit headers.
// Answers arrive out of order, and an older one reports less usage: within
// a drain usage only grows, so the smallest "left" seen is the truth (only
// a window ending mid-drain makes that too careful, never too bold).
func (q *quota) release(rl strava.RateLimit) {
	q.mu.Lock()
	q.inFlight--
	q.answered = true
	q.left = min(q.left, callsLeft(rl))
	q.mu.Unlock()
	q.cond.Broadcast()
}

func (q *quota) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// callsLeft is how many requests the tightest known window still allows
// (negative past a limit); math.MaxInt when the headers gave no limit.
func callsLeft(rl strava.RateLimit) int {
	left := math.MaxInt
	for _, w := range [][2]int{
		{rl.Limit15, rl.Usage15}, {rl.LimitDaily, rl.UsageDaily},
		{rl.ReadLimit15, rl.ReadUsage15}, {rl.ReadLimitDaily, rl.ReadUsageDaily},
	} {
		if limit, usage := w[0], w[1]; limit > 0 {
			left = min(left, limit-usage)
		}
	}
	return left
}
