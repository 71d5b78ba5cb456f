package queue_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/clocktest"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

// These tests are about what Enqueue promises each caller under
// concurrency and faults: the truth about its own event, an error rather
// than an unconfirmed success, and nothing stored for a caller who left.

type enqueueResult struct {
	id    string
	added bool
	err   error
}

// enqueueAll runs one Enqueue per id, all at once (released together), and
// returns every result.
func enqueueAll(q *queue.Queue, ctxFor func(i int) context.Context, ids []string) []enqueueResult {
	results := make([]enqueueResult, len(ids))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			<-start
			added, err := q.Enqueue(ctxFor(i), id, []byte(`{"id":"`+id+`"}`))
			results[i] = enqueueResult{id: id, added: added, err: err}
		})
	}
	close(start)
	wg.Wait()
	return results
}

func background(int) context.Context { return context.Background() }

// claimable claims everything ready and returns the ids.
func claimable(t *testing.T, q *queue.Queue) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := q.Claim(ctx, 100000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range msgs {
		if string(m.Payload) != `{"id":"`+m.ID+`"}` {
			t.Errorf("%s: payload %q", m.ID, m.Payload)
		}
		out[m.ID] = true
	}
	return out
}

// (1) 500 concurrent deliveries of 250 events (each twice): each event is
// reported added exactly once and queued exactly once.
func TestEnqueueConcurrentRedeliveriesAddEachOnce(t *testing.T) {
	q, _, _ := setup(t)
	checkEachAddedOnce(t, q)
}

func checkEachAddedOnce(t *testing.T, q *queue.Queue) {
	t.Helper()
	var ids []string
	for i := range 250 {
		id := fmt.Sprintf("e%03d", i)
		ids = append(ids, id, id)
	}
	results := enqueueAll(q, background, ids)
	addedPerID := map[string]int{}
	added, notAdded := 0, 0
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("Enqueue(%s): %v", r.id, r.err)
		}
		if r.added {
			added++
			addedPerID[r.id]++
		} else {
			notAdded++
		}
	}
	if added != 250 || notAdded != 250 {
		t.Fatalf("%d added, %d not; want 250 and 250", added, notAdded)
	}
	for id, n := range addedPerID {
		if n != 1 {
			t.Fatalf("%s reported added %d times", id, n)
		}
	}
	if s := mustStats(t, q); s.Ready != 250 || s.Delayed != 0 {
		t.Fatalf("stats = %+v, want 250 ready", s)
	}
}

// Many concurrent deliveries of one id, without a stall: one added.
func TestEnqueueManyCallersOfOneIDAddOnce(t *testing.T) {
	q, _, _ := setup(t)
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = "same"
	}
	added := 0
	for _, r := range enqueueAll(q, background, ids) {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.added {
			added++
		}
	}
	if added != 1 {
		t.Fatalf("%d added, want 1", added)
	}
	if s := mustStats(t, q); s.Ready != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

// (3a) A caller whose context has already ended gets an error; no call
// reports added=true unless its event is stored.
func TestEnqueueWithAnEndedContextGivesAnError(t *testing.T) {
	q, _, _ := setup(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = fmt.Sprintf("e%03d", i)
	}
	ctxFor := func(i int) context.Context {
		switch i % 3 {
		case 0:
			return cancelled
		case 1:
			return expired
		}
		return context.Background()
	}
	results := enqueueAll(q, ctxFor, ids)
	stored := claimable(t, q)
	for i, r := range results {
		if i%3 != 2 && r.err == nil {
			t.Errorf("Enqueue(%s) with an ended context = %v, nil; want an error", r.id, r.added)
		}
		if i%3 == 2 && (r.err != nil || !r.added) {
			t.Errorf("Enqueue(%s) = %v, %v", r.id, r.added, r.err)
		}
		if r.added && !stored[r.id] {
			t.Errorf("Enqueue(%s) reported added, but the event is not in Redis", r.id)
		}
		if i%3 != 2 && stored[r.id] {
			t.Errorf("Enqueue(%s) with an ended context wrote the event; nobody waits for its answer", r.id)
		}
	}
}

// (3b) A caller whose deadline passes while Redis is stalled gets an error
// when its deadline passes, not when the client gives up, and a redelivery
// afterwards leaves the event stored. That holds for the first caller (its
// command alone on the connection) as much as for one whose command is
// sent while the first waits.
func TestEnqueueDeadlinePassingMidCallGivesAnError(t *testing.T) {
	q, stall, r, c := setupStalled(t)
	stall.Stall()
	type call struct {
		added bool
		err   error
	}
	done := make(chan call, 2)
	for _, id := range []string{"first", "second"} {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			added, err := q.Enqueue(ctx, id, []byte(`{"id":"`+id+`"}`))
			done <- call{added, err}
		}()
		if id == "first" {
			stall.WaitHeld(t) // its command is on its way
		}
	}
	// Redis stays stalled until both calls return or 3 s pass: fifteen
	// times their deadline (room for a loaded machine under -race), yet
	// short of when Enqueue or the client gives up on a stalled Redis
	// (DefaultEnqueueTimeout, rueidis's ConnWriteTimeout: 5 s). A caller
	// must not wait for those.
	giveUp := time.After(3 * time.Second)
	for range 2 {
		select {
		case c := <-done:
			if c.err == nil {
				t.Errorf("Enqueue past its deadline = %v, nil; want an error", c.added)
			}
		case <-giveUp:
			stall.Restore()
			t.Fatal("Enqueue did not return when its deadline passed (Redis stalled)")
		}
	}
	stall.Restore()

	// Strava redelivers after an error: the redelivery is queued, or was
	// already (the stalled command may have landed after all).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, id := range []string{"first", "second"} {
		if _, err := q.Enqueue(ctx, id, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatalf("redelivery of %s: %v", id, err)
		}
	}
	direct := queue.New(r.Client, r.Prefix, queue.WithClock(c.Now))
	stored := claimable(t, direct)
	if !stored["first"] || !stored["second"] {
		t.Fatalf("after redelivery, stored = %v", stored)
	}
}

// (4) Redis cut while many enqueues are in flight: each returns an error
// or (added, nil), and every event reported added is in Redis.
func TestEnqueueRedisCutMidBurst(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	q, c := queueOn(r, rdbtest.Dial(t, proxy.URL()))

	const n = 600
	var returned atomic.Int64
	fiftyBack := make(chan struct{})
	results := make([]enqueueResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("e%04d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			added, err := q.Enqueue(ctx, id, []byte(`{"id":"`+id+`"}`))
			results[i] = enqueueResult{id, added, err}
			if returned.Add(1) == 50 {
				close(fiftyBack)
			}
		})
	}
	select {
	case <-fiftyBack:
	case <-time.After(10 * time.Second):
		t.Fatal("fewer than 50 of the burst's calls returned with Redis reachable")
	}
	proxy.Cut()
	wg.Wait()

	direct := queue.New(r.Client, r.Prefix, queue.WithClock(c.Now))
	stored := claimable(t, direct)
	added, failed := 0, 0
	for _, res := range results {
		switch {
		case res.err != nil:
			failed++
		case !res.added:
			t.Errorf("Enqueue(%s) of a new id = false, nil: neither an error nor added", res.id)
		default:
			added++
			if !stored[res.id] {
				t.Errorf("Enqueue(%s) reported added, but the event is not in Redis", res.id)
			}
		}
	}
	t.Logf("%d added, %d errors, %d stored", added, failed, len(stored))
	if added == 0 {
		t.Error("nothing was added before the cut")
	}
	if failed == 0 {
		t.Log("the cut came after every call (none saw it)")
	}
}

// (5) After Redis went away and came back, Enqueue works again: the
// client reconnects on its own.
func TestEnqueueWorksAgainAfterRedisReturns(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	client := rdbtest.Dial(t, proxy.URL())
	q := queue.New(client, r.Prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mustEnqueue(t, q, "before")
	proxy.Cut()
	if added, err := q.Enqueue(ctx, "during", []byte(`{"id":"during"}`)); err == nil {
		t.Fatalf("Enqueue with Redis gone = %v, nil; want an error", added)
	}
	proxy.Restore()
	// The first command after the cut may still meet the old connection's
	// error; a later one (Strava's retry) must get through.
	var err error
	for ctx.Err() == nil {
		var added bool
		if added, err = q.Enqueue(ctx, "after", []byte(`{"id":"after"}`)); err == nil {
			if !added {
				t.Fatal("Enqueue(after) = false: a new id reported as a repeat")
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Enqueue after Redis returned: %v", err)
	}
	if stored := claimable(t, queue.New(r.Client, r.Prefix)); !stored["before"] || !stored["after"] || stored["during"] {
		t.Fatalf("stored = %v, want before and after", stored)
	}
}

// A command failing inside the transaction (here the payloads key holds
// the wrong type) is an error, not an "added" whose payload is missing.
func TestEnqueueReportsAFailureInsideTheTransaction(t *testing.T) {
	q, _, r := setup(t)
	ctx := context.Background()
	if err := r.Client.Do(ctx, r.Client.B().Set().Key(r.Prefix+"payloads").Value("not a hash").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if added, err := q.Enqueue(ctx, "e1", []byte(`{"id":"e1"}`)); err == nil {
		t.Fatalf("Enqueue with its payload not stored = %v, nil; want an error", added)
	}
	// Without a payload there is nothing to store but the id.
	if added, err := q.Enqueue(ctx, "e2", nil); err != nil || !added {
		t.Fatalf("Enqueue(e2, no payload) = %v, %v", added, err)
	}
}

func BenchmarkEnqueueParallel(b *testing.B) {
	r := rdbtest.New(b)
	q := queue.New(r.Client, r.Prefix)
	payload := []byte(`{"object_type":"activity","object_id":1491968222,"aspect_type":"create","owner_id":28004310,"subscription_id":122449,"event_time":1522986611}`)
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := strconv.FormatInt(n.Add(1), 10)
			if _, err := q.Enqueue(ctx, id, payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// setupStalled is setup with the queue's client behind an rdbtest.Proxy
// (to stall); r.Client reaches Redis directly.
func setupStalled(t *testing.T) (*queue.Queue, *rdbtest.Proxy, *rdbtest.Redis, *clocktest.Clock) {
	t.Helper()
	r := rdbtest.New(t)
	stall := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	client, err := rdb.Connect(context.Background(), stall.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	q, c := queueOn(r, client)
	return q, stall, r, c
}
