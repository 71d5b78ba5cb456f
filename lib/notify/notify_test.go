package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/stravahook/stravahook/lib/clocktest"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

// delivery is one request an endpoint received.
type delivery struct {
	header http.Header
	body   []byte
}

// endpoint is a receiver whose answers the test scripts: answers[i] is
// the status of request i (the last one repeats).
type endpoint struct {
	srv *httptest.Server

	mu       sync.Mutex
	answers  []int
	received []delivery
}

func newEndpoint(t *testing.T, answers ...int) *endpoint {
	t.Helper()
	e := &endpoint{answers: answers}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.received = append(e.received, delivery{header: r.Header.Clone(), body: body})
		status := 200
		if len(e.answers) > 0 {
			status = e.answers[min(len(e.received)-1, len(e.answers)-1)]
		}
		e.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "answer "+http.StatusText(status))
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) got() []delivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]delivery(nil), e.received...)
}

func (e *endpoint) setAnswers(answers ...int) {
	e.mu.Lock()
	e.answers = answers
	e.received = nil
	e.mu.Unlock()
}

type world struct {
	t     *testing.T
	redis *rdbtest.Redis
	clock *clocktest.Clock
	n     *Notifier
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func newWorld(t *testing.T, urls, secret string) *world {
	t.Helper()
	r := rdbtest.New(t)
	w := &world{t: t, redis: r, clock: clocktest.New(time.Now().Truncate(time.Second))}
	cfg := ConfigFromEnv(urls, secret)
	cfg.Now = w.clock.Now
	cfg.Jitter = func(d time.Duration) time.Duration { return d }
	w.n = New(r.Client, r.Prefix+"notify:", cfg, nil)
	return w
}

func (w *world) store(ns ...Notification) {
	w.t.Helper()
	if err := w.n.Store(context.Background(), ns); err != nil {
		w.t.Fatalf("Store: %v", err)
	}
}

// deliver runs one delivery pass with a generous deadline.
func (w *world) deliver() Summary {
	w.t.Helper()
	return w.n.Deliver(context.Background(), time.Now().Add(time.Minute))
}

func (w *world) stats() []EndpointStats {
	w.t.Helper()
	s, err := w.n.Stats(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func created(id int64) Notification {
	raw := []byte(`{"id":` + itoa(id) + `,"name":"Morning Ride","segment_efforts":[],"laps":[{"id":1}]}`)
	return NewNotification(TypeActivityCreated, "a7:"+itoa(id), "event-"+itoa(id), time.Date(2030, 1, 7, 10, 5, 0, 0, time.UTC),
		ActivityData(7, id, raw))
}

func TestSignatureVerifiesWithTheReferenceLibrary(t *testing.T) {
	sec, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	nt := created(42)
	now := time.Now()
	header := func(ts time.Time, body []byte) http.Header {
		h := http.Header{}
		h.Set(HeaderID, nt.ID)
		h.Set(HeaderTimestamp, itoa(ts.Unix()))
		h.Set(HeaderSignature, sec.Sign(nt.ID, ts, body))
		return h
	}
	ref, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Verify(nt.Body, header(now, nt.Body)); err != nil {
		t.Fatalf("reference library rejects our signature: %v", err)
	}
	if err := sec.Verify(header(now, nt.Body), nt.Body, now, DefaultTolerance); err != nil {
		t.Fatalf("our Verify rejects our signature: %v", err)
	}

	tampered := []byte(strings.Replace(string(nt.Body), "Morning", "Evening", 1))
	other, err := standardwebhooks.NewWebhook(NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	old := now.Add(-10 * time.Minute)
	for _, c := range []struct {
		name   string
		verify func() error
		want   error
	}{
		{"tampered body", func() error { return ref.Verify(tampered, header(now, nt.Body)) }, standardwebhooks.ErrNoMatchingSignature},
		{"wrong secret", func() error { return other.Verify(nt.Body, header(now, nt.Body)) }, standardwebhooks.ErrNoMatchingSignature},
		{"10 minutes old", func() error { return ref.Verify(nt.Body, header(old, nt.Body)) }, standardwebhooks.ErrMessageTooOld},
		{"ours: tampered body", func() error { return sec.Verify(header(now, nt.Body), tampered, now, DefaultTolerance) }, ErrBadSignature},
		{"ours: 10 minutes old", func() error { return sec.Verify(header(old, nt.Body), nt.Body, now, DefaultTolerance) }, ErrStale},
	} {
		if err := c.verify(); !errors.Is(err, c.want) {
			t.Errorf("%s: verification says %v, want %v", c.name, err, c.want)
		}
	}
}

// During a rotation both secrets sign: a receiver holding either verifies.
func TestRotationSignsWithBothSecrets(t *testing.T) {
	newer := NewSecret()
	sec, err := ParseSecret(newer + " " + testSecret)
	if err != nil {
		t.Fatal(err)
	}
	nt := created(1)
	now := time.Now()
	h := http.Header{}
	h.Set(HeaderID, nt.ID)
	h.Set(HeaderTimestamp, itoa(now.Unix()))
	h.Set(HeaderSignature, sec.Sign(nt.ID, now, nt.Body))
	for _, s := range []string{newer, testSecret} {
		ref, _ := standardwebhooks.NewWebhook(s)
		if err := ref.Verify(nt.Body, h); err != nil {
			t.Errorf("a receiver with one of the two secrets rejects: %v", err)
		}
	}
}

func TestParseSecret(t *testing.T) {
	if _, err := ParseSecret(NewSecret()); err != nil {
		t.Errorf("a fresh secret does not parse: %v", err)
	}
	for _, bad := range []string{
		"",
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // no prefix
		"whsec_not base64!",                // not base64
		"whsec_c2hvcnQ=",                   // 5 bytes
		"whsec_" + strings.Repeat("QUFB", 22) + "QQ==", // 67 bytes
	} {
		_, err := ParseSecret(bad)
		if err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
			continue
		}
		if bad != "" && strings.Contains(err.Error(), strings.TrimPrefix(bad, "whsec_")) {
			t.Errorf("the error repeats the secret: %v", err)
		}
	}
	if s, _ := ParseSecret(testSecret); strings.Contains(s.String(), "MfKQ") {
		t.Errorf("String shows the key: %s", s)
	}
}

func TestParseEndpoints(t *testing.T) {
	eps, err := ParseEndpoints(" https://a.example/hook , http://b.example/x?token=s3cret,https://a.example/hook, ftp://c.example ,")
	if len(eps) != 2 || eps[0].URL != "https://a.example/hook" || eps[1].URL != "http://b.example/x?token=s3cret" {
		t.Fatalf("endpoints = %+v", eps)
	}
	if eps[0].ID == eps[1].ID {
		t.Error("two endpoints share an id")
	}
	if err == nil || !strings.Contains(err.Error(), "entry 4") {
		t.Errorf("error = %v, want entry 4 named", err)
	}
	if got := eps[1].Redacted(); strings.Contains(got, "s3cret") {
		t.Errorf("Redacted = %q shows the query", got)
	}
}

func TestNotificationBodyCarriesTheActivityByteForByte(t *testing.T) {
	raw := `{"id":42,  "name":"Ride", "laps":[ {"id":1} ]}`
	nt := NewNotification(TypeActivityCreated, "l", "seed", time.Date(2030, 1, 7, 10, 5, 0, 0, time.UTC), ActivityData(7, 42, []byte(raw)))
	want := `{"type":"activity.created","timestamp":"2030-01-07T10:05:00Z","data":{"athlete_id":7,"activity_id":42,"activity":` + raw + `}}`
	if string(nt.Body) != want {
		t.Errorf("body\n got %s\nwant %s", nt.Body, want)
	}
	if !json.Valid(nt.Body) {
		t.Error("body is not JSON")
	}
	if again := NewNotification(TypeActivityCreated, "l", "seed", time.Now(), nil); again.ID != nt.ID || !strings.HasPrefix(nt.ID, "msg_") {
		t.Errorf("ids %q and %q: want the same id for the same event", nt.ID, again.ID)
	}
	if other := NewNotification(TypeActivityDeleted, "l", "seed", time.Now(), nil); other.ID == nt.ID {
		t.Error("a deleted and a created of one event share an id")
	}
}

// An endpoint answering 500 twice then 200 gets the same webhook-id three
// times and the notification is delivered at the 200; a second endpoint
// gets it once, at the first pass, and is unaffected throughout.
func TestRetriedUntil2xxWhileAnotherEndpointIsUnaffected(t *testing.T) {
	flaky := newEndpoint(t, 500, 500, 200)
	healthy := newEndpoint(t)
	w := newWorld(t, flaky.srv.URL+","+healthy.srv.URL, testSecret)
	nt := created(1)
	w.store(nt)

	if s := w.deliver(); s.Delivered != 1 || s.Retrying != 1 {
		t.Fatalf("first pass: %+v, want 1 delivered (healthy), 1 retrying (flaky)", s)
	}
	if got := w.stats(); got[0].Retrying != 1 || got[1].Pending+got[1].Retrying+got[1].Dead != 0 {
		t.Fatalf("stats after first pass: %+v", got)
	}
	// Not due yet: nothing is sent.
	if s := w.deliver(); s != (Summary{}) || len(flaky.got()) != 1 {
		t.Fatalf("pass before the backoff ended: %+v, %d requests", s, len(flaky.got()))
	}
	w.clock.Advance(DefaultRetryBase)
	if s := w.deliver(); s.Retrying != 1 || s.Delivered != 0 {
		t.Fatalf("second pass: %+v", s)
	}
	w.clock.Advance(2 * DefaultRetryBase)
	if s := w.deliver(); s.Delivered != 1 {
		t.Fatalf("third pass: %+v", s)
	}

	got := flaky.got()
	if len(got) != 3 {
		t.Fatalf("flaky endpoint got %d requests, want 3", len(got))
	}
	ref, _ := standardwebhooks.NewWebhook(testSecret)
	for i, d := range got {
		if id := d.header.Get(HeaderID); id != nt.ID {
			t.Errorf("request %d: webhook-id %q, want %q on every try", i, id, nt.ID)
		}
		if string(d.body) != string(nt.Body) {
			t.Errorf("request %d: body changed", i)
		}
		if err := ref.VerifyIgnoringTimestamp(d.body, d.header); err != nil {
			t.Errorf("request %d: reference verification: %v", i, err)
		}
		if ct, ua := d.header.Get("Content-Type"), d.header.Get("User-Agent"); ct != "application/json" || !strings.Contains(ua, "stravahook") {
			t.Errorf("request %d: Content-Type %q, User-Agent %q", i, ct, ua)
		}
	}
	if n := len(healthy.got()); n != 1 {
		t.Errorf("healthy endpoint got %d requests, want 1", n)
	}
	for _, s := range w.stats() {
		if s.Pending+s.Retrying+s.Dead != 0 {
			t.Errorf("left over: %+v", s)
		}
	}
	// Delivered everywhere: nothing of it remains in Redis.
	if keys := w.redis.Keys(t); len(keys) != 0 {
		t.Errorf("keys left in Redis: %v", keys)
	}
}

// An endpoint down for good ends dead after MaxAttempts (about a day of
// backoff); redrive sends it again later; the other endpoint never waits.
func TestDownForGoodEndsDeadAndRedriveDelivers(t *testing.T) {
	down := newEndpoint(t, 503)
	healthy := newEndpoint(t)
	w := newWorld(t, down.srv.URL+","+healthy.srv.URL, testSecret)
	w.store(created(1))
	start := w.clock.Now()

	total := Summary{}
	for pass := 0; pass < 40 && total.Dead == 0; pass++ {
		s := w.deliver()
		total.Delivered += s.Delivered
		total.Retrying += s.Retrying
		total.Dead += s.Dead
		w.clock.Advance(DefaultRetryCap + DefaultRetryCap/5)
	}
	if total.Dead != 1 || total.Delivered != 1 || total.Retrying != DefaultMaxAttempts-1 {
		t.Fatalf("passes: %+v, want 1 delivered (healthy), %d retries then dead", total, DefaultMaxAttempts-1)
	}
	if n := len(down.got()); n != DefaultMaxAttempts {
		t.Errorf("down endpoint got %d requests, want %d", n, DefaultMaxAttempts)
	}
	// Minimum schedule (no jitter here): 1+2+…+128 min, then 4 h × 5.
	if span := w.clock.Now().Sub(start); span < 20*time.Hour {
		t.Errorf("gave up after %s, want about a day", span)
	}
	st := w.stats()
	if st[0].Dead != 1 || st[0].Pending+st[0].Retrying != 0 || st[1].Dead+st[1].Pending+st[1].Retrying != 0 {
		t.Fatalf("stats: %+v", st)
	}

	down.setAnswers(204)
	moved, err := w.n.Redrive(context.Background())
	if err != nil || moved != 1 {
		t.Fatalf("Redrive = %d, %v; want 1", moved, err)
	}
	if s := w.deliver(); s.Delivered != 1 {
		t.Fatalf("after redrive: %+v", s)
	}
	if n := len(down.got()); n != 1 {
		t.Errorf("after redrive the endpoint got %d requests, want 1", n)
	}
	if n := len(healthy.got()); n != 1 {
		t.Errorf("healthy endpoint got %d requests, want exactly 1", n)
	}
	if keys := w.redis.Keys(t); len(keys) != 0 {
		t.Errorf("keys left in Redis: %v", keys)
	}
}

// 410 Gone stops the endpoint: what was queued for it is dead, new
// notifications are not queued for it, until redrive (or a new
// configuration).
func TestGoneStopsTheEndpointUntilRedrive(t *testing.T) {
	gone := newEndpoint(t, 410)
	healthy := newEndpoint(t)
	w := newWorld(t, gone.srv.URL+","+healthy.srv.URL, testSecret)
	w.n.cfg.Concurrency = 1 // one request reaches the gone endpoint, deterministically
	w.store(created(1), created(2), created(3))
	s := w.deliver()
	if s.Delivered != 3 || s.Dead != 3 {
		t.Fatalf("pass: %+v, want 3 delivered (healthy) and 3 dead (gone)", s)
	}
	if n := len(gone.got()); n != 1 {
		t.Errorf("gone endpoint got %d requests, want 1", n)
	}
	if st := w.stats(); !st[0].Stopped || st[0].Dead != 3 || st[1].Stopped {
		t.Errorf("stats: %+v", st)
	}
	w.store(created(4))
	w.deliver()
	if n := len(gone.got()); n != 1 {
		t.Errorf("a stopped endpoint got %d requests, want still 1", n)
	}
	if n := len(healthy.got()); n != 4 {
		t.Errorf("healthy got %d, want 4", n)
	}

	// A new configuration starts it again.
	gone.setAnswers(200)
	again := New(w.redis.Client, w.redis.Prefix+"notify:", ConfigFromEnv(gone.srv.URL+","+healthy.srv.URL, NewSecret()), nil)
	if st, _ := again.Stats(context.Background()); st[0].Stopped {
		t.Error("still stopped under a new configuration")
	}

	moved, err := w.n.Redrive(context.Background())
	if err != nil || moved != 3 {
		t.Fatalf("Redrive = %d, %v; want 3", moved, err)
	}
	if s := w.deliver(); s.Delivered != 3 {
		t.Errorf("after redrive: %+v", s)
	}
}

// With NOTIFY_URL set and no valid secret nothing is delivered, the
// summary says why, and nothing is lost: once the secret is fixed the
// stored notification goes out.
func TestNoValidSecretRefusesButKeeps(t *testing.T) {
	ep := newEndpoint(t)
	w := newWorld(t, ep.srv.URL, "whsec_tooshort")
	w.store(created(1))
	s := w.deliver()
	if s.Delivered != 0 || !strings.Contains(s.Error, "NOTIFY_SECRET") {
		t.Fatalf("summary %+v, want a refusal naming NOTIFY_SECRET", s)
	}
	if n := len(ep.got()); n != 0 {
		t.Fatalf("endpoint got %d requests", n)
	}
	if st := w.stats(); st[0].Pending != 1 {
		t.Fatalf("stats %+v, want it pending", st)
	}
	fixed := New(w.redis.Client, w.redis.Prefix+"notify:", ConfigFromEnv(ep.srv.URL, testSecret), nil)
	if s := fixed.Deliver(context.Background(), time.Now().Add(time.Minute)); s.Delivered != 1 {
		t.Fatalf("after the fix: %+v", s)
	}
}

// A redone event stores the same notification again: while it is still
// stored it is not queued again, neither where it was delivered already
// nor ahead of its backoff where it is retrying.
func TestStoringTheSameNotificationTwiceQueuesItOnce(t *testing.T) {
	healthy := newEndpoint(t)
	flaky := newEndpoint(t, 500)
	w := newWorld(t, healthy.srv.URL+","+flaky.srv.URL, testSecret)
	w.store(created(1))
	w.store(created(1))
	if st := w.stats(); st[0].Pending != 1 || st[1].Pending != 1 {
		t.Fatalf("stats %+v, want 1 pending each", st)
	}
	if s := w.deliver(); s.Delivered != 1 || s.Retrying != 1 {
		t.Fatalf("pass %+v", s)
	}
	w.store(created(1)) // the event redone after a drain died before its ack
	w.deliver()
	if h, f := len(healthy.got()), len(flaky.got()); h != 1 || f != 1 {
		t.Errorf("requests: healthy %d, flaky %d; want 1 each (nothing re-queued, the backoff kept)", h, f)
	}
	if st := w.stats(); st[0].Pending != 0 || st[1].Retrying != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A drain whose lease ended while it was still sending has lost the
// notification to another drain: its late record changes nothing.
func TestLateRecordOfALostLeaseChangesNothing(t *testing.T) {
	ep := newEndpoint(t)
	w := newWorld(t, ep.srv.URL, testSecret)
	w.store(created(1))
	ctx, e := context.Background(), w.n.cfg.Endpoints[0]
	leaseA := itoa(micros(w.clock.Now().Add(DefaultLease)) + 1)
	a, err := w.n.claim(ctx, e, leaseA)
	if err != nil || len(a) != 1 {
		t.Fatalf("claim A = %v, %v", a, err)
	}
	w.clock.Advance(DefaultLease + time.Second)
	leaseB := itoa(micros(w.clock.Now().Add(DefaultLease)) + 2)
	b, err := w.n.claim(ctx, e, leaseB)
	if err != nil || len(b) != 1 {
		t.Fatalf("claim B after A's lease ended = %v, %v", b, err)
	}
	if s, err := w.n.settle(ctx, e, leaseB, []outcome{{id: b[0].id, op: "ok"}}, ""); err != nil || s.delivered != 1 {
		t.Fatalf("settle B = %+v, %v", s, err)
	}
	retryAt := itoa(micros(w.clock.Now().Add(time.Minute)))
	if s, err := w.n.settle(ctx, e, leaseA, []outcome{{id: a[0].id, op: "retry", score: retryAt, err: "late"}}, ""); err != nil || s != (settled{}) {
		t.Fatalf("late settle A = %+v, %v; want nothing done", s, err)
	}
	if st := w.stats(); st[0].Pending+st[0].Retrying+st[0].Dead != 0 {
		t.Errorf("stats %+v, want nothing left", st)
	}
}

// One lane's notifications arrive in order; after one fails, the rest of
// its lane waits rather than overtaking it, while other lanes go on.
func TestLaneOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	failFirst := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Type string `json:"type"`
			Data struct {
				ActivityID int64 `json:"activity_id"`
			} `json:"data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		defer mu.Unlock()
		order = append(order, body.Type+":"+itoa(body.Data.ActivityID))
		if body.Data.ActivityID == 1 && failFirst {
			failFirst = false
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(srv.Close)
	w := newWorld(t, srv.URL, testSecret)
	at := time.Now()
	w.store(
		NewNotification(TypeActivityCreated, "a7:1", "c1", at, ActivityData(7, 1, []byte("{}"))),
		NewNotification(TypeActivityCreated, "a7:2", "c2", at, ActivityData(7, 2, []byte("{}"))),
		NewNotification(TypeActivityUpdated, "a7:1", "u1", at, ActivityData(7, 1, []byte("{}"))),
		NewNotification(TypeActivityDeleted, "a7:1", "d1", at, DeletedData(7, 1)),
	)
	if s := w.deliver(); s.Delivered != 1 || s.Retrying != 1 {
		t.Fatalf("first pass %+v, want activity 2 delivered, activity 1 retrying; order %v", s, order)
	}
	w.clock.Advance(time.Hour)
	if s := w.deliver(); s.Delivered != 3 {
		t.Fatalf("second pass %+v", s)
	}
	var lane1 []string
	for _, o := range order {
		if strings.HasSuffix(o, ":1") {
			lane1 = append(lane1, o)
		}
	}
	want := []string{"activity.created:1", "activity.created:1", "activity.updated:1", "activity.deleted:1"}
	if strings.Join(lane1, " ") != strings.Join(want, " ") {
		t.Errorf("activity 1's notifications arrived as %v, want %v", lane1, want)
	}
}

// An endpoint that never answers within the timeout is retried, and
// another endpoint is served meanwhile. The slow one never answers (it
// blocks until the test ends), so the timeout alone fails it; the timeout
// is long enough that the healthy endpoint meets it on a loaded CI
// machine under -race, which 50 ms was not.
func TestNoAnswerWithinTimeoutIsAFailure(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	healthy := newEndpoint(t)
	w := newWorld(t, slow.URL+","+healthy.srv.URL, testSecret)
	w.n.cfg.Timeout = 2 * time.Second
	w.store(created(1))
	s := w.deliver()
	if s.Delivered != 1 || s.Retrying != 1 {
		t.Fatalf("pass %+v, want healthy delivered, slow retrying", s)
	}
	errs, err := w.redis.Client.Do(context.Background(), w.redis.Client.B().Hvals().Key(w.n.keysOf(w.n.cfg.Endpoints[0]).errors).Build()).AsStrSlice()
	if err != nil || len(errs) != 1 || !strings.Contains(errs[0], "no answer within") {
		t.Errorf("recorded error %q, %v", errs, err)
	}
}

// Sends not started by the deadline stay pending, without an attempt.
func TestDeadlinePassedLeavesThemPending(t *testing.T) {
	ep := newEndpoint(t)
	w := newWorld(t, ep.srv.URL, testSecret)
	w.store(created(1), created(2))
	if s := w.n.Deliver(context.Background(), time.Now().Add(-time.Second)); s != (Summary{}) {
		t.Fatalf("summary %+v", s)
	}
	if st := w.stats(); st[0].Pending != 2 || st[0].Retrying != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPing(t *testing.T) {
	ok := newEndpoint(t, 200)
	bad := newEndpoint(t, 401)
	w := newWorld(t, ok.srv.URL+","+bad.srv.URL, testSecret)
	res, err := w.n.Ping(context.Background())
	if err != nil || len(res) != 2 || res[0].Status != 200 || res[1].Status != 401 || !strings.Contains(res[1].Answer, "Unauthorized") {
		t.Fatalf("Ping = %+v, %v", res, err)
	}
	d := ok.got()[0]
	ref, _ := standardwebhooks.NewWebhook(testSecret)
	if err := ref.Verify(d.body, d.header); err != nil {
		t.Errorf("ping does not verify: %v", err)
	}
	var body struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(d.body, &body); err != nil || body.Type != "ping" || string(body.Data) != "{}" {
		t.Errorf("ping body %s", d.body)
	}
	if keys := w.redis.Keys(t); len(keys) != 0 {
		t.Errorf("ping stored keys: %v", keys)
	}
}

// A dead notification is kept for redrive for KeepFor (Strava's 7 days:
// its body may hold an activity), then forgotten, body and all.
func TestDeadNotificationsAreForgottenAfterKeepFor(t *testing.T) {
	down := newEndpoint(t, 500)
	w := newWorld(t, down.srv.URL, testSecret)
	w.n.cfg.MaxAttempts = 1
	w.store(created(1))
	if s := w.deliver(); s.Dead != 1 {
		t.Fatalf("pass %+v, want dead at once", s)
	}
	w.clock.Advance(KeepFor - time.Second)
	w.deliver()
	if st := w.stats(); st[0].Dead != 1 {
		t.Fatalf("stats %+v before KeepFor, want it dead and kept", st)
	}
	w.clock.Advance(2 * time.Second)
	w.deliver()
	if st := w.stats(); st[0].Dead != 0 {
		t.Errorf("stats %+v after KeepFor, want it forgotten", st)
	}
	if keys := w.redis.Keys(t); len(keys) != 0 {
		t.Errorf("keys left: %v", keys)
	}
}

// In a session, an endpoint stuck on a slow delivery holds back only
// itself: the other endpoint gets each newly stored notification while the
// first one still waits.
func TestSessionSlowEndpointHoldsBackOnlyItself(t *testing.T) {
	release := make(chan struct{})
	var stuck sync.WaitGroup
	stuck.Add(1)
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(stuck.Done)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	healthy := newEndpoint(t)
	w := newWorld(t, slow.URL+","+healthy.srv.URL, testSecret)
	w.n.cfg.Concurrency = 1

	sess := w.n.Start(context.Background(), time.Now().Add(time.Minute))
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				close(release)
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	w.store(created(1))
	sess.Kick()
	stuck.Wait() // the slow endpoint holds notification 1
	waitUntil("the healthy endpoint to get notification 1", func() bool { return len(healthy.got()) == 1 })
	w.store(created(2))
	sess.Kick()
	waitUntil("the healthy endpoint to get notification 2 while the slow one is stuck", func() bool { return len(healthy.got()) == 2 })

	close(release)
	s := sess.Finish(time.Now().Add(time.Minute))
	if s.Delivered != 4 {
		t.Errorf("session %+v, want 4 delivered (2 per endpoint)", s)
	}
}

// A notification is kept KeepFor at most, delivered or not (Strava's 7
// days for activity data): one never sent (no secret for a week) is
// forgotten, body and all, and never sent afterwards.
func TestUndeliveredNotificationsAreForgottenAfterKeepFor(t *testing.T) {
	ep := newEndpoint(t)
	w := newWorld(t, ep.srv.URL, "")
	w.store(created(1))
	w.deliver() // refused: no secret
	w.clock.Advance(KeepFor + time.Second)
	w.store(created(2)) // storing forgets what expired

	fixed := ConfigFromEnv(ep.srv.URL, testSecret)
	fixed.Now = w.clock.Now
	n := New(w.redis.Client, w.redis.Prefix+"notify:", fixed, nil)
	if s := n.Deliver(context.Background(), time.Now().Add(time.Minute)); s.Delivered != 1 {
		t.Fatalf("pass %+v, want only the fresh one delivered", s)
	}
	got := ep.got()
	if len(got) != 1 || !bytes.Contains(got[0].body, []byte(`"activity_id":2`)) {
		t.Errorf("endpoint got %d requests (%q), want only activity 2's", len(got), got)
	}
	if keys := w.redis.Keys(t); len(keys) != 0 {
		t.Errorf("keys left: %v", keys)
	}
}
