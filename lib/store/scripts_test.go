package store

// Table tests of the store's Lua scripts, in the style of hibiken/asynq's
// rdb tests: each case seeds raw keys, runs the script once and compares
// its reply and the keys afterwards. They pin the edge cases (a lock held
// by someone else, an athlete gone, equal timestamps, empty input).

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// scriptCase seeds with raw commands, runs one script and checks the reply
// and what Redis then holds.
type scriptCase struct {
	name  string
	seed  func(c rueidis.Client, k scriptKeys) []rueidis.Completed
	keys  func(k scriptKeys) []string
	args  []string
	reply []int64
	// after reads keys back; each value is compared with want.
	after func(t *testing.T, c rueidis.Client, k scriptKeys) any
	want  any
}

// scriptKeys are the keys of athlete 1 and activity 7 under a test's prefix.
type scriptKeys struct {
	lock, athlete, athletes, index, activity, activity2, rateLimit string
}

func newScriptKeys(s *Store) scriptKeys {
	return scriptKeys{
		lock: s.refreshLockKey(1), athlete: s.athleteKey(1), athletes: s.athleteIDsKey(),
		index: s.activityIndexKey(1), activity: s.activityKey("7"), activity2: s.activityKey("8"),
		rateLimit: s.rateLimitedUntilKey(),
	}
}

func runScriptCases(t *testing.T, script *rueidis.Lua, cases []scriptCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, r := newStore(t)
			k := newScriptKeys(s)
			ctx := testCtx(t)
			if tc.seed != nil {
				for _, res := range r.Client.DoMulti(ctx, tc.seed(r.Client, k)...) {
					if err := res.Error(); err != nil {
						t.Fatalf("seed: %v", err)
					}
				}
			}
			reply := script.Exec(ctx, r.Client, tc.keys(k), tc.args)
			var got []int64
			if n, err := reply.AsInt64(); err == nil {
				got = []int64{n}
			} else if got, err = reply.AsIntSlice(); err != nil {
				t.Fatalf("script: %v", err)
			}
			if !reflect.DeepEqual(got, tc.reply) {
				t.Errorf("reply %v, want %v", got, tc.reply)
			}
			if tc.after != nil {
				if got := tc.after(t, r.Client, k); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("redis holds %#v, want %#v", got, tc.want)
				}
			}
		})
	}
}

func getString(t *testing.T, c rueidis.Client, key string) string {
	t.Helper()
	v, err := c.Do(testCtx(t), c.B().Get().Key(key).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func getHash(t *testing.T, c rueidis.Client, key string) map[string]string {
	t.Helper()
	h, err := c.Do(testCtx(t), c.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func getZset(t *testing.T, c rueidis.Client, key string) map[string]float64 {
	t.Helper()
	entries, err := c.Do(testCtx(t), c.B().Zrange().Key(key).Min("0").Max("-1").Withscores().Build()).AsZScores()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, e := range entries {
		out[e.Member] = e.Score
	}
	return out
}

func keyPTTL(t *testing.T, c rueidis.Client, key string) int64 {
	t.Helper()
	n, err := c.Do(testCtx(t), c.B().Pttl().Key(key).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReleaseLockScript(t *testing.T) {
	keys := func(k scriptKeys) []string { return []string{k.lock} }
	lock := func(t *testing.T, c rueidis.Client, k scriptKeys) any { return getString(t, c, k.lock) }
	held := func(by string) func(rueidis.Client, scriptKeys) []rueidis.Completed {
		return func(c rueidis.Client, k scriptKeys) []rueidis.Completed {
			return []rueidis.Completed{c.B().Set().Key(k.lock).Value(by).Px(time.Minute).Build()}
		}
	}
	runScriptCases(t, releaseLockScript, []scriptCase{
		{name: "our lock is deleted", seed: held("mine"), keys: keys, args: []string{"mine"}, reply: []int64{1}, after: lock, want: "<none>"},
		{name: "another holder's lock stays", seed: held("theirs"), keys: keys, args: []string{"mine"}, reply: []int64{0}, after: lock, want: "theirs"},
		{name: "no lock: nothing to do", keys: keys, args: []string{"mine"}, reply: []int64{0}, after: lock, want: "<none>"},
	})
}

// A drain whose lock expired during a slow refresh, and was taken by
// another drain meanwhile, must not free that drain's lock when it
// finishes: a third drain would then refresh with the same refresh token.
func TestRefreshLeavesTheLockOfWhoeverTookItOver(t *testing.T) {
	s, r := newStore(t)
	saveAthlete(t, s, expiredAthlete(1))
	f := &fakeStrava{during: func() {
		// Our lock runs out and another drain takes it.
		err := r.Client.Do(context.Background(), r.Client.B().Set().Key(s.refreshLockKey(1)).Value("other-drain").Px(time.Minute).Build()).Error()
		if err != nil {
			t.Error(err)
		}
	}}
	if _, err := s.AccessToken(testCtx(t), 1, f.refresh); err != nil {
		t.Fatal(err)
	}
	if v := getString(t, r.Client, s.refreshLockKey(1)); v != "other-drain" {
		t.Errorf("lock = %q after our refresh; want the other drain's lock kept", v)
	}
}

func TestSaveRefreshedScript(t *testing.T) {
	keys := func(k scriptKeys) []string { return []string{k.athlete} }
	stored := func(c rueidis.Client, k scriptKeys) []rueidis.Completed {
		return []rueidis.Completed{c.B().Hset().Key(k.athlete).FieldValue().FieldValue("name", "Jane").
			FieldValue("access_token", "old-a").FieldValue("refresh_token", "old-r").FieldValue("scope", "read").Build()}
	}
	hash := func(t *testing.T, c rueidis.Client, k scriptKeys) any { return getHash(t, c, k.athlete) }
	runScriptCases(t, saveRefreshedScript, []scriptCase{
		{
			name: "saved, an empty scope keeps the stored one", seed: stored, keys: keys,
			args: []string{"new-a", "new-r", "2030-01-01T00:00:00Z", "2029-12-31T18:00:00Z", ""}, reply: []int64{1},
			after: hash, want: map[string]string{"name": "Jane", "access_token": "new-a", "refresh_token": "new-r",
				"expires_at": "2030-01-01T00:00:00Z", "updated_at": "2029-12-31T18:00:00Z", "scope": "read"},
		},
		{
			name: "a scope given replaces the stored one", seed: stored, keys: keys,
			args: []string{"new-a", "new-r", "e", "u", "read,activity:read_all"}, reply: []int64{1},
			after: hash, want: map[string]string{"name": "Jane", "access_token": "new-a", "refresh_token": "new-r",
				"expires_at": "e", "updated_at": "u", "scope": "read,activity:read_all"},
		},
		{
			name: "athlete removed meanwhile: nothing recreated", keys: keys,
			args: []string{"new-a", "new-r", "e", "u", "read"}, reply: []int64{0}, after: hash, want: map[string]string{},
		},
	})
}

func TestSetRateLimitedUntilScript(t *testing.T) {
	future := time.Now().Add(time.Hour).UnixMilli()
	keys := func(k scriptKeys) []string { return []string{k.rateLimit} }
	stored := func(ms int64) func(rueidis.Client, scriptKeys) []rueidis.Completed {
		return func(c rueidis.Client, k scriptKeys) []rueidis.Completed {
			return []rueidis.Completed{c.B().Set().Key(k.rateLimit).Value(formatID(ms)).Build()}
		}
	}
	value := func(t *testing.T, c rueidis.Client, k scriptKeys) any { return getString(t, c, k.rateLimit) }
	runScriptCases(t, setRateLimitedUntilScript, []scriptCase{
		{name: "nothing stored", keys: keys, args: []string{formatID(future)}, reply: []int64{1}, after: value, want: formatID(future)},
		{name: "an earlier end is replaced", seed: stored(future - 1), keys: keys, args: []string{formatID(future)}, reply: []int64{1}, after: value, want: formatID(future)},
		{name: "the same end is kept", seed: stored(future), keys: keys, args: []string{formatID(future)}, reply: []int64{0}, after: value, want: formatID(future)},
		{name: "a later end is kept", seed: stored(future + 1), keys: keys, args: []string{formatID(future)}, reply: []int64{0}, after: value, want: formatID(future + 1)},
	})
	t.Run("the key expires at the end it holds", func(t *testing.T) {
		s, r := newStore(t)
		if err := setRateLimitedUntilScript.Exec(testCtx(t), r.Client, []string{s.rateLimitedUntilKey()}, []string{formatID(future)}).Error(); err != nil {
			t.Fatal(err)
		}
		if ttl := keyPTTL(t, r.Client, s.rateLimitedUntilKey()); ttl <= 0 || ttl > time.Hour.Milliseconds() {
			t.Errorf("PTTL = %d ms, want about an hour", ttl)
		}
	})
}

func TestKeepActivityScript(t *testing.T) {
	keys := func(k scriptKeys) []string { return []string{k.activity, k.index, k.athlete} }
	args := []string{`{"id":7}`, "60000", "1700000000", "7", "604800000"}
	athlete := func(c rueidis.Client, k scriptKeys) []rueidis.Completed {
		return []rueidis.Completed{c.B().Hset().Key(k.athlete).FieldValue().FieldValue("name", "Jane").Build()}
	}
	type kept struct {
		Activity string
		Index    map[string]float64
		TTLSet   bool
		IndexTTL bool
	}
	read := func(t *testing.T, c rueidis.Client, k scriptKeys) any {
		return kept{getString(t, c, k.activity), getZset(t, c, k.index), keyPTTL(t, c, k.activity) > 0, keyPTTL(t, c, k.index) > 60000}
	}
	runScriptCases(t, keepActivityScript, []scriptCase{
		{
			name: "stored, indexed, both with a TTL", seed: athlete, keys: keys, args: args, reply: []int64{1},
			after: read, want: kept{`{"id":7}`, map[string]float64{"7": 1700000000}, true, true},
		},
		{
			name: "athlete not stored: nothing kept", keys: keys, args: args, reply: []int64{0},
			after: read, want: kept{"<none>", map[string]float64{}, false, false},
		},
	})
}

func TestDeleteActivityScript(t *testing.T) {
	keys := func(k scriptKeys) []string { return []string{k.activity, k.index} }
	read := func(t *testing.T, c rueidis.Client, k scriptKeys) any {
		return []any{getString(t, c, k.activity), getZset(t, c, k.index)}
	}
	runScriptCases(t, deleteActivityScript, []scriptCase{
		{
			name: "kept: both gone",
			seed: func(c rueidis.Client, k scriptKeys) []rueidis.Completed {
				return []rueidis.Completed{c.B().Set().Key(k.activity).Value("{}").Build(),
					c.B().Zadd().Key(k.index).ScoreMember().ScoreMember(1, "7").ScoreMember(2, "8").Build()}
			},
			keys: keys, args: []string{"7"}, reply: []int64{1},
			after: read, want: []any{"<none>", map[string]float64{"8": 2}},
		},
		{
			name: "expired already: the stale index entry goes too",
			seed: func(c rueidis.Client, k scriptKeys) []rueidis.Completed {
				return []rueidis.Completed{c.B().Zadd().Key(k.index).ScoreMember().ScoreMember(1, "7").Build()}
			},
			keys: keys, args: []string{"7"}, reply: []int64{0},
			after: read, want: []any{"<none>", map[string]float64{}},
		},
	})
}

func TestPruneIndexScript(t *testing.T) {
	seed := func(c rueidis.Client, k scriptKeys) []rueidis.Completed {
		return []rueidis.Completed{c.B().Set().Key(k.activity).Value("{}").Build(),
			c.B().Zadd().Key(k.index).ScoreMember().ScoreMember(1, "7").ScoreMember(2, "8").Build()}
	}
	index := func(t *testing.T, c rueidis.Client, k scriptKeys) any { return getZset(t, c, k.index) }
	runScriptCases(t, pruneIndexScript, []scriptCase{
		{
			name: "only entries whose activity expired", seed: seed,
			keys: func(k scriptKeys) []string { return []string{k.index, k.activity, k.activity2} }, args: []string{"7", "8"},
			reply: []int64{1}, after: index, want: map[string]float64{"7": 1},
		},
		{
			name: "no ids: nothing removed", seed: seed,
			keys: func(k scriptKeys) []string { return []string{k.index} }, reply: []int64{0},
			after: index, want: map[string]float64{"7": 1, "8": 2},
		},
	})
}

func TestSaveAthleteScript(t *testing.T) {
	keys := func(k scriptKeys) []string { return []string{k.athlete, k.athletes} }
	before := func(c rueidis.Client, k scriptKeys) []rueidis.Completed {
		return []rueidis.Completed{c.B().Hset().Key(k.athlete).FieldValue().FieldValue("connected_at", "first").
			FieldValue("stale_field", "x").Build()}
	}
	read := func(t *testing.T, c rueidis.Client, k scriptKeys) any {
		ids, err := c.Do(testCtx(t), c.B().Smembers().Key(k.athletes).Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		return []any{getHash(t, c, k.athlete), ids}
	}
	runScriptCases(t, saveAthleteScript, []scriptCase{
		{
			name: "new athlete without connected_at gets now", keys: keys, args: []string{"1", "now", "name", "Jane"},
			reply: []int64{1}, after: read, want: []any{map[string]string{"name": "Jane", "connected_at": "now"}, []string{"1"}},
		},
		{
			name: "reconnect without connected_at keeps the stored one, drops old fields", seed: before, keys: keys,
			args: []string{"1", "now", "name", "Jane"}, reply: []int64{1},
			after: read, want: []any{map[string]string{"name": "Jane", "connected_at": "first"}, []string{"1"}},
		},
		{
			name: "a connected_at given wins", seed: before, keys: keys, args: []string{"1", "now", "name", "Jane", "connected_at", "given"},
			reply: []int64{1}, after: read, want: []any{map[string]string{"name": "Jane", "connected_at": "given"}, []string{"1"}},
		},
	})
}

func TestRemoveAthleteScript(t *testing.T) {
	seed := func(c rueidis.Client, k scriptKeys) []rueidis.Completed {
		return []rueidis.Completed{
			c.B().Hset().Key(k.athlete).FieldValue().FieldValue("name", "Jane").Build(),
			c.B().Sadd().Key(k.athletes).Member("1", "2").Build(),
			c.B().Set().Key(k.activity).Value("{}").Build(),
			c.B().Set().Key(k.activity2).Value("{}").Build(),
			c.B().Zadd().Key(k.index).ScoreMember().ScoreMember(1, "7").ScoreMember(2, "8").Build(),
		}
	}
	read := func(t *testing.T, c rueidis.Client, k scriptKeys) any {
		ids, err := c.Do(testCtx(t), c.B().Smembers().Key(k.athletes).Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		return []any{getHash(t, c, k.athlete), ids, getString(t, c, k.activity), getString(t, c, k.activity2), getZset(t, c, k.index)}
	}
	runScriptCases(t, removeAthleteScript, []scriptCase{
		{
			name: "last batch: everything goes", seed: seed,
			keys: func(k scriptKeys) []string { return []string{k.athlete, k.athletes, k.index, k.activity, k.activity2} },
			args: []string{"1", "7", "8"}, reply: []int64{2, 0},
			after: read, want: []any{map[string]string{}, []string{"2"}, "<none>", "<none>", map[string]float64{}},
		},
		{
			name: "a batch with more to come leaves the rest indexed", seed: seed,
			keys: func(k scriptKeys) []string { return []string{k.athlete, k.athletes, k.index, k.activity} },
			args: []string{"1", "7"}, reply: []int64{1, 1},
			after: read, want: []any{map[string]string{}, []string{"2"}, "<none>", "{}", map[string]float64{"8": 2}},
		},
		{
			name: "nothing kept, athlete unknown", keys: func(k scriptKeys) []string { return []string{k.athlete, k.athletes, k.index} },
			args: []string{"1"}, reply: []int64{0, 0},
			after: read, want: []any{map[string]string{}, []string{}, "<none>", "<none>", map[string]float64{}},
		},
	})
}
