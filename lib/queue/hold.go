package queue

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"
)

// Guard names a hash field whose presence keeps events held: Hold parks
// events only while Key has Field, and hands them back as ready otherwise.
// The check and the hold are one step, so a release (Unhold) that clears
// the field first and then releases the group can never miss an event held
// in between.
type Guard struct {
	Key, Field string
}

// heldOverflowError is the dead entry's error of an event buried by Hold
// because its group already held its cap.
const heldOverflowError = "held beyond the cap while the athlete must reconnect (STRAVAHOOK_HELD_MAX); " +
	"redrive after they reconnect to fetch it"

// holdScript parks leased events of one group without counting an attempt,
// up to the group's cap; the rest go to the dead list.
//
//	KEYS[1] pending   KEYS[2] claims   KEYS[3] attempts   KEYS[4] errors
//	KEYS[5] payloads  KEYS[6] queued   KEYS[7] held:{group}
//	KEYS[8] the guard's hash   KEYS[9] held_groups
//	ARGV[1] claim token   ARGV[2] the guard's field   ARGV[3] held score (heldBase + now)
//	ARGV[4] now (ms)   ARGV[5] group   ARGV[6] the group's cap
//	ARGV[7] dead score (deadBase + now)   ARGV[8] the overflow's error
//	ARGV[9] dead band start (deadBase)   ARGV[10] prune dead before (deadBase + now - max age)
//	ARGV[11] dead list cap   ARGV[12..] ids
//
// Returns {held, released, buried}: events whose lease passed to another
// claim are none of these. Without the guard's field the events are made
// ready instead: the reason to hold them is gone. The group is listed in
// held_groups, so that a release missed (a crash between the athlete's
// save and Unhold) can be found (HeldGroups).
//
// The cap keeps the events held first and buries the newest: athlete ids
// are public, so a flood of forged events for an athlete who must
// reconnect arrives after (and among) their real ones; burying the oldest
// would let the flood push the real events out. Buried, they are still
// recognized as redeliveries, can be redriven, and the dead list's bounds
// (pruneDeadLua, run here too) keep them from growing Redis.
var holdScript = rueidis.NewLuaScript(`
local guarded = redis.call('HEXISTS', KEYS[8], ARGV[2]) == 1
local room = 0
local held, released, buried = 0, 0, 0
if guarded then
  redis.call('SADD', KEYS[9], ARGV[5])
  room = tonumber(ARGV[6]) - redis.call('SCARD', KEYS[7])
end
for i = 12, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[1] then
    redis.call('HDEL', KEYS[2], id)
    if not guarded then
      redis.call('ZADD', KEYS[1], ARGV[4], id)
      released = released + 1
    elseif held < room then
      redis.call('ZADD', KEYS[1], ARGV[3], id)
      redis.call('SADD', KEYS[7], id)
      held = held + 1
    else
      redis.call('ZADD', KEYS[1], ARGV[7], id)
      redis.call('HSET', KEYS[4], id, ARGV[8])
      redis.call('HDEL', KEYS[6], id)
      buried = buried + 1
    end
  end
end
if buried > 0 then
  local dead_from, prune_before, cap = ARGV[9], ARGV[10], tonumber(ARGV[11])
` + pruneDeadLua + `
end
return {held, released, buried}
`)

// HoldResult says what Hold did with the events it was given.
type HoldResult struct {
	Held   int // parked until Unhold
	Buried int // moved to the dead list: the group held its cap already
}

// Hold parks events of one claim in group until Unhold(group), while
// guard's field exists (else they are made ready at once). No attempt is
// counted; the ids keep their place in pending, so redeliveries are still
// recognized, and Stats counts them as Held. A group holds at most its cap
// (WithHeldMax): the events beyond it are buried with an error saying so.
func (q *Queue) Hold(ctx context.Context, token, group string, guard Guard, ids ...string) (HoldResult, error) {
	if len(ids) == 0 {
		return HoldResult{}, nil
	}
	now := q.now()
	vals, err := holdScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.keys.claims, q.keys.attempts, q.keys.errors, q.keys.payloads, q.keys.queued,
			q.heldKey(group), guard.Key, q.keys.heldGroups},
		append([]string{token, guard.Field, banded(heldBase, now), ms(now), group, strconv.Itoa(q.heldMax),
			banded(deadBase, now), heldOverflowError,
			strconv.FormatInt(deadBase, 10), banded(deadBase, now.Add(-q.deadMaxAge)), strconv.Itoa(q.deadMaxLen)}, ids...),
	).AsIntSlice()
	if err != nil {
		return HoldResult{}, fmt.Errorf("hold %d events for %s: %w", len(ids), group, err)
	}
	if len(vals) != 3 {
		return HoldResult{}, fmt.Errorf("hold %d events for %s: unexpected reply %v", len(ids), group, vals)
	}
	return HoldResult{Held: int(vals[0]), Buried: int(vals[2])}, nil
}

// unholdScript makes every event held for a group ready.
//
//	KEYS[1] pending   KEYS[2] held:{group}   KEYS[3] held_groups
//	ARGV[1] now (ms)   ARGV[2] held band start (heldBase)   ARGV[3] held band end (doneBase)
//	ARGV[4] group
//
// Returns how many it made ready. Only ids still in the held band move: one
// acked or buried since (it cannot be, while held, but a stale set member
// must not revive anything) keeps its place.
var unholdScript = rueidis.NewLuaScript(`
local ids = redis.call('SMEMBERS', KEYS[2])
local moved = 0
local from, to = tonumber(ARGV[2]), tonumber(ARGV[3])
for _, id in ipairs(ids) do
  local score = tonumber(redis.call('ZSCORE', KEYS[1], id))
  if score and score >= from and score < to then
    redis.call('ZADD', KEYS[1], ARGV[1], id)
    moved = moved + 1
  end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[4])
return moved
`)

// Unhold makes every event held for group ready and returns how many.
func (q *Queue) Unhold(ctx context.Context, group string) (int, error) {
	n, err := unholdScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.heldKey(group), q.keys.heldGroups},
		[]string{ms(q.now()), strconv.FormatInt(heldBase, 10), strconv.FormatInt(doneBase, 10), group},
	).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("release events held for %s: %w", group, err)
	}
	return int(n), nil
}

// HeldGroups lists the groups that hold events now.
func (q *Queue) HeldGroups(ctx context.Context) ([]string, error) {
	groups, err := q.client.Do(ctx, q.client.B().Smembers().Key(q.keys.heldGroups).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("list the groups holding events: %w", err)
	}
	return groups, nil
}

// dropScript forgets events of one claim entirely: no dedupe record.
//
//	KEYS[1] pending   KEYS[2] payloads   KEYS[3] claims   KEYS[4] attempts   KEYS[5] errors
//	KEYS[6] queued
//	ARGV[1] claim token   ARGV[2..] ids
//
// Returns how many it dropped. For events that need no work and are not
// worth remembering (a flood of events for athletes we do not know must
// not grow Redis): a redelivery is queued again and dropped again, without
// costing anything but that.
var dropScript = rueidis.NewLuaScript(`
local dropped = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[3], id) == ARGV[1] then
    redis.call('ZREM', KEYS[1], id)
    for k = 2, 6 do
      redis.call('HDEL', KEYS[k], id)
    end
    dropped = dropped + 1
  end
end
return dropped
`)

// Drop removes events of one claim without a trace (see dropScript) and
// returns how many were still held by that claim.
func (q *Queue) Drop(ctx context.Context, token string, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := dropScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.keys.payloads, q.keys.claims, q.keys.attempts, q.keys.errors, q.keys.queued},
		append([]string{token}, ids...),
	).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("drop %d events: %w", len(ids), err)
	}
	return int(n), nil
}

// pruneDeadScript applies the dead list's bounds (pruneDeadLua) on its own,
// for when nothing was buried for a while and old entries aged out.
//
//	KEYS[1] pending   KEYS[2] (unused)   KEYS[3] attempts   KEYS[4] errors   KEYS[5] payloads
//	ARGV[1] dead band start (deadBase)   ARGV[2] prune before (deadBase + now - max age)
//	ARGV[3] cap
//
// Returns how many entries it removed.
var pruneDeadScript = rueidis.NewLuaScript(`
local dead_from, prune_before, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
` + pruneDeadLua + `
return pruned
`)

// PruneDead removes dead entries older than the retention, and the oldest
// beyond the cap (WithDeadRetention), at most a batch per bound per call;
// it returns how many. Drains call it once each.
func (q *Queue) PruneDead(ctx context.Context) (int, error) {
	n, err := pruneDeadScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.keys.claims, q.keys.attempts, q.keys.errors, q.keys.payloads},
		[]string{strconv.FormatInt(deadBase, 10), banded(deadBase, q.now().Add(-q.deadMaxAge)), strconv.Itoa(q.deadMaxLen)},
	).AsInt64()
	if err != nil {
		return 0, fmt.Errorf("prune the dead list: %w", err)
	}
	return int(n), nil
}

func (q *Queue) heldKey(group string) string { return q.keys.prefix + "held:" + group }
