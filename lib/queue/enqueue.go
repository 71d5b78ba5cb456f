package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// An enqueue is one MULTI/EXEC transaction, no script: per delivery
//
//	HSETNX payloads id payload   (only for a non-empty payload)
//	ZADD   pending NX now id
//
// A batch of deliveries without payloads (the caller can rebuild those
// from the id) needs no MULTI: it is ZADD commands only, each atomic.
//
// ZADD NX is the dedupe test and its reply (1 queued, 0 seen already) is
// the answer: an id is seen while it is in pending, and pending keeps it
// while queued, leased or delayed, and, in score bands above every live
// score, once acked (for the dedupe window) or buried (see doneBase). The
// payload goes first and never overwrites: an index entry always has its
// payload, the first delivery's. A late redelivery of an acked id leaves a
// payload no claim will read; ackScript deletes it with the id's dedupe
// record. Redis runs these commands for a few microseconds less than the
// equivalent Lua script, and the intake's light-load latency is mostly
// Redis's time (README, "Speed"). MULTI makes the pair atomic.

// maxBatch bounds one batch: Redis serves nobody else while it runs a
// MULTI.
const maxBatch = 64

// DefaultEnqueueTimeout bounds a batch's round trip (WithEnqueueTimeout
// changes it). Each caller also stops waiting when its own context ends; it
// then reports an error, never success.
const DefaultEnqueueTimeout = 5 * time.Second

// Enqueue queues payload under id unless id was queued within the dedupe
// window; added is false for a repeated delivery. When err is nil the event
// is stored in Redis. An empty payload is not stored at all: for callers
// whose ids say everything (Claim then returns an empty Payload), that
// saves Redis a command per event.
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
	client := <-q.enqueues.lanes // never waits: inFlight ≤ cap(lanes)
	defer func() { q.enqueues.lanes <- client }()
	now := float64(q.now().UnixMilli())
	b := client.B()
	// cmds[0] is the MULTI, sent only when some delivery has a payload.
	cmds := make(rueidis.Commands, 1, 3+2*len(batch))
	cmds[0] = b.Multi().Build()
	for _, r := range batch {
		if len(r.payload) > 0 {
			cmds = append(cmds, b.Hsetnx().Key(q.keys.payloads).Field(r.id).Value(rueidis.BinaryString(r.payload)).Build())
		}
	}
	transaction := len(cmds) > 1
	for _, r := range batch {
		cmds = append(cmds, b.Zadd().Key(q.keys.pending).Nx().ScoreMember().ScoreMember(now, r.id).Build())
	}
	var added []int64
	var err error
	if transaction {
		added, err = transactionTail(client.DoMulti(ctx, append(cmds, b.Exec().Build())...), len(batch))
	} else {
		added, err = replyInts(client.DoMulti(ctx, cmds[1:]...))
	}
	for i, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.added = added[i] == 1
		}
		close(r.done)
	}
}

// transactionTail returns the integer replies of the last n commands a
// MULTI/EXEC ran, or the transaction's first error.
func transactionTail(results []rueidis.RedisResult, n int) ([]int64, error) {
	for _, res := range results[:len(results)-1] {
		if err := res.Error(); err != nil {
			return nil, err
		}
	}
	replies, err := results[len(results)-1].ToArray()
	if rueidis.IsRedisNil(err) {
		return nil, errors.New("enqueue transaction aborted")
	}
	if err != nil {
		return nil, err
	}
	if len(replies) < n {
		return nil, errors.New("unexpected reply length from the enqueue transaction")
	}
	out := make([]int64, n)
	for i, m := range replies[len(replies)-n:] {
		if out[i], err = m.AsInt64(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// replyInts returns the integer reply of each command, or the first error.
func replyInts(results []rueidis.RedisResult) ([]int64, error) {
	out := make([]int64, len(results))
	for i, res := range results {
		var err error
		if out[i], err = res.AsInt64(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
