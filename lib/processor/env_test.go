package processor

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/clocktest"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// newClock is a settable wall clock shared by the queue, the store, the
// processor and the stand-in, so tests jump past leases, backoffs and
// rate-limit windows without sleeping. It starts in the future so that
// keys Redis expires at one of its instants (PEXPIREAT) stay put.
func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2030, 1, 7, 10, 5, 0, 0, time.UTC))
}

// countingClient counts the Redis commands sent through it (a Lua script
// is one EVALSHA, a pipeline counts each of its commands).
type countingClient struct {
	rueidis.Client
	mu sync.Mutex
	n  int64
}

func (c *countingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.add(1)
	return c.Client.Do(ctx, cmd)
}

func (c *countingClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	c.add(int64(len(cmds)))
	return c.Client.DoMulti(ctx, cmds...)
}

func (c *countingClient) add(n int64) {
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
}

func (c *countingClient) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// cuttable is a Redis client that loses Redis when cut is set: from then
// on each command fails at once without reaching the server, as over a
// connection just lost.
type cuttable struct {
	rueidis.Client
	cut atomic.Bool
}

func (c *cuttable) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	return c.Client.Do(c.lost(ctx), cmd)
}

func (c *cuttable) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	return c.Client.DoMulti(c.lost(ctx), cmds...)
}

func (c *cuttable) lost(ctx context.Context) context.Context {
	if !c.cut.Load() {
		return ctx
	}
	dead, cancel := context.WithCancel(ctx)
	cancel()
	return dead
}

// env is one test's world: Redis (real with STRAVAHOOK_TEST_REDIS_URL, else miniredis),
// the queue and store on it, the Strava stand-in and the real client.
type env struct {
	t      testing.TB
	redis  *rdbtest.Redis
	cmds   *countingClient
	clock  *clocktest.Clock
	queue  *queue.Queue
	store  *store.Store
	strava *standIn
	client *strava.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	r := rdbtest.New(t)
	e := &env{t: t, redis: r, cmds: &countingClient{Client: r.Client}, clock: newClock()}
	e.queue = queue.New(e.cmds, r.Prefix+"queue:", queue.WithClock(e.clock.Now))
	e.store = store.New(e.cmds, r.Prefix)
	e.store.Now = e.clock.Now
	e.strava = newStandIn(t, e.clock.Now)
	e.client = strava.NewClient(strava.Options{BaseURL: e.strava.URL, ClientID: "5", ClientSecret: "client-secret-for-tests"})
	return e
}

// processor returns a Processor on env with cfg, the test's clock and a
// logger writing to the test log.
func (e *env) processor(cfg Config) *Processor {
	cfg.Now = e.clock.Now
	return New(cfg, e.queue, e.store, e.client, testLogger(e.t))
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// connect stores athlete id with tokens the stand-in accepts, valid for
// six more hours.
func (e *env) connect(id int64) store.Athlete {
	e.t.Helper()
	access, refresh := e.strava.athlete(id)
	return e.save(store.Athlete{ID: id, Name: "Athlete", AccessToken: access, RefreshToken: refresh, ExpiresAt: e.clock.Now().Add(6 * time.Hour), Scope: "read,activity:read_all"})
}

func (e *env) save(a store.Athlete) store.Athlete {
	e.t.Helper()
	if err := e.store.SaveAthlete(context.Background(), a); err != nil {
		e.t.Fatalf("save athlete: %v", err)
	}
	return a
}

// keepBefore stores a copy of activity id as an earlier drain would have.
func (e *env) keepBefore(id, owner int64) {
	e.t.Helper()
	a := strava.DetailedActivity{ID: id, Athlete: strava.MetaAthlete{ID: owner}, Name: "kept earlier", StartDate: activityStart(id)}
	if err := e.store.KeepActivity(context.Background(), a, time.Hour); err != nil {
		e.t.Fatalf("keep activity: %v", err)
	}
}

func event(aspect string, owner, activity, at int64) strava.Event {
	return strava.Event{ObjectType: strava.ObjectActivity, ObjectID: activity, AspectType: aspect,
		OwnerID: owner, SubscriptionID: 120475, EventTime: at, Updates: map[string]string{}}
}

func deauthorization(athlete, at int64) strava.Event {
	return strava.Event{ObjectType: strava.ObjectAthlete, ObjectID: athlete, AspectType: strava.AspectUpdate,
		OwnerID: athlete, SubscriptionID: 120475, EventTime: at, Updates: map[string]string{"authorized": "false"}}
}

// enqueue queues events the way the webhook intake does.
// queueCreates queues creates of n new activities of owner, ids first to
// first+n-1, each known to the stand-in, one after the other.
func (e *env) queueCreates(owner, first int64, n int) {
	e.t.Helper()
	for i := range int64(n) {
		e.strava.activity(first+i, owner)
		e.enqueue(event(strava.AspectCreate, owner, first+i, 10))
	}
}

func (e *env) enqueue(events ...strava.Event) {
	e.t.Helper()
	for _, ev := range events {
		if added, err := e.queue.Enqueue(context.Background(), ev.Key(), ev.Payload()); err != nil || !added {
			e.t.Fatalf("enqueue %s: added=%v err=%v", ev.Key(), added, err)
		}
	}
}

func (e *env) drain(p *Processor) Summary {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := p.Drain(ctx)
	if err != nil {
		e.t.Fatalf("Drain: %v (summary %+v)", err, sum)
	}
	return sum
}

func (e *env) stats() queue.Stats {
	e.t.Helper()
	s, err := e.queue.Stats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// wantQueueEmpty asserts that no event is waiting, leased or dead.
func (e *env) wantQueueEmpty() {
	e.t.Helper()
	if s := e.stats(); s.Ready+s.Delayed+s.Leased+s.Dead != 0 {
		e.t.Errorf("queue not empty: %+v", s)
	}
}

// kept returns the kept copy of activity id, or ok=false.
func (e *env) kept(id int64) (strava.DetailedActivity, bool) {
	e.t.Helper()
	a, err := e.store.Activity(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return a, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return a, true
}

// wantKeptFromStrava asserts that activity id is kept as Strava answered it.
func (e *env) wantKeptFromStrava(id, owner int64) {
	e.t.Helper()
	a, ok := e.kept(id)
	if !ok {
		e.t.Errorf("activity %d not kept", id)
		return
	}
	if a.ID != id || a.Athlete.ID != owner || a.Name != activityName(id) || !a.StartDate.Equal(activityStart(id)) {
		e.t.Errorf("activity %d kept as %+v, want Strava's answer (owner %d, %q)", id, a, owner, activityName(id))
	}
}

func (e *env) wantNotKept(id int64) {
	e.t.Helper()
	if _, ok := e.kept(id); ok {
		e.t.Errorf("activity %d is kept, want not", id)
	}
}

func (e *env) athleteStored(id int64) bool {
	e.t.Helper()
	_, err := e.store.Athlete(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return true
}

func (e *env) dead() []queue.DeadMessage {
	e.t.Helper()
	d, err := e.queue.Dead(context.Background(), 100)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}
