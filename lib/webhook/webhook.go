// Package webhook owns stravahook's intake: the HTTP endpoint Strava calls,
// both for its subscription validation (GET) and for each event (POST).
// It answers fast — Strava gives us 2 s — by doing no more than validating
// the event and putting it in the queue in one Redis round trip; fetching
// the activity is the processor's job.
package webhook

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/stravahook/stravahook/lib/respond"
	"github.com/stravahook/stravahook/lib/secretcmp"
	"github.com/stravahook/stravahook/lib/strava"
)

// MaxBody is the largest event body accepted. Strava's events are a few
// hundred bytes; anything near this is not from Strava.
const MaxBody = 64 << 10

// EnqueueTimeout bounds all the Redis work of one POST together (the
// subscription lookup and the enqueue): whatever Redis does (down, stalled,
// a half-open connection), the answer, a 503 at worst, leaves within about
// 1.5 s, the prompt-drain trigger's few hundred ms included (Config.Queued),
// and Strava, which waits 2 s, retries. The queue enforces it too (see
// queue.WithEnqueueTimeout).
const EnqueueTimeout = 1100 * time.Millisecond

// Enqueuer stores an event durably, once per id.
type Enqueuer interface {
	Enqueue(ctx context.Context, id string, payload []byte) (added bool, err error)
}

// SubscriptionLookup returns the id of our push subscription, or 0 when it
// is not known (then events of any subscription are accepted).
type SubscriptionLookup func(ctx context.Context) (int64, error)

// Config is what the intake needs to know from the operator.
type Config struct {
	// VerifyToken is STRAVA_VERIFY_TOKEN; empty means not configured.
	VerifyToken string
	// QueueUpdates queues activity updates too (STRAVA_QUEUE_UPDATES).
	QueueUpdates bool
	// Queued, when set, is called once an event was newly queued (not a
	// duplicate, not ignored), before the answer: it starts a prompt drain
	// (lib/promptdrain) and must return within a few hundred ms.
	Queued func(r *http.Request)
	// CallbackSecret is STRAVA_CALLBACK_SECRET: when set, only requests
	// carrying it (the path /api/activity_update/<secret>) are served, all
	// others answer 404 before anything else is looked at. When empty,
	// only the bare path is served.
	CallbackSecret string
	// Budget bounds the Redis work of one POST (EnqueueTimeout when 0);
	// tests of other matters under heavy load give it more.
	Budget time.Duration
}

// CallbackSecretParam is the query parameter under which vercel.json's
// rewrite of /api/activity_update/<secret> passes the secret, in case the
// function is handed the rewritten path rather than the original one.
const CallbackSecretParam = "callback_secret"

// SecretPathValue is the name of the secret's path wildcard in the route
// pattern /api/activity_update/{secret}.
const SecretPathValue = "secret"

// NewHandler returns the handler for /api/activity_update.
func NewHandler(cfg Config, queue Enqueuer, subscription SubscriptionLookup, logger *slog.Logger) http.Handler {
	if cfg.Budget <= 0 {
		cfg.Budget = EnqueueTimeout
	}
	h := &handler{cfg: cfg, queue: queue, subscription: subscription, logger: logger}
	return http.HandlerFunc(h.serveHTTP)
}

type handler struct {
	cfg          Config
	queue        Enqueuer
	subscription SubscriptionLookup
	logger       *slog.Logger
}

func (h *handler) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.callbackAllowed(r) {
		// Logged without the path: it may hold a near-miss of the secret.
		h.logger.LogAttrs(r.Context(), slog.LevelWarn, "webhook call refused",
			slog.Int("status", http.StatusNotFound), slog.String("method", r.Method),
			slog.String("outcome", "wrong or missing callback secret"))
		respond.JSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
		return
	}
	switch r.Method {
	case http.MethodGet:
		h.validate(w, r)
	case http.MethodPost:
		h.receive(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		respond.Error(w, http.StatusMethodNotAllowed, "method not allowed: use GET (validation) or POST (event)")
	}
}

// callbackAllowed says whether r came in through the configured callback:
// the secret path when a secret is set (compared in constant time), else
// the bare path.
func (h *handler) callbackAllowed(r *http.Request) bool {
	given := r.PathValue(SecretPathValue)
	if h.cfg.CallbackSecret == "" {
		return given == ""
	}
	if given == "" {
		given = r.URL.Query().Get(CallbackSecretParam)
	}
	return secretcmp.Equal(given, h.cfg.CallbackSecret)
}

// validate answers Strava's subscription validation: echo hub.challenge
// when the verify token is ours.
func (h *handler) validate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := r.URL.Query()
	mode, token, challenge := q.Get("hub.mode"), q.Get("hub.verify_token"), q.Get("hub.challenge")
	status, reason := http.StatusOK, "validated"
	switch {
	case h.cfg.VerifyToken == "":
		status, reason = http.StatusInternalServerError, "STRAVA_VERIFY_TOKEN is not set; set it to the verify token given when creating the subscription"
	case mode == "" || token == "" || challenge == "":
		status, reason = http.StatusBadRequest, "hub.mode, hub.verify_token and hub.challenge are required"
	case mode != "subscribe":
		status, reason = http.StatusBadRequest, "hub.mode must be subscribe"
	case !secretcmp.Equal(token, h.cfg.VerifyToken):
		status, reason = http.StatusForbidden, "hub.verify_token does not match STRAVA_VERIFY_TOKEN"
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	h.logger.LogAttrs(r.Context(), level, "subscription validation",
		slog.Int("status", status), slog.String("outcome", reason), durationAttr(start))
	if status != http.StatusOK {
		if status >= 500 {
			reason = "server misconfigured; see the logs"
		}
		respond.Error(w, status, reason)
		return
	}
	respond.JSON(w, http.StatusOK, map[string]string{"hub.challenge": challenge})
}

// Outcomes of a POST, as logged and answered.
const (
	outcomeQueued    = "queued"
	outcomeDuplicate = "duplicate"
	outcomeIgnored   = "ignored"
)

func (h *handler) receive(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Budget)
	defer cancel()
	ev, status, err := h.accept(ctx, w, r)
	outcome := ""
	if err == nil {
		outcome, status, err = h.enqueue(ctx, ev)
	}
	if err == nil && outcome == outcomeQueued && h.cfg.Queued != nil {
		h.cfg.Queued(r)
	}
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs, slog.Int("status", status))
	if ev.ObjectID != 0 {
		attrs = append(attrs,
			slog.String("object_type", ev.ObjectType), slog.Int64("object_id", ev.ObjectID),
			slog.String("aspect_type", ev.AspectType), slog.Int64("owner_id", ev.OwnerID),
			slog.Int64("subscription_id", ev.SubscriptionID), slog.Int64("event_time", ev.EventTime))
	}
	attrs = append(attrs, durationAttr(start))
	if err != nil {
		level := slog.LevelWarn
		if status >= 500 {
			level = slog.LevelError
		}
		h.logger.LogAttrs(r.Context(), level, "event refused", append(attrs, slog.String("error", err.Error()))...)
		msg := err.Error()
		if status >= 500 {
			msg = "event not stored; retry later"
		}
		respond.Error(w, status, msg)
		return
	}
	respond.Encoded(w, http.StatusOK, outcomeAnswers[outcome])
	h.logger.LogAttrs(r.Context(), slog.LevelInfo, "event "+outcome, append(attrs, slog.String("outcome", outcome))...)
}

// outcomeAnswers are the bodies of the 200 answers, encoded once: they are
// the same for every event.
var outcomeAnswers = map[string][]byte{
	outcomeQueued:    []byte(`{"status":"queued"}` + "\n"),
	outcomeDuplicate: []byte(`{"status":"duplicate"}` + "\n"),
	outcomeIgnored:   []byte(`{"status":"ignored"}` + "\n"),
}

var errNotOurs = errors.New("subscription_id is not this application's subscription")

// accept reads and validates the body; on error the status says why.
func (h *handler) accept(ctx context.Context, w http.ResponseWriter, r *http.Request) (strava.Event, int, error) {
	if r.ContentLength > MaxBody {
		return strava.Event{}, http.StatusRequestEntityTooLarge, errors.New("body larger than 64 KiB")
	}
	buf := bodyBuffers.Get().(*[]byte)
	defer bodyBuffers.Put(buf)
	body, err := readBody(w, r, (*buf)[:0])
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return strava.Event{}, http.StatusRequestEntityTooLarge, errors.New("body larger than 64 KiB")
		}
		return strava.Event{}, http.StatusBadRequest, errors.New("could not read body")
	}
	*buf = body[:0]
	ev, err := strava.DecodeEvent(body) // Event keeps no reference to body
	if err != nil {
		return strava.Event{}, http.StatusBadRequest, err
	}
	if h.subscription != nil {
		ours, err := h.subscription(ctx)
		if err != nil {
			return ev, http.StatusServiceUnavailable, err
		}
		if ours != 0 && ev.SubscriptionID != ours {
			return ev, http.StatusForbidden, errNotOurs
		}
	}
	return ev, 0, nil
}

// bodyBuffers recycles request bodies: Strava's are a few hundred bytes,
// and the intake allocates little else per event.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// readBody reads the whole body into buf, at most MaxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	src := http.MaxBytesReader(w, r.Body, MaxBody)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// enqueue queues what the processor must act on and ignores the rest.
func (h *handler) enqueue(ctx context.Context, ev strava.Event) (outcome string, status int, err error) {
	if !h.wanted(ev) {
		return outcomeIgnored, http.StatusOK, nil
	}
	// Creates and deletes are stored as their key alone (ev.Payload is
	// nil): one Redis command instead of two.
	added, err := h.queue.Enqueue(ctx, ev.Key(), ev.Payload())
	if err != nil {
		return "", http.StatusServiceUnavailable, err
	}
	if !added {
		return outcomeDuplicate, http.StatusOK, nil
	}
	return outcomeQueued, http.StatusOK, nil
}

// wanted says whether the processor has work to do for ev.
func (h *handler) wanted(ev strava.Event) bool {
	switch ev.Kind() {
	case strava.KindNone:
		return false
	case strava.KindRefetch:
		return h.cfg.QueueUpdates
	}
	return true
}

func durationAttr(start time.Time) slog.Attr {
	return slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000)
}
