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

// holdScript parks leased events of one group without counting an attempt.
//
//	KEYS[1] pending   KEYS[2] claims   KEYS[3] held:{group}   KEYS[4] the guard's hash
//	KEYS[5] held_groups
//	ARGV[1] claim token   ARGV[2] the guard's field   ARGV[3] held score (heldBase + now)
//	ARGV[4] now (ms)   ARGV[5] group   ARGV[6..] ids
//
// Returns {held, released}: events whose lease passed to another claim are
// neither. Without the guard's field the events are made ready instead: the
// reason to hold them is gone. The group is listed in held_groups, so that
// a release missed (a crash between the athlete's save and Unhold) can be
// found (HeldGroups).
var holdScript = rueidis.NewLuaScript(`
local guarded = redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1
local held, released = 0, 0
if guarded then
  redis.call('SADD', KEYS[5], ARGV[5])
end
for i = 6, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) == ARGV[1] then
    redis.call('HDEL', KEYS[2], id)
    if guarded then
      redis.call('ZADD', KEYS[1], ARGV[3], id)
      redis.call('SADD', KEYS[3], id)
      held = held + 1
    else
      redis.call('ZADD', KEYS[1], ARGV[4], id)
      released = released + 1
    end
  end
end
return {held, released}
`)

// Hold parks events of one claim in group until Unhold(group), while
// guard's field exists (else they are made ready at once). No attempt is
// counted; the ids keep their place in pending, so redeliveries are still
// recognized, and Stats counts them as Held. It returns how many were held.
func (q *Queue) Hold(ctx context.Context, token, group string, guard Guard, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	now := q.now()
	vals, err := holdScript.Exec(ctx, q.client,
		[]string{q.keys.pending, q.keys.claims, q.heldKey(group), guard.Key, q.keys.heldGroups},
		append([]string{token, guard.Field, banded(heldBase, now), ms(now), group}, ids...),
	).AsIntSlice()
	if err != nil {
		return 0, fmt.Errorf("hold %d events for %s: %w", len(ids), group, err)
	}
	if len(vals) != 2 {
		return 0, fmt.Errorf("hold %d events for %s: unexpected reply %v", len(ids), group, vals)
	}
	return int(vals[0]), nil
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
