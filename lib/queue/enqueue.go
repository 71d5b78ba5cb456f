package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// enqueueScript stores a batch of deliveries, each at most once.
//
//	KEYS[1] payloads   KEYS[2] pending   KEYS[3] done
//	ARGV[1] now (unix ms)   ARGV[2i] id i   ARGV[2i+1] payload i
//
// Returns one flag per delivery: 1 queued, 0 seen already. An id is seen
// while its payload is stored (queued, leased, delayed or dead) and, once
// acked, while it is in done (ackScript keeps it there for the dedupe
// window). HSETNX is both the dedupe test and the write, so a repeat of an
// id within one batch is caught too. Test and writes must be one step: a
// crash between them would lose the event or queue it twice.
var enqueueScript = rueidis.NewLuaScript(`
local added = {}
for i = 1, (#ARGV - 1) / 2 do
  local id = ARGV[2 * i]
  if redis.call('ZSCORE', KEYS[3], id) or redis.call('HSETNX', KEYS[1], id, ARGV[2 * i + 1]) == 0 then
    added[i] = 0
  else
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    added[i] = 1
  end
end
return added
`)

// maxBatch bounds one script run: Redis serves nobody else while it runs.
const maxBatch = 64

// DefaultEnqueueTimeout bounds a batch's round trip (WithEnqueueTimeout
// changes it). Each caller also stops waiting when its own context ends; it
// then reports an error, never success.
const DefaultEnqueueTimeout = 5 * time.Second

// Enqueue queues payload under id unless id was queued within the dedupe
// window; added is false for a repeated delivery. When err is nil the event
// is stored in Redis.
//
// Concurrent calls are committed together: while one batch is on its way
// to Redis, new calls gather, and the next batch carries them all in one
// script run. A lone call goes out at once, so light load pays no delay;
// under load each event costs a fraction of a round trip, of the Go
// side's write and read syscalls, and of Redis's script overhead.
func (q *Queue) Enqueue(ctx context.Context, id string, payload []byte) (added bool, err error) {
	if err := ctx.Err(); err != nil {
		// Nobody waits for the answer: do not write.
		return false, fmt.Errorf("enqueue %s: %w", id, err)
	}
	req := &enqueueRequest{id: id, payload: payload, done: make(chan struct{})}
	if q.enqueues.add(req) {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) >= q.enqueueTimeout {
			// The batch gives up no later than this caller would: send it
			// from here and save a goroutine hop on the common path.
			q.flush(ctx)
		} else {
			// Sent from its own goroutine, so that this caller, like every
			// other, stops waiting when its context ends, not when the
			// batch gives up (enqueueTimeout).
			go q.flush(context.WithoutCancel(ctx))
		}
	}
	select {
	case <-req.done:
		if req.err != nil {
			return false, fmt.Errorf("enqueue %s: %w", id, req.err)
		}
		return req.added, nil
	case <-ctx.Done():
		// The batch may still land; Strava's retry will then be a
		// duplicate. What matters is not to claim success unconfirmed.
		return false, fmt.Errorf("enqueue %s: %w", id, ctx.Err())
	}
}

type enqueueRequest struct {
	id      string
	payload []byte
	added   bool
	err     error
	done    chan struct{}
}

// groupCommit collects enqueue requests and hands them to flushers.
type groupCommit struct {
	mu       sync.Mutex
	pending  []*enqueueRequest
	inFlight int
	// lanes hold the Redis clients batches are sent on, one batch per lane
	// at a time: a client used by one goroutine at a time stays in
	// rueidis's synchronous mode, its fastest for a lone request, while a
	// second batch need not wait for the first's round trip.
	lanes chan rueidis.Client
}

// add queues req and reports whether the caller must flush: true when a
// batch slot is free.
func (g *groupCommit) add(req *enqueueRequest) (mustFlush bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending = append(g.pending, req)
	if g.inFlight >= cap(g.lanes) {
		return false
	}
	g.inFlight++
	return true
}

// take removes up to maxBatch pending requests. When none are pending it
// gives the caller's slot back and returns nil.
func (g *groupCommit) take() []*enqueueRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) == 0 {
		g.inFlight--
		return nil
	}
	n := min(len(g.pending), maxBatch)
	batch := g.pending[:n:n]
	g.pending = append([]*enqueueRequest(nil), g.pending[n:]...)
	return batch
}

// flush sends batches while requests are pending. The caller's own request
// is in the first batch, or in a batch another flusher took; after that,
// what gathered meanwhile goes to a new goroutine, so that no caller waits
// for batches that are not its own.
func (q *Queue) flush(ctx context.Context) {
	batch := q.enqueues.take()
	if batch == nil {
		return
	}
	q.commit(context.WithoutCancel(ctx), batch)
	if q.enqueues.more() {
		go q.flush(context.WithoutCancel(ctx))
	}
}

// more reports whether requests gathered while a batch was on its way, and
// when none did, gives the flusher's slot back in the same locked step: a
// request arriving in between checking and giving back would find no free
// slot, and then nobody would send it.
func (g *groupCommit) more() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) > 0 {
		return true
	}
	g.inFlight--
	return false
}

func (q *Queue) commit(ctx context.Context, batch []*enqueueRequest) {
	ctx, cancel := context.WithTimeout(ctx, q.enqueueTimeout)
	defer cancel()
	args := make([]string, 0, 1+2*len(batch))
	args = append(args, ms(q.now()))
	for _, r := range batch {
		args = append(args, r.id, rueidis.BinaryString(r.payload))
	}
	client := <-q.enqueues.lanes // never waits: inFlight ≤ cap(lanes)
	defer func() { q.enqueues.lanes <- client }()
	flags, err := enqueueScript.Exec(ctx, client, []string{q.keys.payloads, q.keys.pending, q.keys.done}, args).AsIntSlice()
	if err == nil && len(flags) != len(batch) {
		err = errors.New("unexpected reply length from the enqueue script")
	}
	for i, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.added = flags[i] == 1
		}
		close(r.done)
	}
}
