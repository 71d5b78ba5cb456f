package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
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

// Activities returns up to limit (all when limit <= 0) of the athlete's kept
// activities, newest start first.
func (s *Store) Activities(ctx context.Context, athleteID int64, limit int) ([]strava.DetailedActivity, error) {
	if athleteID <= 0 {
		return nil, fmt.Errorf("list activities of athlete %d: not a valid id", athleteID)
	}
	return s.ListActivities(ctx, ActivityQuery{AthleteID: athleteID, Limit: limit})
}

// ActivityQuery selects kept activities for a listing.
type ActivityQuery struct {
	AthleteID int64     // one athlete's; 0 means every stored athlete's
	Since     time.Time // only activities starting at or after it; zero: no bound
	Limit     int       // at most this many; <= 0: all
}

// listRetries bounds how often ListActivities reads again after finding
// expired entries in the indexes (it prunes them first, so each retry sees
// fewer); past it a page may hold fewer than Limit activities.
const listRetries = 3

// ListActivities returns the kept activities q selects, newest start first
// (the higher id first on equal starts). Index entries whose activity has
// expired are skipped and removed.
//
// Round trips: for one athlete, a ZRANGE of their index and one MGET of the
// page's activities; for every athlete, an SMEMBERS before them, and the
// ZRANGEs of all indexes go in one pipeline. The MGET cannot join the ZRANGE
// in a script: a script may only touch the keys it is given, and the
// activity keys are known only from the index.
func (s *Store) ListActivities(ctx context.Context, q ActivityQuery) ([]strava.DetailedActivity, error) {
	athleteIDs := []int64{q.AthleteID}
	if q.AthleteID == 0 {
		var err error
		if athleteIDs, err = s.athleteIDs(ctx); err != nil {
			return nil, err
		}
	}
	if len(athleteIDs) == 0 {
		return nil, nil
	}
	for attempt := 1; ; attempt++ {
		entries, err := s.newestEntries(ctx, athleteIDs, q)
		if err != nil {
			return nil, err
		}
		activities, expired, err := s.readActivities(ctx, entries)
		if err != nil {
			return nil, err
		}
		for athleteID, members := range expired {
			if err := s.pruneIndex(ctx, s.activityIndexKey(athleteID), members); err != nil {
				return nil, err
			}
		}
		// With no limit every entry was read; with one, the pruned entries
		// may have hidden older activities that belong on this page.
		if len(expired) == 0 || q.Limit <= 0 || attempt == listRetries {
			return activities, nil
		}
	}
}

// indexEntry is one activity of an athlete's index.
type indexEntry struct {
	athleteID int64
	member    string // the activity id
	id        int64
	start     float64 // unix s
}

// athleteIDs returns the id of every stored athlete.
func (s *Store) athleteIDs(ctx context.Context) ([]int64, error) {
	members, err := s.client.Do(ctx, s.client.B().Smembers().Key(s.athleteIDsKey()).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("list athletes in redis: %w", err)
	}
	ids := make([]int64, 0, len(members))
	for _, m := range members {
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("list athletes: bad id %q in redis: %w", m, err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// newestEntries reads the newest entries of each athlete's index (one
// pipeline) and merges them, newest first, cut to q.Limit.
func (s *Store) newestEntries(ctx context.Context, athleteIDs []int64, q ActivityQuery) ([]indexEntry, error) {
	minScore := "-inf"
	if !q.Since.IsZero() {
		// Scores are whole seconds: a start at or after Since is a score
		// at or above Since rounded up to the second.
		since := q.Since.Unix()
		if q.Since.Nanosecond() > 0 {
			since++
		}
		minScore = strconv.FormatInt(since, 10)
	}
	cmds := make(rueidis.Commands, len(athleteIDs))
	for i, id := range athleteIDs {
		byScore := s.client.B().Zrange().Key(s.activityIndexKey(id)).Min("+inf").Max(minScore).Byscore().Rev()
		if q.Limit > 0 {
			cmds[i] = byScore.Limit(0, int64(q.Limit)).Withscores().Build()
		} else {
			cmds[i] = byScore.Withscores().Build()
		}
	}
	var entries []indexEntry
	for i, res := range s.client.DoMulti(ctx, cmds...) {
		scored, err := res.AsZScores()
		if err != nil {
			return nil, fmt.Errorf("list activities of athlete %d in redis: %w", athleteIDs[i], err)
		}
		for _, z := range scored {
			id, err := strconv.ParseInt(z.Member, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("list activities of athlete %d: bad id %q in redis: %w", athleteIDs[i], z.Member, err)
			}
			entries = append(entries, indexEntry{athleteID: athleteIDs[i], member: z.Member, id: id, start: z.Score})
		}
	}
	if len(athleteIDs) > 1 {
		slices.SortFunc(entries, func(a, b indexEntry) int {
			if c := cmp.Compare(b.start, a.start); c != 0 {
				return c
			}
			return cmp.Compare(b.id, a.id)
		})
	}
	if q.Limit > 0 && len(entries) > q.Limit {
		entries = entries[:q.Limit]
	}
	return entries, nil
}

// readActivities reads the entries' activities with one MGET, in order, and
// returns those that have expired by athlete.
func (s *Store) readActivities(ctx context.Context, entries []indexEntry) ([]strava.DetailedActivity, map[int64][]string, error) {
	if len(entries) == 0 {
		return nil, nil, nil
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = s.activityKey(e.member)
	}
	values, err := s.client.Do(ctx, s.client.B().Mget().Key(keys...).Build()).ToArray()
	if err != nil {
		return nil, nil, fmt.Errorf("read %d activities from redis: %w", len(keys), err)
	}
	activities := make([]strava.DetailedActivity, 0, len(entries))
	var expired map[int64][]string
	for i, v := range values {
		e := entries[i]
		body, err := v.AsBytes()
		if rueidis.IsRedisNil(err) {
			if expired == nil {
				expired = make(map[int64][]string)
			}
			expired[e.athleteID] = append(expired[e.athleteID], e.member)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read activity %s from redis: %w", e.member, err)
		}
		var a strava.DetailedActivity
		if err := json.Unmarshal(body, &a); err != nil {
			return nil, nil, fmt.Errorf("decode activity %s: %w", e.member, err)
		}
		activities = append(activities, a)
	}
	return activities, expired, nil
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
