package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/strava"
)

// MaxKeep is the longest an activity is kept: Strava's API policy allows
// caching its data for at most 7 days.
const MaxKeep = 7 * 24 * time.Hour

// keepActivityScript stores an activity and indexes it under its athlete.
//
//	KEYS[1] activity:{id}
//	KEYS[2] athlete:{athlete id}:activities
//	KEYS[3] athlete:{athlete id}
//	ARGV[1] the activity's JSON   ARGV[2] its TTL in ms
//	ARGV[3] its start time (unix s, the index score)   ARGV[4] its id (the index member)
//	ARGV[5] the index's TTL in ms (MaxKeep)
//
// Returns 0, keeping nothing, when the athlete is not stored: a drain that
// fetched an activity while another drain (or `athlete remove`) removed its
// athlete must not bring their data back. Atomic so that a kept activity is
// always listed and a crash cannot leave one without the other; the index's
// TTL is pushed out with every write so it outlives every activity it lists.
var keepActivityScript = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
`)

// deleteActivityScript deletes an activity and its index entry.
//
//	KEYS[1] activity:{id}
//	KEYS[2] athlete:{athlete id}:activities
//	ARGV[1] the activity id (the index member)
//
// Returns how many activity keys were deleted (0 or 1). Atomic so a listing
// never sees the index entry of an activity half deleted.
var deleteActivityScript = rueidis.NewLuaScript(`
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
`)

// pruneIndexScript removes index entries whose activity key has expired.
//
//	KEYS[1] athlete:{athlete id}:activities
//	KEYS[2..] activity:{id} for each id in ARGV
//	ARGV[1..] activity ids (index members)
//
// Returns how many entries were removed. Atomic because the existence check
// must be on the same state as the removal: a KeepActivity of the same id
// between a client-side check and ZREM would lose the fresh entry.
var pruneIndexScript = rueidis.NewLuaScript(`
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i - 1])
  end
end
return removed
`)

// KeepActivity stores a (replacing any copy with the same id) for ttl,
// capped at MaxKeep; a ttl <= 0 means MaxKeep. It is listed under
// a.Athlete.ID by its start date. It keeps nothing and returns ErrNotFound
// when that athlete is not stored (removed, or never connected).
func (s *Store) KeepActivity(ctx context.Context, a strava.DetailedActivity, ttl time.Duration) error {
	if a.ID <= 0 {
		return fmt.Errorf("keep activity %d: not a valid id", a.ID)
	}
	if a.Athlete.ID <= 0 {
		return fmt.Errorf("keep activity %d: no athlete id", a.ID)
	}
	if ttl <= 0 || ttl > MaxKeep {
		ttl = MaxKeep
	}
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("keep activity %d: encode: %w", a.ID, err)
	}
	member := formatID(a.ID)
	kept, err := keepActivityScript.Exec(ctx, s.client,
		[]string{s.activityKey(member), s.activityIndexKey(a.Athlete.ID), s.athleteKey(a.Athlete.ID)},
		[]string{
			string(body),
			strconv.FormatInt(max(ttl.Milliseconds(), 1), 10),
			strconv.FormatInt(a.StartDate.Unix(), 10),
			member,
			strconv.FormatInt(MaxKeep.Milliseconds(), 10),
		}).AsInt64()
	if err != nil {
		return fmt.Errorf("keep activity %d in redis: %w", a.ID, err)
	}
	if kept == 0 {
		return fmt.Errorf("keep activity %d: athlete %d: %w", a.ID, a.Athlete.ID, ErrNotFound)
	}
	return nil
}

// DeleteActivity deletes the activity and its entry in the athlete's list,
// and reports whether it was kept.
func (s *Store) DeleteActivity(ctx context.Context, athleteID, activityID int64) (existed bool, err error) {
	member := formatID(activityID)
	n, err := deleteActivityScript.Exec(ctx, s.client,
		[]string{s.activityKey(member), s.activityIndexKey(athleteID)},
		[]string{member}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("delete activity %d of athlete %d in redis: %w", activityID, athleteID, err)
	}
	return n > 0, nil
}

// Activity returns the kept activity id, or an error wrapping ErrNotFound.
func (s *Store) Activity(ctx context.Context, id int64) (strava.DetailedActivity, error) {
	body, err := s.client.Do(ctx, s.client.B().Get().Key(s.activityKey(formatID(id))).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return strava.DetailedActivity{}, fmt.Errorf("activity %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return strava.DetailedActivity{}, fmt.Errorf("read activity %d from redis: %w", id, err)
	}
	var a strava.DetailedActivity
	if err := json.Unmarshal(body, &a); err != nil {
		return strava.DetailedActivity{}, fmt.Errorf("decode activity %d: %w", id, err)
	}
	return a, nil
}

// activitiesBatch is how many activities one MGET reads.
const activitiesBatch = 100

// Activities returns up to limit (all when limit <= 0) of the athlete's kept
// activities, newest start first. Entries whose activity has expired are
// skipped and removed from the list.
func (s *Store) Activities(ctx context.Context, athleteID int64, limit int) ([]strava.DetailedActivity, error) {
	indexKey := s.activityIndexKey(athleteID)
	members, err := s.client.Do(ctx, s.client.B().Zrevrange().Key(indexKey).Start(0).Stop(-1).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("list activities of athlete %d in redis: %w", athleteID, err)
	}
	var (
		activities []strava.DetailedActivity
		expired    []string
	)
	for start := 0; start < len(members) && (limit <= 0 || len(activities) < limit); start += activitiesBatch {
		batch := members[start:min(start+activitiesBatch, len(members))]
		keys := make([]string, len(batch))
		for i, m := range batch {
			keys[i] = s.activityKey(m)
		}
		values, err := s.client.Do(ctx, s.client.B().Mget().Key(keys...).Build()).ToArray()
		if err != nil {
			return nil, fmt.Errorf("read activities of athlete %d from redis: %w", athleteID, err)
		}
		for i, v := range values {
			if limit > 0 && len(activities) == limit {
				break
			}
			body, err := v.AsBytes()
			if rueidis.IsRedisNil(err) {
				expired = append(expired, batch[i])
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read activity %s from redis: %w", batch[i], err)
			}
			var a strava.DetailedActivity
			if err := json.Unmarshal(body, &a); err != nil {
				return nil, fmt.Errorf("decode activity %s: %w", batch[i], err)
			}
			activities = append(activities, a)
		}
	}
	if err := s.pruneIndex(ctx, indexKey, expired); err != nil {
		return nil, err
	}
	return activities, nil
}

func (s *Store) pruneIndex(ctx context.Context, indexKey string, members []string) error {
	for len(members) > 0 {
		batch := members[:min(removeBatch, len(members))]
		members = members[len(batch):]
		keys := []string{indexKey}
		for _, m := range batch {
			keys = append(keys, s.activityKey(m))
		}
		if err := pruneIndexScript.Exec(ctx, s.client, keys, batch).Error(); err != nil {
			return fmt.Errorf("prune expired activities from %s in redis: %w", indexKey, err)
		}
	}
	return nil
}
