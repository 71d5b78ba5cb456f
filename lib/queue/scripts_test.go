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
	"strconv"
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
	} {
		for field, value := range hash {
			if err := c.Do(ctx, c.B().Hset().Key(key).FieldValue().FieldValue(field, value).Build()).Error(); err != nil {
				t.Fatal(err)
			}
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
	} {
		if *dst, err = c.Do(ctx, c.B().Hgetall().Key(key).Build()).AsStrMap(); err != nil {
			t.Fatal(err)
		}
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
	s.payloads, s.attempts, s.claims, s.errors = norm(s.payloads), norm(s.attempts), norm(s.claims), norm(s.errors)
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
		claims: maps.Clone(s.claims), errors: maps.Clone(s.errors)}.normalized()
}

// leased is one event leased by token "tok" until a minute from now, with
// a payload, one failed attempt and its error.
var leased = rawState{
	pending:  map[string]int64{"a": nowMS + 60_000},
	payloads: map[string]string{"a": "pa"},
	attempts: map[string]string{"a": "1"},
	claims:   map[string]string{"a": "tok"},
	errors:   map[string]string{"a": "boom"},
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
					claims: map[string]string{"old": tok, "mid": tok}}
			},
		},
		{
			name: "visible at exactly now is ready, a millisecond later is not",
			seed: rawState{pending: map[string]int64{"now": nowMS, "later": nowMS + 1}},
			max:  10,
			want: []Message{{ID: "now"}},
			after: func(tok string) rawState {
				return rawState{pending: map[string]int64{"now": leaseEnd, "later": nowMS + 1}, claims: map[string]string{"now": tok}}
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
					claims: map[string]string{"a": tok, "b": tok}}
			},
		},
		{
			name: "an ended lease is taken over with the new token",
			seed: rawState{pending: map[string]int64{"a": nowMS - 1}, claims: map[string]string{"a": "old-token"}},
			max:  10,
			want: []Message{{ID: "a", Payload: []byte{}}},
			after: func(tok string) rawState {
				return rawState{pending: map[string]int64{"a": leaseEnd}, claims: map[string]string{"a": tok}}
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
				attempts: map[string]string{"a": "2"}, errors: map[string]string{"a": "cause"}},
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
