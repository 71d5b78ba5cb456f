package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Summary is what one Deliver did, summed over the endpoints. Stored is
// filled in by the caller of Store.
type Summary struct {
	Stored    int `json:"stored"`
	Delivered int `json:"delivered"`
	// Retrying counts failed attempts this pass that will be retried.
	Retrying int `json:"retrying"`
	Dead     int `json:"dead"`
	// Error says why some or all deliveries did not happen (no valid
	// NOTIFY_SECRET, Redis failing); the notifications stay stored.
	Error string `json:"error,omitempty"`
}

// Deliver sends due notifications to every endpoint, each endpoint on its
// own goroutine, starting sends until deadline (or ctx ends); a send
// started before it may take Timeout more. Failures are recorded in the
// returned Summary and the log, never returned: they hold back nothing.
func (n *Notifier) Deliver(ctx context.Context, deadline time.Time) Summary {
	return n.Start(ctx, deadline).Finish(deadline)
}

// Session delivers while notifications are still being stored, so that
// the endpoints' latency overlaps the caller's other work: Kick after each
// Store, Finish at the end. Each endpoint has its own goroutine, working
// off what is due at each kick (sends started until the deadline given to
// Start), so an endpoint that is slow or down holds back only itself.
type Session struct {
	n        *Notifier
	kicks    []chan struct{}
	finished chan struct{}
	last     time.Time // Finish's deadline, set before finished closes
	wg       sync.WaitGroup

	mu   sync.Mutex
	sum  Summary
	errs []string
}

// Start begins a delivery session; its passes before Finish start sends
// until deadline.
func (n *Notifier) Start(ctx context.Context, deadline time.Time) *Session {
	s := &Session{n: n, finished: make(chan struct{})}
	if !n.Enabled() {
		return s
	}
	refused := n.DeliveryRefused() != nil
	for _, e := range n.cfg.Endpoints {
		kick := make(chan struct{}, 1)
		s.kicks = append(s.kicks, kick)
		s.wg.Go(func() {
			for {
				select {
				case <-kick:
					if !refused && ctx.Err() == nil {
						s.add(n.deliverTo(ctx, e, deadline))
					}
				case <-s.finished:
					if !refused && ctx.Err() == nil {
						s.add(n.deliverTo(ctx, e, s.last))
					}
					return
				}
			}
		})
	}
	return s
}

// Kick says notifications were stored; it does not wait.
func (s *Session) Kick() {
	for _, k := range s.kicks {
		select {
		case k <- struct{}{}:
		default: // a pass is due already; it will see these too
		}
	}
}

// Finish makes one last pass on every endpoint (sends started until
// last), waits for it and returns what the whole session did.
func (s *Session) Finish(last time.Time) Summary {
	n := s.n
	s.last = last
	close(s.finished)
	s.wg.Wait()
	if !n.Enabled() {
		return Summary{}
	}
	if n.cfg.EndpointsErr != nil {
		n.logger.Error("notifications: some NOTIFY_URL entries are unusable; they get nothing", "error", n.cfg.EndpointsErr)
	}
	if err := n.DeliveryRefused(); err != nil {
		n.logger.Error("notifications not delivered; they stay stored until NOTIFY_SECRET is fixed", "error", err)
		s.errs = append(s.errs, "notifications not delivered (they stay stored): "+err.Error())
	}
	s.sum.Error = strings.Join(s.errs, "; ")
	return s.sum
}

func (s *Session) add(got settled, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sum.Delivered += got.delivered
	s.sum.Retrying += got.retrying
	s.sum.Dead += got.dead
	if err != nil {
		s.errs = append(s.errs, err.Error())
	}
}

// DeliveryRefused says why nothing can be delivered (no valid
// NOTIFY_SECRET), or nil.
func (n *Notifier) DeliveryRefused() error {
	if n.cfg.Secret.Valid() {
		return nil
	}
	if n.cfg.SecretErr != nil {
		return n.cfg.SecretErr
	}
	return errors.New("NOTIFY_SECRET is not set")
}

// deliverTo works off one endpoint's due notifications, a claim at a time.
func (n *Notifier) deliverTo(ctx context.Context, e Endpoint, deadline time.Time) (settled, error) {
	var total settled
	for ctx.Err() == nil && time.Now().Before(deadline) {
		// The lease score is unique to this claim (random µs added), so
		// that settle can tell its entries from another drain's.
		leaseEnd := n.cfg.Now().Add(n.cfg.Lease)
		lease := itoa(micros(leaseEnd) + int64(randUint16()))
		cctx, cancel := context.WithTimeout(ctx, redisTimeout)
		batch, err := n.claim(cctx, e, lease)
		cancel()
		if errors.Is(err, errGone) {
			n.logger.Warn("notifications: endpoint stopped after it answered 410 Gone; change NOTIFY_URL or NOTIFY_SECRET, or run `stravahook notify redrive`, to start it again",
				"endpoint", e.Redacted())
			return total, nil
		}
		if err != nil {
			n.logger.Error("notifications: claim", "endpoint", e.Redacted(), "error", err)
			return total, err
		}
		if len(batch) == 0 {
			return total, nil
		}
		outs, gone := n.sendBatch(ctx, e, batch, deadline)
		// Recorded even when ctx ended: what was delivered should not be
		// sent again.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
		s, err := n.settle(sctx, e, lease, outs, gone)
		cancel()
		if err != nil {
			// The claim's entries reappear when the lease ends and are
			// sent again (same webhook-id): at least once.
			n.logger.Error("notifications: record deliveries", "endpoint", e.Redacted(), "error", err)
			return total, err
		}
		total.delivered += s.delivered
		total.retrying += s.retrying
		total.dead += s.dead
		if gone != "" {
			n.logger.Warn("notifications: endpoint answered 410 Gone; it gets nothing more until NOTIFY_URL or NOTIFY_SECRET changes, or `stravahook notify redrive`; its queued notifications are dead",
				"endpoint", e.Redacted(), "buried", s.dead)
			return total, nil
		}
	}
	return total, nil
}

// redisTimeout bounds one Redis round trip.
const redisTimeout = 5 * time.Second

// sendBatch delivers one claim: lanes in parallel (at most Concurrency),
// each lane's notifications in order. After a lane's notification fails,
// the rest of that lane is not attempted and becomes due just after the
// failed one's retry, so none overtakes it, in this drain or a later one.
// Everything not started by deadline stays due as it was.
// gone is the error to bury with when the endpoint answered 410.
func (n *Notifier) sendBatch(ctx context.Context, e Endpoint, batch []claimed, deadline time.Time) (outs []outcome, gone string) {
	var lanes [][]int
	byLane := map[string]int{}
	for i, c := range batch {
		l, ok := byLane[c.lane]
		if !ok {
			l = len(lanes)
			byLane[c.lane] = l
			lanes = append(lanes, nil)
		}
		lanes[l] = append(lanes[l], i)
	}
	outs = make([]outcome, len(batch))
	var (
		mu     sync.Mutex
		next   int
		goneAt string
		wg     sync.WaitGroup
	)
	stopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return goneAt != ""
	}
	for range min(n.cfg.Concurrency, len(lanes)) {
		wg.Go(func() {
			for {
				mu.Lock()
				l := next
				next++
				mu.Unlock()
				if l >= len(lanes) {
					return
				}
				// After a failure the rest of the lane waits behind the
				// failed notification: due just after its retry, in order.
				var behind int64
				for _, i := range lanes[l] {
					c := batch[i]
					if behind != 0 {
						behind++
						outs[i] = outcome{id: c.id, op: "back", score: itoa(behind)}
						continue
					}
					if stopped() || ctx.Err() != nil || !time.Now().Before(deadline) {
						outs[i] = outcome{id: c.id, op: "back", score: c.score}
						continue
					}
					status, answer, err := n.send(ctx, e, c.id, c.body)
					switch {
					case err == nil && status >= 200 && status <= 299:
						outs[i] = outcome{id: c.id, op: "ok"}
						continue
					case err == nil && status == http.StatusGone:
						mu.Lock()
						goneAt = fmt.Sprintf("endpoint answered 410 Gone at %s", n.cfg.Now().UTC().Format(time.RFC3339))
						mu.Unlock()
						outs[i] = outcome{id: c.id, op: "back", score: c.score}
						continue
					case err != nil && ctx.Err() != nil:
						// The drain is stopping, not the endpoint failing.
						outs[i] = outcome{id: c.id, op: "back", score: c.score}
						continue
					}
					cause := describeFailure(status, answer, err, n.cfg.Timeout)
					attempts := c.attempts + 1
					if attempts >= n.cfg.MaxAttempts {
						outs[i] = outcome{id: c.id, op: "dead", err: fmt.Sprintf("after %d attempts: %s", attempts, cause)}
						n.logger.Error("notification dead", "endpoint", e.Redacted(), "webhook_id", c.id, "attempts", attempts, "error", cause)
						continue
					}
					wait := n.backoff(attempts)
					behind = micros(n.cfg.Now().Add(wait))
					outs[i] = outcome{id: c.id, op: "retry", score: itoa(behind), err: cause}
					n.logger.Warn("notification failed; will retry", "endpoint", e.Redacted(), "webhook_id", c.id,
						"attempts", attempts, "retry_in", wait.Round(time.Second).String(), "error", cause)
				}
			}
		})
	}
	wg.Wait()
	return outs, goneAt
}

// backoff is the wait after failed attempt n (1-based): RetryBase·2^(n-1),
// at most RetryCap, jittered.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.cfg.RetryCap
	if shift := attempt - 1; shift < 30 {
		if b := n.cfg.RetryBase << max(shift, 0); b > 0 && b < d {
			d = b
		}
	}
	return n.cfg.Jitter(d)
}

func describeFailure(status int, answer string, err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", timeout)
	case err != nil:
		return err.Error()
	}
	s := "HTTP " + strconv.Itoa(status) + " " + http.StatusText(status)
	if answer = strings.Join(strings.Fields(answer), " "); answer != "" {
		s += ": " + answer
	}
	return s
}

// answerLimit bounds how much of an endpoint's answer is kept (in errors
// and `notify test`'s output).
const answerLimit = 200

// send POSTs one signed notification and returns the endpoint's status
// and the start of its answer. Errors name the endpoint redacted and never
// carry the secret.
func (n *Notifier) send(ctx context.Context, e Endpoint, id string, body []byte) (status int, answer string, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", fmt.Errorf("build request to %s: %w", e.Redacted(), errors.Unwrap(err))
	}
	now := n.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, n.cfg.Secret.Sign(id, now, body))
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", ctx.Err()
		}
		// url.Error repeats the whole URL, query included.
		var inner error = err
		if u := errors.Unwrap(err); u != nil {
			inner = u
		}
		return 0, "", fmt.Errorf("POST %s: %w", e.Redacted(), inner)
	}
	defer resp.Body.Close()
	start, _ := io.ReadAll(io.LimitReader(resp.Body, answerLimit))
	// Drained (within limits) so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(start), nil
}

// PingResult is one endpoint's answer to a ping.
type PingResult struct {
	Endpoint string // redacted
	ID       string
	Status   int
	Answer   string
	Err      error
}

// Ping sends a signed "ping" notification (data {}) to every endpoint, now,
// without storing it, and returns each answer.
func (n *Notifier) Ping(ctx context.Context) ([]PingResult, error) {
	if !n.Enabled() {
		return nil, errors.New("NOTIFY_URL is not set: nothing to ping")
	}
	if !n.cfg.Secret.Valid() {
		return nil, n.cfg.SecretErr
	}
	nt := NewNotification(TypePing, "", randomHex(12), n.cfg.Now(), []byte("{}"))
	out := make([]PingResult, len(n.cfg.Endpoints))
	var wg sync.WaitGroup
	for i, e := range n.cfg.Endpoints {
		wg.Go(func() {
			status, answer, err := n.send(ctx, e, nt.ID, nt.Body)
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %s", n.cfg.Timeout)
			}
			out[i] = PingResult{Endpoint: e.Redacted(), ID: nt.ID, Status: status, Answer: answer, Err: err}
		})
	}
	wg.Wait()
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randUint16() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return uint16(b[0])<<8 | uint16(b[1])
}
