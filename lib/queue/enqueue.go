package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// An enqueue is one round trip, no script. A delivery without a payload
// (the caller rebuilds it from the id) is a lone
//
//	ZADD   pending NX now id
//
// and one with a payload is a MULTI/EXEC of
//
//	HSETNX payloads id payload
//	ZADD   pending NX now id
//
// ZADD NX is the dedupe test and its reply (1 queued, 0 seen already) is
// the answer: an id is seen while it is in pending, and pending keeps it
// while queued, leased or delayed, and, in score bands above every live
// score, once acked (for the dedupe window) or buried (see doneBase). The
// payload goes first and never overwrites: an index entry always has its
// payload, the first delivery's. A late redelivery of an acked id leaves a
// payload no claim will read; ackScript deletes it with the id's dedupe
// record. MULTI makes the pair atomic.

// DefaultEnqueueTimeout bounds an enqueue's round trip (WithEnqueueTimeout
// changes it); the caller's context can end it sooner.
const DefaultEnqueueTimeout = 5 * time.Second

// Enqueue queues payload under id unless id was queued within the dedupe
// window; added is false for a repeated delivery. When err is nil the event
// is stored in Redis. An empty payload is not stored at all: for callers
// whose ids say everything (Claim then returns an empty Payload), that
// saves Redis a command per event.
func (q *Queue) Enqueue(ctx context.Context, id string, payload []byte) (added bool, err error) {
	if err := ctx.Err(); err != nil {
		// Nobody waits for the answer: do not write.
		return false, fmt.Errorf("enqueue %s: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, q.enqueueTimeout)
	defer cancel()
	b := q.client.B()
	zadd := b.Zadd().Key(q.keys.pending).Nx().ScoreMember().ScoreMember(float64(q.now().UnixMilli()), id).Build()
	var n int64
	if len(payload) == 0 {
		n, err = q.client.Do(ctx, zadd).AsInt64()
	} else {
		n, err = lastOfTransaction(q.client.DoMulti(ctx,
			b.Multi().Build(),
			b.Hsetnx().Key(q.keys.payloads).Field(id).Value(rueidis.BinaryString(payload)).Build(),
			zadd,
			b.Exec().Build()))
	}
	if err != nil {
		// The write may still land; Strava's retry will then be a
		// duplicate. What matters is not to claim success unconfirmed.
		return false, fmt.Errorf("enqueue %s: %w", id, err)
	}
	return n == 1, nil
}

// lastOfTransaction returns the integer reply of the last command a
// MULTI/EXEC ran, or the transaction's first error (a command failing
// inside EXEC does not stop the others, so each reply is checked).
func lastOfTransaction(results []rueidis.RedisResult) (int64, error) {
	for _, res := range results[:len(results)-1] {
		if err := res.Error(); err != nil {
			return 0, err
		}
	}
	replies, err := results[len(results)-1].ToArray()
	if rueidis.IsRedisNil(err) {
		return 0, errors.New("enqueue transaction aborted")
	}
	if err != nil {
		return 0, err
	}
	if len(replies) == 0 {
		return 0, errors.New("empty reply from the enqueue transaction")
	}
	for _, r := range replies {
		if err := r.Error(); err != nil {
			return 0, err
		}
	}
	return replies[len(replies)-1].AsInt64()
}
