// Package queue owns stravahook's Redis-backed work queue, built for a
// consumer that is a short-lived serverless function rather than a
// long-lived worker:
//
//   - Enqueue is idempotent per delivery id (Strava retries a webhook up to
//     three times) and costs one round trip (see enqueue.go).
//   - Claim leases events: they stay in Redis, hidden until the lease ends,
//     so a drain that crashes or times out loses nothing — its events
//     reappear by themselves.
//   - Ack removes done work; Fail schedules a retry with the given backoff
//     or, after the last attempt, moves the event to the dead list with its
//     error; Release hands events back without counting an attempt (used
//     when Strava's rate limit stops a drain); Redrive revives the dead.
//   - Hold parks leased events in a named group (an athlete who must
//     reconnect) without counting an attempt, until Unhold makes them ready;
//     beyond the group's cap (WithHeldMax) they go to the dead list instead;
//     Drop forgets events that need no work and no dedupe record (events of
//     athletes who are not connected).
//   - The dead list is bounded: entries older than the retention and those
//     beyond the size cap (oldest first) are pruned with their payloads and
//     errors (see WithDeadRetention).
//
// Every event lives in one sorted set scored by the time it becomes visible:
// "ready" is a score in the past, "leased" and "delayed" are scores in the
// future. A single time-scored set needs no separate scheduler for retries,
// leases and rate-limit pauses: each is just a later score. Acked and
// buried events keep their place in the same set, in score bands far above
// every visible-at time (doneBase, deadBase), and so do held ones
// (heldBase): no claim ever reaches them,
// and the intake's ZADD NX is all the dedupe it needs. Each operation is
// one round trip and atomic: a Lua script, named and described below in
// the style of hibiken/asynq, or for the intake's enqueue, plain commands
// (a ZADD NX, with the payload's HSETNX in a MULTI/EXEC when there is one;
// enqueue.go).
//
// Key layout, every key under the prefix given to New:
//
//	pending       ZSET  id → visible-at (unix ms) while queued, leased or
//	                    delayed; heldBase + held-at while held;
//	                    doneBase + acked-at for the dedupe window
//	                    after an ack; deadBase + buried-at once buried
//	queued        HASH  id → when it was first queued (unix ms), written at
//	                    its first claim (until then its score says it)
//	held:{group}  SET   ids held for that group (see Hold)
//	held_groups   SET   the groups holding events
//	payloads      HASH  id → payload bytes (until acked; none for an event
//	                    enqueued with an empty payload)
//	attempts      HASH  id → failed attempts so far (absent = 0)
//	claims        HASH  id → token of the claim holding the lease
//	errors        HASH  id → last error message
//
// All keys a script touches are passed in KEYS (Upstash and Redis Cluster
// rules).
package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// Score bands of pending above the visible-at times (unix ms, about 1.8e12
// today; 1e14 is the year 5138). Scores stay below 2^53, so float64 holds
// them exactly.
const (
	heldBase int64 = 50_000_000_000_000  // held at t: heldBase + t
	doneBase int64 = 100_000_000_000_000 // acked at t: doneBase + t
	deadBase int64 = 200_000_000_000_000 // buried at t: deadBase + t
)

// Defaults of WithDeadRetention: 30 days, and a cap that keeps
// the dead list to a few megabytes.
const (
	DefaultDeadMaxAge = 30 * 24 * time.Hour
	DefaultDeadMaxLen = 10_000
)

// DefaultHeldMax is how many events one group (an athlete who must
// reconnect) may hold by default (WithHeldMax). Athlete ids are public, so
// without a callback secret anyone can post events for such an athlete:
// held forever, each would grow Redis and cost a Strava call on reconnect.
// A real athlete makes a few events a day; a thousand is weeks of them.
const DefaultHeldMax = 1_000

// DefaultDedupeWindow is how long a delivery id is remembered. Strava
// retries within minutes; a day leaves room for slow redeliveries.
const DefaultDedupeWindow = 24 * time.Hour

// Queue is a handle on one queue in Redis. It is safe for concurrent use.
type Queue struct {
	client         rueidis.Client
	keys           keys
	dedupeWindow   time.Duration
	enqueueTimeout time.Duration
	deadMaxAge     time.Duration
	deadMaxLen     int
	heldMax        int
	now            func() time.Time
}

type keys struct {
	prefix, pending, payloads, attempts, claims, errors, queued, heldGroups string
}

// Option configures a Queue.
type Option func(*Queue)

// WithClock replaces time.Now (tests move time without sleeping).
func WithClock(now func() time.Time) Option { return func(q *Queue) { q.now = now } }

// WithDeadRetention bounds the dead list: entries buried longer than
// maxAge ago are pruned, and beyond maxLen entries the oldest are. Zero or
// negative values keep the defaults (DefaultDeadMaxAge, DefaultDeadMaxLen).
func WithDeadRetention(maxAge time.Duration, maxLen int) Option {
	return func(q *Queue) {
		if maxAge > 0 {
			q.deadMaxAge = maxAge
		}
		if maxLen > 0 {
			q.deadMaxLen = maxLen
		}
	}
}

// WithHeldMax caps how many events one group may hold (see Hold); zero or
// negative keeps DefaultHeldMax.
func WithHeldMax(n int) Option {
	return func(q *Queue) {
		if n > 0 {
			q.heldMax = n
		}
	}
}

// WithEnqueueTimeout bounds how long Enqueue waits for Redis.
func WithEnqueueTimeout(d time.Duration) Option { return func(q *Queue) { q.enqueueTimeout = d } }

// New returns the queue whose keys all start with prefix.
func New(client rueidis.Client, prefix string, opts ...Option) *Queue {
	q := &Queue{
		client: client,
		keys: keys{
			prefix:   prefix,
			pending:  prefix + "pending",
			payloads: prefix + "payloads",
			attempts: prefix + "attempts",
			claims:   prefix + "claims",
			errors:   prefix + "errors",
			queued:   prefix + "queued",

			heldGroups: prefix + "held_groups",
		},
		dedupeWindow:   DefaultDedupeWindow,
		enqueueTimeout: DefaultEnqueueTimeout,
		deadMaxAge:     DefaultDeadMaxAge,
		deadMaxLen:     DefaultDeadMaxLen,
		heldMax:        DefaultHeldMax,
		now:            time.Now,
	}
	for _, o := range opts {
		o(q)
	}
	return q
}

// Message is one claimed event.
type Message struct {
	ID      string
	Payload []byte
	// Attempts is how many times processing it failed before this claim.
	Attempts int
	// Token proves the lease; Ack, Fail and Release need it.
	Token string
}

// ErrLeaseLost is returned by Fail when the event's lease ended and another
// claim took it (or it was already acked): the caller's result is stale.
var ErrLeaseLost = errors.New("queue: lease lost")

// claimScript leases up to max ready events, oldest first, once the oldest
// has been ready since ARGV[5].
//
//	KEYS[1] pending   KEYS[2] payloads   KEYS[3] claims   KEYS[4] attempts   KEYS[5] queued
//	ARGV[1] now (ms)   ARGV[2] lease end (ms)   ARGV[3] max   ARGV[4] claim token
//	ARGV[5] the oldest must be ready at or before this (ms; now for Claim)
//
// Returns a flat list: id, payload, attempts, id, payload, attempts, …
// (an empty payload for an event enqueued without one), or nothing when
// the oldest ready event is younger than ARGV[5] allows. Moving the score
// to the lease end is what hides the event from other drains; doing it in
// the same script as the read makes two concurrent claims disjoint. The
// score before the first claim is when the event was queued: it is kept
// in queued, so that "oldest ready" still counts from then after a lease,
// a retry or a hold moved the score (the intake writes nothing for it).
var claimScript = rueidis.NewLuaScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 or tonumber(ids[2]) > tonumber(ARGV[5]) then
  return {}
end
local out = {}
for i = 1, #ids, 2 do
  local id = ids[i]
  redis.call('HSETNX', KEYS[5], id, ids[i + 1])
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HSET', KEYS[3], id, ARGV[4])
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or '0'
end
return out
`)

// Claim leases up to max ready events for lease. Until the lease ends or
// the events are acked, failed or released, no other claim returns them.
func (q *Queue) Claim(ctx context.Context, max int, lease time.Duration) ([]Message, error) {
	return q.ClaimSettled(ctx, max, lease, 0)
}

// ClaimSettled is Claim once the oldest ready event has been ready for
// settle, and nothing before: a prompt drain gives the update or delete
// that often follows a create within a moment the time to arrive, so that
// both are claimed (and coalesced) together.
func (q *Queue) ClaimSettled(ctx context.Context, max int, lease, settle time.Duration) ([]Message, error) {
	if max <= 0 {
		return nil, nil
	}
	token := newToken()
	now := q.now()
	oldestBy := now
	if settle > 0 {
		oldestBy = now.Add(-settle)
	}
	flat, err := claimScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.keys.payloads, q.keys.claims, q.keys.attempts, q.keys.queued},
		[]string{ms(now), ms(now.Add(lease)), strconv.Itoa(max), token, ms(oldestBy)},
	).ToArray()
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	msgs := make([]Message, 0, len(flat)/3)
	for i := 0; i+2 < len(flat); i += 3 {
		id, err1 := flat[i].ToString()
		payload, err2 := flat[i+1].ToString()
		attempts, err3 := flat[i+2].ToString()
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("claim events: unexpected reply: %w", err)
		}
		n, _ := strconv.Atoi(attempts)
		msgs = append(msgs, Message{ID: id, Payload: []byte(payload), Attempts: n, Token: token})
	}
	return msgs, nil
}

// ackScript removes finished events whose lease the caller still holds,
// keeping each id in pending's done band for the dedupe window.
//
//	KEYS[1] pending   KEYS[2] payloads   KEYS[3] claims   KEYS[4] attempts   KEYS[5] errors
//	KEYS[6] queued
//	ARGV[1] claim token   ARGV[2] done score (doneBase + now)
//	ARGV[3] done band start (doneBase)   ARGV[4] forget done before (doneBase + now - window)
//	ARGV[5..] ids
//
// Returns how many were removed. An event whose lease passed to another
// claim is left to that claim: the work is idempotent, and removing it
// under the other drain's feet would make its ack lie. Forgetting expired
// dedupe records here, where the drain already pays a round trip, keeps the
// intake's commands short; so does deleting the payload a late redelivery
// of such an id stored (see enqueue.go). At most pruneBatch per ack keeps
// the script short: Redis serves nobody else while it runs.
var ackScript = rueidis.NewLuaScript(`
local removed = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[3], id) == ARGV[1] then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('HDEL', KEYS[6], id)
    removed = removed + 1
  end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], '(' .. ARGV[4], 'LIMIT', 0, ` + pruneBatch + `)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return removed
`)

// pruneBatch bounds how many expired dedupe records one ack forgets.
const pruneBatch = "1000"

// Ack removes done events of one claim (all share its token). It returns
// how many were still held by that claim.
func (q *Queue) Ack(ctx context.Context, token string, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	now := q.now()
	n, err := ackScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.keys.payloads, q.keys.claims, q.keys.attempts, q.keys.errors, q.keys.queued},
		append([]string{token, banded(doneBase, now), strconv.FormatInt(doneBase, 10), banded(doneBase, now.Add(-q.dedupeWindow))}, ids...),
	).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("ack %d events: %w", len(ids), err)
	}
	return int(n), nil
}

// failScript records a failed attempt: retry later, or bury after the last.
//
//	KEYS[1] pending   KEYS[2] claims   KEYS[3] attempts   KEYS[4] errors
//	KEYS[5] payloads  KEYS[6] queued
//	ARGV[1] claim token   ARGV[2] id   ARGV[3] dead score (deadBase + now)   ARGV[4] retry at (ms)
//	ARGV[5] max attempts (0 = bury now)   ARGV[6] error message
//	ARGV[7] dead band start (deadBase)   ARGV[8] prune dead before (deadBase + now - max age)
//	ARGV[9] dead list cap
//
// Returns {attempts, buried (0|1)}, or {-1, 0} when the lease was lost.
// Burying prunes the dead list (pruneDeadLua) in the same step, so that it
// never grows past its cap however fast events die.
var failScript = rueidis.NewLuaScript(`
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[1] then
  return {-1, 0}
end
local attempts = redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('HSET', KEYS[4], ARGV[2], ARGV[6])
redis.call('HDEL', KEYS[2], ARGV[2])
if attempts >= tonumber(ARGV[5]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('HDEL', KEYS[6], ARGV[2])
  local dead_from, prune_before, cap = ARGV[7], ARGV[8], tonumber(ARGV[9])
` + pruneDeadLua + `
  return {attempts, 1}
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
return {attempts, 0}
`)

// pruneDeadLua removes dead entries buried before prune_before and then,
// while more than cap are left, the oldest, each with its payload,
// attempts and error; at most pruneBatch of each per run, which is more
// than one bury adds. It expects KEYS[1] pending, KEYS[3] attempts,
// KEYS[4] errors, KEYS[5] payloads, and the locals dead_from,
// prune_before and cap.
const pruneDeadLua = `
  local pruned = 0
  local function forget(ids)
    for _, id in ipairs(ids) do
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
      pruned = pruned + 1
    end
  end
  forget(redis.call('ZRANGEBYSCORE', KEYS[1], dead_from, '(' .. prune_before, 'LIMIT', 0, ` + pruneBatch + `))
  local over = redis.call('ZCOUNT', KEYS[1], dead_from, '+inf') - cap
  if over > 0 then
    forget(redis.call('ZRANGEBYSCORE', KEYS[1], dead_from, '+inf', 'LIMIT', 0, math.min(over, ` + pruneBatch + `)))
  end
`

// FailResult says what Fail did.
type FailResult struct {
	Attempts int  // failed attempts, this one included
	Dead     bool // moved to the dead list
}

// Fail records that processing msg failed with cause. If this was attempt
// maxAttempts (or maxAttempts <= 0: the failure is permanent) the event
// goes to the dead list with cause as its last error; otherwise it becomes
// ready again after retryIn.
func (q *Queue) Fail(ctx context.Context, msg Message, cause string, retryIn time.Duration, maxAttempts int) (FailResult, error) {
	if maxAttempts < 0 {
		maxAttempts = 0
	}
	now := q.now()
	vals, err := failScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.keys.claims, q.keys.attempts, q.keys.errors, q.keys.payloads, q.keys.queued},
		[]string{msg.Token, msg.ID, banded(deadBase, now), ms(now.Add(retryIn)), strconv.Itoa(maxAttempts), cause,
			strconv.FormatInt(deadBase, 10), banded(deadBase, now.Add(-q.deadMaxAge)), strconv.Itoa(q.deadMaxLen)},
	).AsIntSlice()
	if err != nil {
		return FailResult{}, fmt.Errorf("fail %s: %w", msg.ID, err)
	}
	if len(vals) != 2 {
		return FailResult{}, fmt.Errorf("fail %s: unexpected reply %v", msg.ID, vals)
	}
	if vals[0] < 0 {
		return FailResult{}, fmt.Errorf("fail %s: %w", msg.ID, ErrLeaseLost)
	}
	return FailResult{Attempts: int(vals[0]), Dead: vals[1] == 1}, nil
}

// releaseScript hands leased events back without counting an attempt.
//
//	KEYS[1] pending   KEYS[2] claims
//	ARGV[1] claim token   ARGV[2] visible at (ms)   ARGV[3..] ids
//
// Returns how many were released.
var releaseScript = rueidis.NewLuaScript(`
local released = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[1] then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HDEL', KEYS[2], id)
    released = released + 1
  end
end
return released
`)

// Release returns events of one claim to the queue, visible again at
// visibleAt (now or earlier: at once), without counting an attempt.
func (q *Queue) Release(ctx context.Context, token string, visibleAt time.Time, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if now := q.now(); visibleAt.Before(now) {
		visibleAt = now
	}
	n, err := releaseScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.keys.claims},
		append([]string{token, ms(visibleAt)}, ids...),
	).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("release %d events: %w", len(ids), err)
	}
	return int(n), nil
}

// redriveScript moves up to ARGV[2] dead events back to ready with a clean
// slate (no attempts, no error).
//
//	KEYS[1] pending   KEYS[2] attempts   KEYS[3] errors
//	ARGV[1] now (ms)   ARGV[2] batch size   ARGV[3] dead band start (deadBase)
//
// Returns how many it moved. Batches keep each script short: Redis runs
// nothing else while a script runs.
var redriveScript = rueidis.NewLuaScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
return #ids
`)

const redriveBatch = 500

// Redrive moves every dead event back to ready and returns how many.
func (q *Queue) Redrive(ctx context.Context) (int, error) {
	total := 0
	for {
		moved, err := redriveScript.Exec(ctx, q.client,
			[]string{q.keys.pending, q.keys.attempts, q.keys.errors},
			[]string{ms(q.now()), strconv.Itoa(redriveBatch), strconv.FormatInt(deadBase, 10)},
		).AsInt64()
		if err != nil {
			return total, fmt.Errorf("redrive dead events: %w", err)
		}
		total += int(moved)
		if moved < redriveBatch {
			return total, nil
		}
	}
}

// Stats are the queue's counts at one instant.
type Stats struct {
	Ready int64 `json:"ready"`
	// Delayed are waiting for a lease, a retry backoff or a rate-limit
	// window to end.
	Delayed int64 `json:"delayed"`
	// Leased is how many of Delayed are held by a drain right now: leases
	// that ended (a drain died) are not counted, their events are ready.
	Leased int64 `json:"leased"`
	// Held are parked until their group is released (Hold, Unhold): events
	// of athletes who must reconnect.
	Held int64 `json:"held"`
	Dead int64 `json:"dead"`
	// OldestReady is how long ago the oldest ready event was first queued
	// (not when it last became ready: a lease or a retry does not reset it).
	OldestReady time.Duration `json:"-"`
	// OldestReadySeconds is OldestReady for JSON readers.
	OldestReadySeconds float64 `json:"oldest_ready_seconds"`
}

// statsScript counts the queue.
//
//	KEYS[1] pending   KEYS[2] claims   KEYS[3] queued
//	ARGV[1] now (ms)   ARGV[2] heldBase   ARGV[3] doneBase   ARGV[4] deadBase
//
// Returns {ready, delayed, leased, held, dead, oldest ready's first-queued
// time in ms or -1}. Leases are counted from claims whose score is still in
// the future: a claim entry outlives a lease that ended (a drain died).
// The oldest ready event is the lowest ready score, unless an event claimed
// before (its first-queued time is in queued) was queued earlier still. A
// script because both walks must see the same instant; they are bounded
// by the events in flight, not by the queue.
var statsScript = rueidis.NewLuaScript(`
local now = tonumber(ARGV[1])
local held_from = tonumber(ARGV[2])
local ready = redis.call('ZCOUNT', KEYS[1], '-inf', now)
local delayed = redis.call('ZCOUNT', KEYS[1], '(' .. now, '(' .. held_from)
local held = redis.call('ZCOUNT', KEYS[1], held_from, '(' .. ARGV[3])
local dead = redis.call('ZCOUNT', KEYS[1], ARGV[4], '+inf')
local leased = 0
local claims = redis.call('HKEYS', KEYS[2])
for _, id in ipairs(claims) do
  local score = tonumber(redis.call('ZSCORE', KEYS[1], id))
  if score and score > now and score < held_from then
    leased = leased + 1
  end
end
local oldest = -1
if ready > 0 then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  oldest = tonumber(first[2])
  local queued = redis.call('HGETALL', KEYS[3])
  for i = 1, #queued, 2 do
    local t = tonumber(queued[i + 1])
    if t and t < oldest then
      local score = tonumber(redis.call('ZSCORE', KEYS[1], queued[i]))
      if score and score <= now then
        oldest = t
      end
    end
  end
end
return {ready, delayed, leased, held, dead, tostring(oldest)}
`)

// Stats counts the queue in one round trip.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	now := q.now()
	vals, err := statsScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.keys.claims, q.keys.queued},
		[]string{ms(now), strconv.FormatInt(heldBase, 10), strconv.FormatInt(doneBase, 10), strconv.FormatInt(deadBase, 10)},
	).ToArray()
	if err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	if len(vals) != 6 {
		return Stats{}, fmt.Errorf("queue stats: unexpected reply of %d values", len(vals))
	}
	var s Stats
	var errs []error
	for i, dst := range []*int64{&s.Ready, &s.Delayed, &s.Leased, &s.Held, &s.Dead} {
		n, err := vals[i].AsInt64()
		errs = append(errs, err)
		*dst = n
	}
	oldestText, err := vals[5].ToString()
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	if oldest, err := strconv.ParseFloat(oldestText, 64); err == nil && s.Ready > 0 && oldest >= 0 {
		if age := now.Sub(time.UnixMilli(int64(oldest))); age > 0 {
			s.OldestReady = age
			s.OldestReadySeconds = age.Seconds()
		}
	}
	return s, nil
}

// DeadMessage is a buried event with what killed it.
type DeadMessage struct {
	ID       string    `json:"id"`
	Payload  []byte    `json:"-"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error"`
	DiedAt   time.Time `json:"died_at"`
}

// Dead lists up to limit buried events, most recent first.
func (q *Queue) Dead(ctx context.Context, limit int) ([]DeadMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	b := q.client.B()
	entries, err := q.client.Do(ctx, b.Zrange().Key(q.keys.pending).Min("+inf").Max(strconv.FormatInt(deadBase, 10)).
		Byscore().Rev().Limit(0, int64(limit)).Withscores().Build()).AsZScores()
	if err != nil {
		return nil, fmt.Errorf("list dead events: %w", err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.Member
	}
	res := q.client.DoMulti(ctx,
		b.Hmget().Key(q.keys.payloads).Field(ids...).Build(),
		b.Hmget().Key(q.keys.attempts).Field(ids...).Build(),
		b.Hmget().Key(q.keys.errors).Field(ids...).Build(),
	)
	cols := make([][]rueidis.RedisMessage, 3)
	for i := range cols {
		if cols[i], err = res[i].ToArray(); err != nil {
			return nil, fmt.Errorf("list dead events: %w", err)
		}
	}
	out := make([]DeadMessage, len(entries))
	for i, e := range entries {
		payload, _ := cols[0][i].ToString()
		attempts, _ := cols[1][i].AsInt64()
		cause, _ := cols[2][i].ToString()
		out[i] = DeadMessage{ID: e.Member, Payload: []byte(payload), Attempts: int(attempts), Error: cause, DiedAt: time.UnixMilli(int64(e.Score) - deadBase)}
	}
	return out, nil
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// banded is t's score in the band that starts at base.
func banded(base int64, t time.Time) string { return strconv.FormatInt(base+t.UnixMilli(), 10) }

func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
