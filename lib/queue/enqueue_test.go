package queue_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

// These tests are about the group commit in enqueue.go: concurrent
// Enqueue calls share one script run, and each caller must still get the
// truth about its own event.

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

// With lanes, batches travel in parallel on several connections; a
// delivery and its repeat may be in two of them at once, and still only
// one is added.
func TestEnqueueOnLanesAddsEachOnce(t *testing.T) {
	r := rdbtest.New(t)
	lanes := []rueidis.Client{rdbtest.Dial(t, r.URL), rdbtest.Dial(t, r.URL)}
	q := queue.New(r.Client, r.Prefix, queue.WithEnqueueLanes(lanes...))
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

// (2) The same id twice within one batch: only one is added. Redis is
// stalled while the first call's batch is on its way, so the callers that
// come meanwhile all gather into the next batch.
func TestEnqueueSameIDTwiceInOneBatchAddsOnce(t *testing.T) {
	q, stall, _, _ := setupStalled(t)
	ctx := context.Background()
	stall.Stall()
	first := make(chan enqueueResult, 1)
	go func() {
		added, err := q.Enqueue(ctx, "first", []byte(`{"id":"first"}`))
		first <- enqueueResult{"first", added, err}
	}()
	stall.waitHeld(t)

	const callers = 50
	results := make(chan enqueueResult, callers)
	for range callers {
		go func() {
			added, err := q.Enqueue(ctx, "same", []byte(`{"id":"same"}`))
			results <- enqueueResult{"same", added, err}
		}()
	}
	// Let them reach the gathering batch (a few instructions each); one
	// that came later would be in a batch of its own, which this test also
	// accepts, it would just not be the case under test.
	time.Sleep(100 * time.Millisecond)
	stall.Resume()

	if r := <-first; r.err != nil || !r.added {
		t.Fatalf("first = %v, %v", r.added, r.err)
	}
	added := 0
	for range callers {
		r := <-results
		if r.err != nil {
			t.Fatalf("Enqueue(same): %v", r.err)
		}
		if r.added {
			added++
		}
	}
	if added != 1 {
		t.Fatalf("%d of %d deliveries of one id reported added, want 1", added, callers)
	}
	if s := mustStats(t, q); s.Ready != 2 {
		t.Fatalf("stats = %+v, want 2 ready (first, same)", s)
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
	}
	// A lone call with an ended context, when no batch is in flight.
	for i := range 20 {
		time.Sleep(10 * time.Millisecond) // for the last batch to be done
		id := fmt.Sprintf("lone%02d", i)
		if added, err := q.Enqueue(cancelled, id, []byte(`{"id":"`+id+`"}`)); err == nil {
			t.Fatalf("lone Enqueue(%s) with a cancelled context = %v, nil; want an error", id, added)
		}
	}
}

// (3b) A caller whose deadline passes while its batch is on its way gets
// an error when its deadline passes, not when the batch gives up, and a
// redelivery afterwards leaves the event stored. That holds for the caller
// that sends the batch as much as for those waiting on it.
func TestEnqueueDeadlinePassingMidBatchGivesAnError(t *testing.T) {
	q, stall, r, c := setupStalled(t)
	stall.Stall()
	type call struct {
		added bool
		err   error
	}
	done := make(chan call, 2)
	for _, id := range []string{"sender", "waiter"} {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			added, err := q.Enqueue(ctx, id, []byte(`{"id":"`+id+`"}`))
			done <- call{added, err}
		}()
		if id == "sender" {
			stall.waitHeld(t) // its batch is on its way; "waiter" joins the next
		}
	}
	// Redis stays stalled until both calls return or 1 s passes: five
	// times their deadline, yet well short of when the batch or the client
	// gives up on a stalled Redis (DefaultEnqueueTimeout, rueidis's
	// ConnWriteTimeout: 5 s). A caller must not wait for those.
	giveUp := time.After(time.Second)
	for range 2 {
		select {
		case c := <-done:
			if c.err == nil {
				t.Errorf("Enqueue past its deadline = %v, nil; want an error", c.added)
			}
		case <-giveUp:
			stall.Resume()
			t.Fatal("Enqueue did not return when its deadline passed (Redis stalled)")
		}
	}
	stall.Resume()

	// Strava redelivers after an error: the redelivery is queued, or was
	// already (the stalled batch may have landed after all).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, id := range []string{"sender", "waiter"} {
		if _, err := q.Enqueue(ctx, id, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatalf("redelivery of %s: %v", id, err)
		}
	}
	direct := queue.New(r.Client, r.Prefix, queue.WithClock(c.Now))
	stored := claimable(t, direct)
	if !stored["sender"] || !stored["waiter"] {
		t.Fatalf("after redelivery, stored = %v", stored)
	}
}

// (4) Redis cut while many enqueues are in flight: each returns an error
// or (added, nil), and every event reported added is in Redis.
func TestEnqueueRedisCutMidBurst(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	client := rdbtest.Dial(t, proxy.URL())
	c := &clock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	q := queue.New(client, r.Prefix, queue.WithClock(c.Now))

	const n = 600
	var returned atomic.Int64
	results := make([]enqueueResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("e%04d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			added, err := q.Enqueue(ctx, id, []byte(`{"id":"`+id+`"}`))
			results[i] = enqueueResult{id, added, err}
			returned.Add(1)
		})
	}
	for returned.Load() < 50 {
		time.Sleep(time.Millisecond)
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
		t.Log("the cut came after every batch (no call saw it)")
	}
}

// (5) After a burst, a lone Enqueue still goes out: whatever ended the
// burst (answers, callers giving up, Redis errors), the next call is not
// left waiting for a flush that never comes.
func TestEnqueueAloneAfterABurstCompletes(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	client := rdbtest.Dial(t, proxy.URL())
	q := queue.New(client, r.Prefix)

	lone := func(id string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if added, err := q.Enqueue(ctx, id, []byte(`{"id":"`+id+`"}`)); err != nil || !added {
			t.Fatalf("lone Enqueue(%s) after a burst = %v, %v", id, added, err)
		}
	}
	burst := func(prefix string, ctxFor func(int) context.Context) {
		ids := make([]string, 300)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s%03d", prefix, i)
		}
		enqueueAll(q, ctxFor, ids)
	}

	burst("a", background)
	time.Sleep(50 * time.Millisecond)
	lone("lone-1")

	// Callers giving up half way through.
	burst("b", func(i int) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	})
	time.Sleep(50 * time.Millisecond)
	lone("lone-2")

	// A burst that fails: Redis is gone, then back.
	proxy.Cut()
	burst("c", func(int) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		t.Cleanup(cancel)
		return ctx
	})
	proxy.Restore()
	time.Sleep(50 * time.Millisecond)
	// The client reconnects on its next command; the first may still see
	// the old connection's error.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if _, err := q.Stats(ctx); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lone("lone-3")
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

// setupStalled is setup with the queue's client behind a stallProxy; r.Client
// reaches Redis directly.
func setupStalled(t *testing.T) (*queue.Queue, *stallProxy, *rdbtest.Redis, *clock) {
	t.Helper()
	r := rdbtest.New(t)
	stall := newStallProxy(t, rdbtest.HostPort(t, r.URL))
	client, err := rdb.Connect(context.Background(), stall.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	c := &clock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	q := queue.New(client, r.Prefix, queue.WithClock(c.Now))
	return q, stall, r, c
}

// stallProxy relays TCP to Redis and can hold back what the client sends
// (Redis then seems to hang) without closing anything, unlike
// rdbtest.Proxy's Cut.
type stallProxy struct {
	ln      net.Listener
	target  string
	db      string // STRAVAHOOK_TEST_REDIS_URL's database, see rdbtest.DBPath
	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
	closed  bool
	held    int // writes waiting for Resume
	conns   []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, db: rdbtest.DBPath(t, target)}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.cond.Broadcast()
		ln.Close()
	})
	return p
}

func (p *stallProxy) URL() string { return "redis://" + p.ln.Addr().String() + p.db }

// Stall holds back every write to Redis from now on.
func (p *stallProxy) Stall() { p.mu.Lock(); p.stalled = true; p.mu.Unlock() }

// Resume forwards what was held back, and everything after.
func (p *stallProxy) Resume() {
	p.mu.Lock()
	p.stalled = false
	p.mu.Unlock()
	p.cond.Broadcast()
}

// waitHeld waits until some write is being held back.
func (p *stallProxy) waitHeld(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		held := p.held
		p.mu.Unlock()
		if held > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no write reached the stalled proxy")
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *stallProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(in, out); in.Close(); out.Close() }()
		go p.forward(out, in)
	}
}

func (p *stallProxy) forward(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			p.held++
			for p.stalled && !p.closed {
				p.cond.Wait()
			}
			p.held--
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A request that arrives just as a flusher finds nothing more to send is
// not stranded: someone sends it. Callers enqueue back to back, so their
// calls keep landing right at the end of batches; any call that times out
// with Redis healthy was left behind.
func TestEnqueueBackToBackNeverStrandsARequest(t *testing.T) {
	q, _, _ := setup(t)
	const callers, calls = 4, 400
	var stranded atomic.Int64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range calls {
				id := fmt.Sprintf("c%d-%04d", c, i)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := q.Enqueue(ctx, id, []byte(`{"id":"`+id+`"}`))
				cancel()
				if err != nil {
					stranded.Add(1)
					t.Errorf("Enqueue(%s) with Redis healthy: %v", id, err)
				}
			}
		})
	}
	wg.Wait()
	if n := stranded.Load(); n > 0 {
		t.Fatalf("%d of %d calls were left waiting", n, callers*calls)
	}
	if s := mustStats(t, q); s.Ready != callers*calls {
		t.Fatalf("ready = %d, want %d", s.Ready, callers*calls)
	}
}
