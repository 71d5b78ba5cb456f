package queue

// Table tests of the queue's Lua scripts, in the style of hibiken/asynq's
// rdb tests: each case seeds the raw keys, runs one operation and compares
// the raw keys afterwards. They pin the edge cases a script must get right
// and that the tests of the public API reach only by luck: a lost lease, a
// wrong token, empty input, and the boundaries of pending's score bands.

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

// rawState is everything the queue keeps in Redis, as plain maps (an
// absent key and an empty map are the same).
type rawState struct {
	pending  map[string]int64 // id → score
	payloads map[string]string
	attempts map[string]string
	claims   map[string]string
	errors   map[string]string
	queued   map[string]string   // id → first queued (ms)
	held     map[string][]string // group → held ids, sorted
}

// scriptNow is the queue's clock in these tests (unix ms 1_800_000_000_000,
// January 2027).
var scriptNow = time.UnixMilli(1_800_000_000_000)

const nowMS = 1_800_000_000_000

func scriptQueue(t *testing.T) (*Queue, *rdbtest.Redis) {
	t.Helper()
	r := rdbtest.New(t)
	return New(r.Client, r.Prefix, WithClock(func() time.Time { return scriptNow })), r
}

func (q *Queue) seed(t *testing.T, s rawState) {
	t.Helper()
	ctx := context.Background()
	c := q.client
	for id, score := range s.pending {
		if err := c.Do(ctx, c.B().Zadd().Key(q.keys.pending).ScoreMember().ScoreMember(float64(score), id).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	for key, hash := range map[string]map[string]string{
		q.keys.payloads: s.payloads, q.keys.attempts: s.attempts, q.keys.claims: s.claims, q.keys.errors: s.errors,
		q.keys.queued: s.queued,
	} {
		for field, value := range hash {
			if err := c.Do(ctx, c.B().Hset().Key(key).FieldValue().FieldValue(field, value).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for group, ids := range s.held {
		if err := c.Do(ctx, c.B().Sadd().Key(q.heldKey(group)).Member(ids...).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
}

func (q *Queue) dump(t *testing.T) rawState {
	t.Helper()
	ctx := context.Background()
	c := q.client
	entries, err := c.Do(ctx, c.B().Zrange().Key(q.keys.pending).Min("0").Max("-1").Withscores().Build()).AsZScores()
	if err != nil {
		t.Fatal(err)
	}
	s := rawState{pending: map[string]int64{}}
	for _, e := range entries {
		s.pending[e.Member] = int64(e.Score)
	}
	for key, dst := range map[string]*map[string]string{
		q.keys.payloads: &s.payloads, q.keys.attempts: &s.attempts, q.keys.claims: &s.claims, q.keys.errors: &s.errors,
		q.keys.queued: &s.queued,
	} {
		if *dst, err = c.Do(ctx, c.B().Hgetall().Key(key).Build()).AsStrMap(); err != nil {
			t.Fatal(err)
		}
	}
	// A score copied by a script reads "1.8e+12" on miniredis and
	// "1800000000000" on Redis: the same number, which is what counts.
	for id, v := range s.queued {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			s.queued[id] = strconv.FormatInt(int64(f), 10)
		}
	}
	heldKeys, err := c.Do(ctx, c.B().Keys().Pattern(q.keys.prefix+"held:*").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	s.held = map[string][]string{}
	for _, key := range heldKeys {
		ids, err := c.Do(ctx, c.B().Smembers().Key(key).Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		s.held[strings.TrimPrefix(key, q.keys.prefix+"held:")] = ids
	}
	return s
}

func (s rawState) normalized() rawState {
	norm := func(m map[string]string) map[string]string {
		if len(m) == 0 {
			return map[string]string{}
		}
		return m
	}
	if len(s.pending) == 0 {
		s.pending = map[string]int64{}
	}
	s.payloads, s.attempts, s.claims, s.errors, s.queued = norm(s.payloads), norm(s.attempts), norm(s.claims), norm(s.errors), norm(s.queued)
	if len(s.held) == 0 {
		s.held = map[string][]string{}
	}
	return s
}

func wantState(t *testing.T, q *Queue, want rawState) {
	t.Helper()
	got, want := q.dump(t).normalized(), want.normalized()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("redis holds\n  %+v\nwant\n  %+v", got, want)
	}
}

// clone copies a state so that a case can describe its result as its
// seed plus changes.
func (s rawState) clone() rawState {
	return rawState{pending: maps.Clone(s.pending), payloads: maps.Clone(s.payloads), attempts: maps.Clone(s.attempts),
		claims: maps.Clone(s.claims), errors: maps.Clone(s.errors), queued: maps.Clone(s.queued), held: maps.Clone(s.held)}.normalized()
}

// leased is one event leased by token "tok" until a minute from now, with
// a payload, one failed attempt and its error, first queued 5 s ago.
var leased = rawState{
	pending:  map[string]int64{"a": nowMS + 60_000},
	payloads: map[string]string{"a": "pa"},
	attempts: map[string]string{"a": "1"},
	claims:   map[string]string{"a": "tok"},
	errors:   map[string]string{"a": "boom"},
	queued:   map[string]string{"a": strconv.Itoa(nowMS - 5000)},
}

func TestClaimScript(t *testing.T) {
	const lease = 30 * time.Second
	leaseEnd := int64(nowMS + 30_000)
	for _, tc := range []struct {
		name  string
		seed  rawState
		max   int
		want  []Message // Token is checked apart
		after func(token string) rawState
	}{
		{
			name:  "empty queue",
			max:   10,
			after: func(string) rawState { return rawState{} },
		},
		{
			name:  "max 0 claims nothing",
			seed:  rawState{pending: map[string]int64{"a": nowMS - 1}},
			max:   0,
			after: func(string) rawState { return rawState{pending: map[string]int64{"a": nowMS - 1}} },
		},
		{
			name: "oldest first, at most max",
			seed: rawState{pending: map[string]int64{"new": nowMS - 1, "old": nowMS - 3, "mid": nowMS - 2}},
			max:  2,
			want: []Message{{ID: "old"}, {ID: "mid"}},
			after: func(tok string) rawState {
				return rawState{pending: map[string]int64{"new": nowMS - 1, "old": leaseEnd, "mid": leaseEnd},
					claims: map[string]string{"old": tok, "mid": tok},
					queued: map[string]string{"old": strconv.Itoa(nowMS - 3), "mid": strconv.Itoa(nowMS - 2)}}
			},
		},
		{
			name: "visible at exactly now is ready, a millisecond later is not",
			seed: rawState{pending: map[string]int64{"now": nowMS, "later": nowMS + 1}},
			max:  10,
			want: []Message{{ID: "now"}},
			after: func(tok string) rawState {
				return rawState{pending: map[string]int64{"now": leaseEnd, "later": nowMS + 1}, claims: map[string]string{"now": tok},
					queued: map[string]string{"now": strconv.Itoa(nowMS)}}
			},
		},
		{
			name: "done and dead bands are never claimed",
			seed: rawState{pending: map[string]int64{"done": doneBase, "dead": deadBase, "done-old": doneBase + nowMS - 1}},
			max:  10,
			after: func(string) rawState {
				return rawState{pending: map[string]int64{"done": doneBase, "dead": deadBase, "done-old": doneBase + nowMS - 1}}
			},
		},
		{
			name: "payload and attempts come along; a missing payload is empty",
			seed: rawState{pending: map[string]int64{"a": nowMS - 2, "b": nowMS - 1},
				payloads: map[string]string{"a": "pa"}, attempts: map[string]string{"a": "3"}},
			max:  10,
			want: []Message{{ID: "a", Payload: []byte("pa"), Attempts: 3}, {ID: "b", Payload: []byte{}}},
			after: func(tok string) rawState {
				return rawState{pending: map[string]int64{"a": leaseEnd, "b": leaseEnd},
					payloads: map[string]string{"a": "pa"}, attempts: map[string]string{"a": "3"},
					claims: map[string]string{"a": tok, "b": tok},
					queued: map[string]string{"a": strconv.Itoa(nowMS - 2), "b": strconv.Itoa(nowMS - 1)}}
			},
		},
		{
			// The first claim's time of first queueing stays.
			name: "an ended lease is taken over with the new token",
			seed: rawState{pending: map[string]int64{"a": nowMS - 1}, claims: map[string]string{"a": "old-token"},
				queued: map[string]string{"a": "1000"}},
			max:  10,
			want: []Message{{ID: "a", Payload: []byte{}}},
			after: func(tok string) rawState {
				return rawState{pending: map[string]int64{"a": leaseEnd}, claims: map[string]string{"a": tok}, queued: map[string]string{"a": "1000"}}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := scriptQueue(t)
			q.seed(t, tc.seed)
			got, err := q.Claim(context.Background(), tc.max, lease)
			if err != nil {
				t.Fatal(err)
			}
			token := ""
			for i := range got {
				if got[i].Token == "" || token != "" && got[i].Token != token {
					t.Fatalf("tokens %+v, want one non-empty token for the whole claim", got)
				}
				token = got[i].Token
				got[i].Token = ""
				if got[i].Payload == nil {
					got[i].Payload = []byte{}
				}
			}
			for i := range tc.want {
				if tc.want[i].Payload == nil {
					tc.want[i].Payload = []byte{}
				}
			}
			if len(got) != len(tc.want) || len(got) > 0 && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("claimed %+v, want %+v", got, tc.want)
			}
			wantState(t, q, tc.after(token))
		})
	}
}

func TestAckScript(t *testing.T) {
	window := time.Hour
	forgetBefore := doneBase + nowMS - window.Milliseconds()
	for _, tc := range []struct {
		name  string
		seed  rawState
		token string
		ids   []string
		want  int
		after rawState
	}{
		{
			name: "holder's ack leaves only the dedupe record", seed: leased, token: "tok", ids: []string{"a"}, want: 1,
			after: rawState{pending: map[string]int64{"a": doneBase + nowMS}},
		},
		{name: "wrong token changes nothing", seed: leased, token: "other", ids: []string{"a"}, after: leased},
		{
			name: "lost lease (no claim) changes nothing",
			seed: rawState{pending: map[string]int64{"a": nowMS - 1}, payloads: map[string]string{"a": "pa"}}, token: "tok", ids: []string{"a"},
			after: rawState{pending: map[string]int64{"a": nowMS - 1}, payloads: map[string]string{"a": "pa"}},
		},
		{name: "no ids: nothing sent", seed: leased, token: "tok", after: leased},
		{
			name: "only the ids this claim holds",
			seed: rawState{pending: map[string]int64{"a": nowMS + 1, "b": nowMS + 1, "c": nowMS + 1},
				claims: map[string]string{"a": "tok", "b": "other", "c": "tok"}},
			token: "tok", ids: []string{"a", "b", "c", "unknown"}, want: 2,
			after: rawState{pending: map[string]int64{"a": doneBase + nowMS, "b": nowMS + 1, "c": doneBase + nowMS},
				claims: map[string]string{"b": "other"}},
		},
		{
			// The window's start is exclusive: a record exactly as old as
			// the window stays one more ack.
			name: "dedupe records older than the window are forgotten, with late payloads",
			seed: rawState{pending: map[string]int64{
				"expired": forgetBefore - 1, "edge": forgetBefore, "fresh": doneBase + nowMS - 1,
				"ready": nowMS - 1, "dead": deadBase + 1, "band-start": doneBase,
			}, payloads: map[string]string{"expired": "late", "ready": "pr", "dead": "pd"}},
			token: "tok", ids: []string{"none-held"},
			after: rawState{pending: map[string]int64{
				"edge": forgetBefore, "fresh": doneBase + nowMS - 1, "ready": nowMS - 1, "dead": deadBase + 1,
			}, payloads: map[string]string{"ready": "pr", "dead": "pd"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := scriptQueue(t)
			q.dedupeWindow = window
			q.seed(t, tc.seed)
			n, err := q.Ack(context.Background(), tc.token, tc.ids...)
			if err != nil || n != tc.want {
				t.Fatalf("Ack = %d, %v; want %d", n, err, tc.want)
			}
			wantState(t, q, tc.after)
		})
	}
}

func TestFailScript(t *testing.T) {
	const retryIn = 45 * time.Second
	withAttempts := func(n string) rawState {
		s := leased.clone()
		s.attempts["a"] = n
		return s
	}
	for _, tc := range []struct {
		name        string
		seed        rawState
		token       string
		maxAttempts int
		want        FailResult
		wantErr     error
		after       rawState
	}{
		{
			name: "below the last attempt: retried later", seed: leased, token: "tok", maxAttempts: 3,
			want: FailResult{Attempts: 2},
			after: rawState{pending: map[string]int64{"a": nowMS + 45_000}, payloads: map[string]string{"a": "pa"},
				attempts: map[string]string{"a": "2"}, errors: map[string]string{"a": "cause"}, queued: leased.queued},
		},
		{
			name: "the last attempt buries", seed: withAttempts("2"), token: "tok", maxAttempts: 3,
			want: FailResult{Attempts: 3, Dead: true},
			after: rawState{pending: map[string]int64{"a": deadBase + nowMS}, payloads: map[string]string{"a": "pa"},
				attempts: map[string]string{"a": "3"}, errors: map[string]string{"a": "cause"}},
		},
		{
			name: "first failure without attempts left buries (max 0)", seed: rawState{
				pending: map[string]int64{"a": nowMS + 1}, claims: map[string]string{"a": "tok"}}, token: "tok", maxAttempts: 0,
			want: FailResult{Attempts: 1, Dead: true},
			after: rawState{pending: map[string]int64{"a": deadBase + nowMS},
				attempts: map[string]string{"a": "1"}, errors: map[string]string{"a": "cause"}},
		},
		{
			name: "negative max is max 0", seed: leased, token: "tok", maxAttempts: -5,
			want: FailResult{Attempts: 2, Dead: true},
			after: rawState{pending: map[string]int64{"a": deadBase + nowMS}, payloads: map[string]string{"a": "pa"},
				attempts: map[string]string{"a": "2"}, errors: map[string]string{"a": "cause"}},
		},
		{name: "wrong token: lease lost, nothing changes", seed: leased, token: "other", maxAttempts: 3, wantErr: ErrLeaseLost, after: leased},
		{
			name: "no claim at all: lease lost", seed: rawState{pending: map[string]int64{"a": nowMS - 1}}, token: "tok", maxAttempts: 3,
			wantErr: ErrLeaseLost, after: rawState{pending: map[string]int64{"a": nowMS - 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := scriptQueue(t)
			q.seed(t, tc.seed)
			res, err := q.Fail(context.Background(), Message{ID: "a", Token: tc.token}, "cause", retryIn, tc.maxAttempts)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Fail = %+v, %v; want %v", res, err, tc.wantErr)
				}
			} else if err != nil || res != tc.want {
				t.Fatalf("Fail = %+v, %v; want %+v", res, err, tc.want)
			}
			wantState(t, q, tc.after)
		})
	}
}

func TestReleaseScript(t *testing.T) {
	released := func(at int64) rawState {
		s := leased.clone()
		s.pending["a"] = at
		delete(s.claims, "a")
		return s
	}
	for _, tc := range []struct {
		name      string
		seed      rawState
		token     string
		visibleAt time.Time
		ids       []string
		want      int
		after     rawState
	}{
		{
			name: "holder's release: visible at the given time, attempts untouched", seed: leased, token: "tok",
			visibleAt: scriptNow.Add(15 * time.Minute), ids: []string{"a"}, want: 1, after: released(nowMS + 15*60_000),
		},
		{
			name: "a time in the past means now", seed: leased, token: "tok",
			visibleAt: scriptNow.Add(-time.Hour), ids: []string{"a"}, want: 1, after: released(nowMS),
		},
		{name: "wrong token changes nothing", seed: leased, token: "other", visibleAt: scriptNow, ids: []string{"a"}, after: leased},
		{
			name: "lost lease (no claim) changes nothing", seed: rawState{pending: map[string]int64{"a": nowMS - 1}}, token: "tok",
			visibleAt: scriptNow.Add(time.Hour), ids: []string{"a"}, after: rawState{pending: map[string]int64{"a": nowMS - 1}},
		},
		{name: "no ids: nothing sent", seed: leased, token: "tok", visibleAt: scriptNow, after: leased},
		{
			name:  "only the ids this claim holds",
			seed:  rawState{pending: map[string]int64{"a": nowMS + 1, "b": nowMS + 1}, claims: map[string]string{"a": "tok", "b": "other"}},
			token: "tok", visibleAt: scriptNow.Add(time.Minute), ids: []string{"a", "b", "unknown"}, want: 1,
			after: rawState{pending: map[string]int64{"a": nowMS + 60_000, "b": nowMS + 1}, claims: map[string]string{"b": "other"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := scriptQueue(t)
			q.seed(t, tc.seed)
			n, err := q.Release(context.Background(), tc.token, tc.visibleAt, tc.ids...)
			if err != nil || n != tc.want {
				t.Fatalf("Release = %d, %v; want %d", n, err, tc.want)
			}
			wantState(t, q, tc.after)
		})
	}
}

func TestRedriveScript(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seed  rawState
		want  int
		after rawState
	}{
		{name: "nothing dead", seed: rawState{pending: map[string]int64{"a": nowMS - 1}}, after: rawState{pending: map[string]int64{"a": nowMS - 1}}},
		{
			name: "dead: ready now with a clean slate, payload kept",
			seed: rawState{pending: map[string]int64{"a": deadBase + nowMS - 5}, payloads: map[string]string{"a": "pa"},
				attempts: map[string]string{"a": "8"}, errors: map[string]string{"a": "boom"}},
			want:  1,
			after: rawState{pending: map[string]int64{"a": nowMS}, payloads: map[string]string{"a": "pa"}},
		},
		{
			// The dead band starts at deadBase itself; everything below
			// it (acked, leased, delayed, ready) stays where it is.
			name: "band boundaries",
			seed: rawState{pending: map[string]int64{
				"dead-at-start": deadBase, "acked-last": deadBase - 1, "acked": doneBase + nowMS, "leased": nowMS + 1, "ready": nowMS - 1,
			}, attempts: map[string]string{"acked-last": "2", "leased": "1"}, errors: map[string]string{"leased": "e"}},
			want: 1,
			after: rawState{pending: map[string]int64{
				"dead-at-start": nowMS, "acked-last": deadBase - 1, "acked": doneBase + nowMS, "leased": nowMS + 1, "ready": nowMS - 1,
			}, attempts: map[string]string{"acked-last": "2", "leased": "1"}, errors: map[string]string{"leased": "e"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := scriptQueue(t)
			q.seed(t, tc.seed)
			n, err := q.Redrive(context.Background())
			if err != nil || n != tc.want {
				t.Fatalf("Redrive = %d, %v; want %d", n, err, tc.want)
			}
			wantState(t, q, tc.after)
		})
	}
}

// Redrive loops in batches until one comes back short; exactly a batch's
// worth of dead events needs a second, empty run.
func TestRedriveScriptExactBatch(t *testing.T) {
	q, _ := scriptQueue(t)
	seed := rawState{pending: map[string]int64{}}
	for i := range redriveBatch {
		seed.pending["d"+strconv.Itoa(i)] = deadBase + int64(i)
	}
	q.seed(t, seed)
	if n, err := q.Redrive(context.Background()); err != nil || n != redriveBatch {
		t.Fatalf("Redrive = %d, %v; want %d", n, err, redriveBatch)
	}
	if s, _ := q.Stats(context.Background()); s.Ready != redriveBatch || s.Dead != 0 {
		t.Fatalf("stats %+v, want %d ready", s, redriveBatch)
	}
}

// Burying an event prunes the dead list in the same step: entries buried
// before the retention's start go (the start itself stays), then the
// oldest beyond the cap. Other bands are never touched.
func TestFailScriptPrunesTheDeadList(t *testing.T) {
	const maxAge = time.Hour
	pruneBefore := deadBase + nowMS - maxAge.Milliseconds()
	others := map[string]int64{"ready": nowMS - 1, "held": heldBase + 1, "acked": doneBase + nowMS}
	for _, tc := range []struct {
		name     string
		dead     map[string]int64
		cap      int
		wantLeft []string // dead ids left besides "a", the one buried now
	}{
		{"nothing to prune", map[string]int64{"d1": pruneBefore + 1}, 10, []string{"d1"}},
		{"older than the retention", map[string]int64{"old": pruneBefore - 1, "edge": pruneBefore, "young": deadBase + nowMS - 1}, 10, []string{"edge", "young"}},
		{"over the cap: the oldest go", map[string]int64{"d1": pruneBefore + 1, "d2": pruneBefore + 2, "d3": pruneBefore + 3}, 2, []string{"d3"}},
		{"at the cap exactly", map[string]int64{"d1": pruneBefore + 1}, 2, []string{"d1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := scriptQueue(t)
			q.deadMaxAge, q.deadMaxLen = maxAge, tc.cap
			seed := rawState{pending: maps.Clone(others), payloads: map[string]string{}, attempts: map[string]string{}, errors: map[string]string{},
				claims: map[string]string{"a": "tok"}, queued: map[string]string{"a": "5"}}
			seed.pending["a"] = nowMS + 1
			for id, score := range tc.dead {
				seed.pending[id] = score
				seed.payloads[id], seed.attempts[id], seed.errors[id] = "p-"+id, "8", "e-"+id
			}
			q.seed(t, seed)
			if res, err := q.Fail(context.Background(), Message{ID: "a", Token: "tok"}, "cause", time.Minute, 0); err != nil || !res.Dead {
				t.Fatalf("Fail = %+v, %v; want buried", res, err)
			}
			want := rawState{pending: maps.Clone(others), payloads: map[string]string{}, attempts: map[string]string{"a": "1"},
				errors: map[string]string{"a": "cause"}}
			want.pending["a"] = deadBase + nowMS
			for _, id := range tc.wantLeft {
				want.pending[id] = tc.dead[id]
				want.payloads[id], want.attempts[id], want.errors[id] = "p-"+id, "8", "e-"+id
			}
			wantState(t, q, want)
		})
	}
}

func TestPruneDeadScript(t *testing.T) {
	q, _ := scriptQueue(t)
	q.deadMaxAge, q.deadMaxLen = time.Hour, 2
	pruneBefore := deadBase + nowMS - time.Hour.Milliseconds()
	q.seed(t, rawState{
		pending:  map[string]int64{"old": pruneBefore - 1, "d1": pruneBefore, "d2": pruneBefore + 1, "d3": pruneBefore + 2, "acked": doneBase + 1, "ready": 1},
		payloads: map[string]string{"old": "p", "d1": "p", "ready": "p"},
		attempts: map[string]string{"old": "1", "d1": "1", "d3": "1"},
		errors:   map[string]string{"old": "e", "d1": "e", "d3": "e"},
	})
	if n, err := q.PruneDead(context.Background()); err != nil || n != 2 {
		t.Fatalf("PruneDead = %d, %v; want 2 (one too old, one over the cap)", n, err)
	}
	wantState(t, q, rawState{
		pending:  map[string]int64{"d2": pruneBefore + 1, "d3": pruneBefore + 2, "acked": doneBase + 1, "ready": 1},
		payloads: map[string]string{"ready": "p"}, attempts: map[string]string{"d3": "1"}, errors: map[string]string{"d3": "e"},
	})
	if n, err := q.PruneDead(context.Background()); err != nil || n != 0 {
		t.Fatalf("second PruneDead = %d, %v; want 0", n, err)
	}
}

func TestHoldScript(t *testing.T) {
	guard := func(q *Queue) Guard { return Guard{Key: q.keys.prefix + "athlete:7", Field: "reconnect"} }
	heldAt := heldBase + nowMS
	two := rawState{pending: map[string]int64{"a": nowMS + 1, "b": nowMS + 1}, claims: map[string]string{"a": "tok", "b": "other"},
		attempts: map[string]string{"a": "2"}, queued: map[string]string{"a": "7"}}
	for _, tc := range []struct {
		name    string
		guarded bool
		token   string
		ids     []string
		want    int
		after   rawState
	}{
		{
			name: "guarded: held without an attempt, in the held set", guarded: true, token: "tok", ids: []string{"a", "b", "unknown"}, want: 1,
			after: rawState{pending: map[string]int64{"a": heldAt, "b": nowMS + 1}, claims: map[string]string{"b": "other"},
				attempts: map[string]string{"a": "2"}, queued: map[string]string{"a": "7"}, held: map[string][]string{"athlete:7": {"a"}}},
		},
		{
			name: "guard gone: ready now instead", token: "tok", ids: []string{"a", "b"},
			after: rawState{pending: map[string]int64{"a": nowMS, "b": nowMS + 1}, claims: map[string]string{"b": "other"},
				attempts: map[string]string{"a": "2"}, queued: map[string]string{"a": "7"}},
		},
		{name: "wrong token changes nothing", guarded: true, token: "stale", ids: []string{"a"}, after: two},
		{name: "no ids: nothing sent", guarded: true, token: "tok", after: two},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := scriptQueue(t)
			q.seed(t, two)
			g := guard(q)
			ctx := context.Background()
			if tc.guarded {
				if err := q.client.Do(ctx, q.client.B().Hset().Key(g.Key).FieldValue().FieldValue(g.Field, "refused").Build()).Error(); err != nil {
					t.Fatal(err)
				}
			}
			if res, err := q.Hold(ctx, tc.token, "athlete:7", g, tc.ids...); err != nil || res != (HoldResult{Held: tc.want}) {
				t.Fatalf("Hold = %+v, %v; want %d held", res, err, tc.want)
			}
			wantState(t, q, tc.after)
		})
	}
}

// Unhold moves only ids still in the held band (below doneBase) and
// forgets the group either way. (A score of exactly heldBase is not used:
// the embedded server's Lua reads "5e+13", the only form Redis gives it,
// as no number; real scores, heldBase + now, have more digits.)
func TestUnholdScript(t *testing.T) {
	q, _ := scriptQueue(t)
	q.seed(t, rawState{
		pending: map[string]int64{"held": heldBase + 5, "band-start": heldBase + 1, "below": heldBase - 1, "acked": doneBase, "dead": deadBase + 1, "other-group": heldBase + 9},
		held:    map[string][]string{"g": {"held", "band-start", "below", "acked", "dead", "gone"}, "h": {"other-group"}},
	})
	if n, err := q.Unhold(context.Background(), "g"); err != nil || n != 2 {
		t.Fatalf("Unhold = %d, %v; want 2", n, err)
	}
	wantState(t, q, rawState{
		pending: map[string]int64{"held": nowMS, "band-start": nowMS, "below": heldBase - 1, "acked": doneBase, "dead": deadBase + 1, "other-group": heldBase + 9},
		held:    map[string][]string{"h": {"other-group"}},
	})
	if n, err := q.Unhold(context.Background(), "nobody"); err != nil || n != 0 {
		t.Fatalf("Unhold of an unknown group = %d, %v; want 0", n, err)
	}
}

func TestDropScript(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token string
		ids   []string
		want  int
		after rawState
	}{
		{name: "holder's drop leaves no trace, not even a dedupe record", token: "tok", ids: []string{"a"}, want: 1, after: rawState{}},
		{name: "wrong token changes nothing", token: "other", ids: []string{"a"}, after: leased},
		{name: "no ids: nothing sent", token: "tok", after: leased},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := scriptQueue(t)
			q.seed(t, leased)
			if n, err := q.Drop(context.Background(), tc.token, tc.ids...); err != nil || n != tc.want {
				t.Fatalf("Drop = %d, %v; want %d", n, err, tc.want)
			}
			wantState(t, q, tc.after)
		})
	}
}

// Stats counts each band by its boundaries: ready up to now inclusive,
// delayed after now and below heldBase, held up to doneBase exclusive,
// dead from deadBase inclusive; acked records are not counted. Leased
// counts claims whose lease is still running.
func TestStatsScript(t *testing.T) {
	q, _ := scriptQueue(t)
	q.seed(t, rawState{
		pending: map[string]int64{
			"ready-now": nowMS, "ready-old": nowMS - 60_000,
			"leased": nowMS + 1, "lease-ended": nowMS - 10, "retry": heldBase - 1,
			"held": heldBase, "held-last": doneBase - 1,
			"acked": doneBase, "acked-last": deadBase - 1,
			"dead": deadBase, "dead-late": deadBase + nowMS,
		},
		claims: map[string]string{"leased": "t", "lease-ended": "t", "gone": "t"},
		// ready-old was first queued 5 minutes ago; a delayed event queued
		// earlier does not count as the oldest ready.
		queued: map[string]string{"ready-old": strconv.Itoa(nowMS - 300_000), "retry": "1"},
	})
	s, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Ready: 3, Delayed: 2, Leased: 1, Held: 2, Dead: 2, OldestReady: 5 * time.Minute, OldestReadySeconds: 300}
	if s != want {
		t.Errorf("Stats = %+v\nwant    %+v", s, want)
	}

	empty, _ := scriptQueue(t)
	if s, err := empty.Stats(context.Background()); err != nil || s != (Stats{}) {
		t.Errorf("Stats of an empty queue = %+v, %v; want zero", s, err)
	}
}

// Beyond the group's cap, Hold buries instead: the event leaves its claim,
// takes a dead score with the overflow's error, loses its first-queued
// time like any buried event, and keeps its payload and attempts for a
// redrive; the held set does not grow.
func TestHoldScriptBuriesBeyondTheCap(t *testing.T) {
	q, _ := scriptQueue(t)
	q.heldMax = 2
	q.seed(t, rawState{
		pending:  map[string]int64{"old": heldBase + 5, "a": nowMS + 1, "b": nowMS + 1},
		payloads: map[string]string{"a": "pa", "b": "pb"},
		claims:   map[string]string{"a": "tok", "b": "tok"},
		attempts: map[string]string{"b": "2"},
		queued:   map[string]string{"a": "7", "b": "8"},
		held:     map[string][]string{"athlete:7": {"old"}},
	})
	g := Guard{Key: q.keys.prefix + "athlete:7", Field: "reconnect"}
	ctx := context.Background()
	if err := q.client.Do(ctx, q.client.B().Hset().Key(g.Key).FieldValue().FieldValue(g.Field, "refused").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if res, err := q.Hold(ctx, "tok", "athlete:7", g, "a", "b"); err != nil || res != (HoldResult{Held: 1, Buried: 1}) {
		t.Fatalf("Hold = %+v, %v; want a held, b buried", res, err)
	}
	wantState(t, q, rawState{
		pending:  map[string]int64{"old": heldBase + 5, "a": heldBase + nowMS, "b": deadBase + nowMS},
		payloads: map[string]string{"a": "pa", "b": "pb"},
		attempts: map[string]string{"b": "2"},
		errors:   map[string]string{"b": heldOverflowError},
		queued:   map[string]string{"a": "7"},
		held:     map[string][]string{"athlete:7": {"a", "old"}},
	})
}
