package queue_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stravahook/stravahook/lib/clocktest"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

// setup is a queue on the test's Redis with a clock the test moves; opts
// apply after WithClock.
func setup(t *testing.T, opts ...queue.Option) (*queue.Queue, *clocktest.Clock, *rdbtest.Redis) {
	t.Helper()
	r := rdbtest.New(t)
	q, c := queueOn(r, r.Client, opts...)
	return q, c, r
}

// queueOn is a queue under r's prefix that reaches Redis through client (a
// proxy's, say), with a clock the test moves; opts apply after WithClock.
func queueOn(r *rdbtest.Redis, client rueidis.Client, opts ...queue.Option) (*queue.Queue, *clocktest.Clock) {
	c := clocktest.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	return queue.New(client, r.Prefix, append([]queue.Option{queue.WithClock(c.Now)}, opts...)...), c
}

// refusedGuard is athlete 7's reconnect guard, set: the athlete refused
// access, so Hold parks their events.
func refusedGuard(t *testing.T, r *rdbtest.Redis) queue.Guard {
	t.Helper()
	guard := queue.Guard{Key: r.Prefix + "athlete:7", Field: "reconnect_reason"}
	if err := r.Client.Do(context.Background(), r.Client.B().Hset().Key(guard.Key).FieldValue().FieldValue(guard.Field, "refused").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	return guard
}

func mustEnqueue(t *testing.T, q *queue.Queue, ids ...string) {
	t.Helper()
	for _, id := range ids {
		added, err := q.Enqueue(context.Background(), id, []byte(`{"id":"`+id+`"}`))
		if err != nil || !added {
			t.Fatalf("Enqueue(%s) = %v, %v", id, added, err)
		}
	}
}

func mustStats(t *testing.T, q *queue.Queue) queue.Stats {
	t.Helper()
	s, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ids(msgs []queue.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func TestEnqueueTwiceQueuesOnce(t *testing.T) {
	q, _, _ := setup(t)
	ctx := context.Background()
	first, err := q.Enqueue(ctx, "e1", []byte("payload"))
	if err != nil || !first {
		t.Fatalf("first Enqueue = %v, %v", first, err)
	}
	again, err := q.Enqueue(ctx, "e1", []byte("payload"))
	if err != nil || again {
		t.Fatalf("repeated Enqueue = %v, %v; want false, nil", again, err)
	}
	if s := mustStats(t, q); s.Ready != 1 {
		t.Fatalf("ready = %d, want 1", s.Ready)
	}
}

func TestRepeatedDeliveryAfterAckIsStillIgnored(t *testing.T) {
	q, _, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "e1")
	msgs, _ := q.Claim(ctx, 10, time.Minute)
	if n, err := q.Ack(ctx, msgs[0].Token, "e1"); n != 1 || err != nil {
		t.Fatalf("Ack = %d, %v", n, err)
	}
	if added, _ := q.Enqueue(ctx, "e1", []byte("x")); added {
		t.Fatal("a redelivery after the event was processed was queued again")
	}
}

// The dedupe record of an acked event is forgotten after the window, on a
// later ack; until then a redelivery is ignored.
func TestDedupeRecordExpiresAfterTheWindow(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "old")
	got, _ := q.Claim(ctx, 10, time.Minute)
	q.Ack(ctx, got[0].Token, "old")
	c.Advance(queue.DefaultDedupeWindow - time.Minute)
	if added, _ := q.Enqueue(ctx, "old", []byte("x")); added {
		t.Fatal("redelivery inside the window was queued")
	}
	c.Advance(2 * time.Minute)
	mustEnqueue(t, q, "new")
	got, _ = q.Claim(ctx, 10, time.Minute)
	q.Ack(ctx, got[0].Token, "new") // prunes records older than the window
	if added, err := q.Enqueue(ctx, "old", []byte("x")); err != nil || !added {
		t.Fatalf("after the window: %v, %v; want queued again", added, err)
	}
}

func TestClaimLeasesOldestFirstAndHidesThem(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	for i := range 5 {
		mustEnqueue(t, q, fmt.Sprintf("e%d", i))
		c.Advance(time.Millisecond)
	}
	got, err := q.Claim(ctx, 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids(got), ",") != "e0,e1,e2" {
		t.Fatalf("claimed %v, want e0,e1,e2", ids(got))
	}
	if string(got[0].Payload) != `{"id":"e0"}` || got[0].Attempts != 0 || got[0].Token == "" {
		t.Fatalf("message = %+v", got[0])
	}
	rest, _ := q.Claim(ctx, 10, time.Minute)
	if strings.Join(ids(rest), ",") != "e3,e4" {
		t.Fatalf("second claim %v, want e3,e4", ids(rest))
	}
	if none, _ := q.Claim(ctx, 10, time.Minute); len(none) != 0 {
		t.Fatalf("third claim returned leased events %v", ids(none))
	}
	s := mustStats(t, q)
	if s.Ready != 0 || s.Delayed != 5 || s.Leased != 5 {
		t.Fatalf("stats = %+v, want 0 ready, 5 delayed, 5 leased", s)
	}
}

// A drain that dies holding a lease loses nothing: when the lease ends, the
// events are ready again and the next drain gets them.
func TestCrashedDrainsEventsReappearAfterLease(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a", "b")
	if got, _ := q.Claim(ctx, 10, 30*time.Second); len(got) != 2 {
		t.Fatalf("claimed %d", len(got))
	}
	// …the drain is killed here, without ack…
	c.Advance(29 * time.Second)
	if got, _ := q.Claim(ctx, 10, time.Minute); len(got) != 0 {
		t.Fatalf("events reappeared before the lease ended: %v", ids(got))
	}
	c.Advance(2 * time.Second)
	got, err := q.Claim(ctx, 10, time.Minute)
	if err != nil || len(got) != 2 {
		t.Fatalf("after the lease: %v, %v; want both events", ids(got), err)
	}
	if n, _ := q.Ack(ctx, got[0].Token, ids(got)...); n != 2 {
		t.Fatalf("ack by the new claim = %d", n)
	}
}

func TestAckRemovesEverythingButTheDedupeRecord(t *testing.T) {
	q, _, r := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a", "b")
	got, _ := q.Claim(ctx, 10, time.Minute)
	if n, err := q.Ack(ctx, got[0].Token, "a", "b"); n != 2 || err != nil {
		t.Fatalf("Ack = %d, %v", n, err)
	}
	for _, id := range []string{"a", "b"} {
		if keys := r.KeysHolding(t, `{"id":"`+id+`"}`); len(keys) != 0 {
			t.Errorf("%s's payload is still in Redis after its ack, in %v", id, keys)
		}
		if added, err := q.Enqueue(ctx, id, []byte(`{"id":"`+id+`"}`)); added || err != nil {
			t.Errorf("redelivery of acked %s = %v, %v; want a duplicate (the dedupe record stays)", id, added, err)
		}
	}
	if s := mustStats(t, q); s != (queue.Stats{}) {
		t.Fatalf("stats after ack = %+v, want all zero", s)
	}
	if again, _ := q.Claim(ctx, 10, time.Minute); len(again) != 0 {
		t.Fatalf("acked events claimed again: %v", ids(again))
	}
}

// A buried event stays buried when Strava delivers it again: the dead list
// keeps the first delivery, and nothing is queued.
func TestRedeliveryOfADeadEventIsIgnored(t *testing.T) {
	q, _, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a")
	got, _ := q.Claim(ctx, 1, time.Minute)
	if _, err := q.Fail(ctx, got[0], "gone", 0, 0); err != nil {
		t.Fatal(err)
	}
	if added, err := q.Enqueue(ctx, "a", []byte("second delivery")); added || err != nil {
		t.Fatalf("redelivery of a dead event = %v, %v; want false, nil", added, err)
	}
	if s := mustStats(t, q); s.Ready != 0 || s.Delayed != 0 || s.Dead != 1 {
		t.Fatalf("stats = %+v, want only 1 dead", s)
	}
	dead, _ := q.Dead(ctx, 10)
	if len(dead) != 1 || string(dead[0].Payload) != `{"id":"a"}` {
		t.Fatalf("dead = %+v, want the first delivery's payload", dead)
	}
}

// A redelivery after the ack stores a payload nobody reads (the enqueue
// writes it before ZADD NX finds the dedupe record); it goes with the
// record when the window ends.
func TestLateRedeliveryLeavesNothingBehindTheWindow(t *testing.T) {
	q, c, r := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a")
	got, _ := q.Claim(ctx, 1, time.Minute)
	q.Ack(ctx, got[0].Token, "a")
	if added, _ := q.Enqueue(ctx, "a", []byte("late")); added {
		t.Fatal("late redelivery queued")
	}
	c.Advance(queue.DefaultDedupeWindow + time.Minute)
	mustEnqueue(t, q, "b")
	got, _ = q.Claim(ctx, 1, time.Minute)
	q.Ack(ctx, got[0].Token, "b")
	payloads, err := r.Client.Do(ctx, r.Client.B().Hlen().Key(r.Prefix+"payloads").Build()).AsInt64()
	if err != nil || payloads != 0 {
		t.Fatalf("payloads left after the window: %d (%v), want 0", payloads, err)
	}
	if n, _ := r.Client.Do(ctx, r.Client.B().Zcard().Key(r.Prefix+"pending").Build()).AsInt64(); n != 1 {
		t.Fatalf("pending holds %d ids, want only b's dedupe record", n)
	}
}

func TestAckWithALostLeaseLeavesTheEvent(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a")
	slow, _ := q.Claim(ctx, 1, time.Second)
	c.Advance(2 * time.Second)
	fresh, _ := q.Claim(ctx, 1, time.Minute)
	if len(fresh) != 1 {
		t.Fatal("lease did not expire")
	}
	if n, _ := q.Ack(ctx, slow[0].Token, "a"); n != 0 {
		t.Fatalf("stale ack removed %d events", n)
	}
	if _, err := q.Fail(ctx, slow[0], "boom", time.Second, 3); err == nil {
		t.Fatal("stale Fail succeeded")
	}
	if n, _ := q.Ack(ctx, fresh[0].Token, "a"); n != 1 {
		t.Fatalf("current ack = %d", n)
	}
}

// Claims that stop hiding events would hand them out forever: the test
// stops as soon as more events come back than were queued (and, whatever
// else goes wrong, at its deadline) instead of waiting for go test's.
func TestConcurrentClaimsAreDisjoint(t *testing.T) {
	q, _, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const queued = 200
	for i := range queued {
		mustEnqueue(t, q, fmt.Sprintf("e%03d", i))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	total := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				got, err := q.Claim(ctx, 7, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m.ID]++
				}
				total += len(got)
				over := total > queued
				mu.Unlock()
				if over {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != queued {
		t.Fatalf("claimed %d distinct events, want %d", len(seen), queued)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s claimed %d times", id, n)
		}
	}
}

func TestFailRetriesWithBackoffThenBuries(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a")
	for attempt := 1; attempt <= 3; attempt++ {
		got, _ := q.Claim(ctx, 1, time.Minute)
		if len(got) != 1 {
			t.Fatalf("attempt %d: nothing to claim", attempt)
		}
		if got[0].Attempts != attempt-1 {
			t.Fatalf("attempt %d: message says %d earlier attempts", attempt, got[0].Attempts)
		}
		res, err := q.Fail(ctx, got[0], fmt.Sprintf("strava: 502 (try %d)", attempt), 30*time.Second, 3)
		if err != nil {
			t.Fatal(err)
		}
		if res.Attempts != attempt || res.Dead != (attempt == 3) {
			t.Fatalf("attempt %d: Fail = %+v", attempt, res)
		}
		if attempt < 3 {
			if early, _ := q.Claim(ctx, 1, time.Minute); len(early) != 0 {
				t.Fatal("retry visible before its backoff ended")
			}
			c.Advance(31 * time.Second)
		}
	}
	s := mustStats(t, q)
	if s.Ready != 0 || s.Delayed != 0 || s.Dead != 1 || s.Leased != 0 {
		t.Fatalf("stats = %+v, want only 1 dead", s)
	}
	dead, err := q.Dead(ctx, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("Dead = %v, %v", dead, err)
	}
	if dead[0].ID != "a" || dead[0].Attempts != 3 || dead[0].Error != "strava: 502 (try 3)" || string(dead[0].Payload) != `{"id":"a"}` {
		t.Fatalf("dead = %+v", dead[0])
	}
}

func TestFailWithNoAttemptsLeftBuriesAtOnce(t *testing.T) {
	q, _, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a")
	got, _ := q.Claim(ctx, 1, time.Minute)
	res, err := q.Fail(ctx, got[0], "athlete 7 not connected", 0, 0)
	if err != nil || !res.Dead {
		t.Fatalf("Fail = %+v, %v", res, err)
	}
}

func TestRedriveRevivesDeadWithCleanSlate(t *testing.T) {
	q, _, _ := setup(t)
	ctx := context.Background()
	for i := range 3 {
		mustEnqueue(t, q, fmt.Sprintf("e%d", i))
	}
	got, _ := q.Claim(ctx, 10, time.Minute)
	for _, m := range got {
		if _, err := q.Fail(ctx, m, "gone", 0, 1); err != nil {
			t.Fatal(err)
		}
	}
	n, err := q.Redrive(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	s := mustStats(t, q)
	if s.Ready != 3 || s.Dead != 0 {
		t.Fatalf("stats after redrive = %+v", s)
	}
	again, _ := q.Claim(ctx, 10, time.Minute)
	if len(again) != 3 || again[0].Attempts != 0 {
		t.Fatalf("after redrive: %d events, attempts %d", len(again), again[0].Attempts)
	}
}

func TestRedriveManyInBatches(t *testing.T) {
	q, _, _ := setup(t)
	ctx := context.Background()
	const total = 1203
	for i := range total {
		mustEnqueue(t, q, fmt.Sprintf("e%04d", i))
	}
	got, _ := q.Claim(ctx, total, time.Minute)
	for _, m := range got {
		if _, err := q.Fail(ctx, m, "x", 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := q.Redrive(ctx); err != nil || n != total {
		t.Fatalf("Redrive = %d, %v; want %d", n, err, total)
	}
}

func TestReleaseCountsNoAttemptAndWaitsUntilGiven(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "a", "b")
	got, _ := q.Claim(ctx, 10, time.Minute)
	windowEnd := c.Now().Add(15 * time.Minute)
	if n, err := q.Release(ctx, got[0].Token, windowEnd, "a", "b"); n != 2 || err != nil {
		t.Fatalf("Release = %d, %v", n, err)
	}
	c.Advance(2 * time.Minute) // past the original lease
	if early, _ := q.Claim(ctx, 10, time.Minute); len(early) != 0 {
		t.Fatalf("released events visible before the window ended: %v", ids(early))
	}
	c.Advance(14 * time.Minute)
	back, _ := q.Claim(ctx, 10, time.Minute)
	if len(back) != 2 || back[0].Attempts != 0 || back[1].Attempts != 0 {
		t.Fatalf("after the window: %+v", back)
	}
}

func TestStatsOldestReadyAge(t *testing.T) {
	q, c, _ := setup(t)
	mustEnqueue(t, q, "a")
	c.Advance(90 * time.Second)
	mustEnqueue(t, q, "b")
	s := mustStats(t, q)
	if s.Ready != 2 || s.OldestReady != 90*time.Second || s.OldestReadySeconds != 90 {
		t.Fatalf("stats = %+v", s)
	}
}

// With Redis gone, every operation reports an error promptly; none claims
// success.
func TestRedisDownGivesErrors(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	client, err := rdb.Connect(context.Background(), proxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	q := queue.New(client, r.Prefix)
	mustEnqueue(t, q, "before")
	proxy.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if added, err := q.Enqueue(ctx, "during", []byte("x")); err == nil || added {
		t.Fatalf("Enqueue with Redis down = %v, %v; want an error", added, err)
	}
	if _, err := q.Claim(ctx, 1, time.Minute); err == nil {
		t.Fatal("Claim with Redis down succeeded")
	}
	if _, err := q.Stats(ctx); err == nil {
		t.Fatal("Stats with Redis down succeeded")
	}
	// What was stored before the cut is still there.
	direct := queue.New(r.Client, r.Prefix)
	if s := mustStats(t, direct); s.Ready != 1 {
		t.Fatalf("ready = %d, want the 1 event stored before the cut", s.Ready)
	}
}

// An event whose id says everything is stored as its id alone: no payload
// in Redis, an empty Payload when claimed, and the same dedupe, death and
// redrive as any other.
func TestEventWithoutPayloadIsStoredAsItsIDAlone(t *testing.T) {
	q, _, r := setup(t)
	ctx := context.Background()
	if added, err := q.Enqueue(ctx, "k1", nil); !added || err != nil {
		t.Fatalf("Enqueue = %v, %v", added, err)
	}
	if added, _ := q.Enqueue(ctx, "k1", nil); added {
		t.Fatal("repeated delivery queued")
	}
	if keys := r.Keys(t); len(keys) != 1 || keys[0] != r.Prefix+"pending" {
		t.Fatalf("keys = %v, want only pending", keys)
	}
	got, _ := q.Claim(ctx, 10, time.Minute)
	if len(got) != 1 || got[0].ID != "k1" || len(got[0].Payload) != 0 {
		t.Fatalf("claimed %+v, want k1 with an empty payload", got)
	}
	if _, err := q.Fail(ctx, got[0], "gone", 0, 0); err != nil {
		t.Fatal(err)
	}
	if dead, _ := q.Dead(ctx, 10); len(dead) != 1 || dead[0].ID != "k1" {
		t.Fatalf("dead = %+v", dead)
	}
	if n, err := q.Redrive(ctx); n != 1 || err != nil {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	if again, _ := q.Claim(ctx, 10, time.Minute); len(again) != 1 || again[0].Attempts != 0 {
		t.Fatalf("after redrive: %+v", again)
	}
}

// Concurrent events with and without payloads are each stored as they
// came: a payload where there was one, none where there was none.
func TestEnqueueMixedPayloadsConcurrently(t *testing.T) {
	q, _, _ := setup(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var payload []byte
			if i%2 == 0 {
				payload = []byte(fmt.Sprintf(`{"n":%d}`, i))
			}
			if added, err := q.Enqueue(ctx, fmt.Sprintf("m%02d", i), payload); !added || err != nil {
				t.Errorf("Enqueue(m%02d) = %v, %v", i, added, err)
			}
		}()
	}
	wg.Wait()
	got, _ := q.Claim(ctx, 100, time.Minute)
	if len(got) != 40 {
		t.Fatalf("claimed %d, want 40", len(got))
	}
	for _, m := range got {
		var i int
		fmt.Sscanf(m.ID, "m%02d", &i)
		want := ""
		if i%2 == 0 {
			want = fmt.Sprintf(`{"n":%d}`, i)
		}
		if string(m.Payload) != want {
			t.Errorf("%s: payload %q, want %q", m.ID, m.Payload, want)
		}
	}
}

// A prompt drain claims nothing until the oldest ready event has settled,
// then everything ready: a delete right behind its create comes along.
func TestClaimSettledWaitsForTheOldestThenTakesAll(t *testing.T) {
	q, c, _ := setup(t)
	ctx := context.Background()
	mustEnqueue(t, q, "create")
	c.Advance(800 * time.Millisecond)
	mustEnqueue(t, q, "delete")
	got, err := q.ClaimSettled(ctx, 10, time.Minute, time.Second)
	if err != nil || len(got) != 0 {
		t.Fatalf("claimed %v, %v before the oldest settled (0.8 s of 1 s)", ids(got), err)
	}
	c.Advance(200 * time.Millisecond)
	got, err = q.ClaimSettled(ctx, 10, time.Minute, time.Second)
	if err != nil || strings.Join(ids(got), ",") != "create,delete" {
		t.Fatalf("claimed %v, %v once the oldest settled; want create,delete", ids(got), err)
	}
	mustEnqueue(t, q, "later")
	if got, _ := q.Claim(ctx, 10, time.Minute); strings.Join(ids(got), ",") != "later" {
		t.Fatalf("Claim (no settling) = %v, want later at once", ids(got))
	}
}
