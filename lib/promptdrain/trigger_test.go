package promptdrain_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/clocktest"
	"github.com/stravahook/stravahook/lib/logtest"
	"github.com/stravahook/stravahook/lib/promptdrain"
)

// recorder is a transport that answers 200 at once and remembers every
// request, so that a test counts exactly what was sent.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (rec *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, r)
	rec.mu.Unlock()
	return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

func (rec *recorder) sent() []*http.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*http.Request(nil), rec.reqs...)
}

func newTrigger(cfg promptdrain.TriggerConfig) (*promptdrain.Trigger, *recorder, *clocktest.Clock, *logtest.Buffer) {
	rec := &recorder{}
	clock := clocktest.New(time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC))
	logs := &logtest.Buffer{}
	cfg.Client = &http.Client{Transport: rec}
	cfg.Now = clock.Now
	return promptdrain.NewTrigger(cfg, slog.New(slog.NewJSONHandler(logs, nil))), rec, clock, logs
}

func event(host string) *http.Request {
	r := httptest.NewRequest("POST", "http://"+host+"/api/activity_update", strings.NewReader("{}"))
	return r
}

func TestTriggerSendsTheCronSecretToProcessEvents(t *testing.T) {
	trig, rec, _, logs := newTrigger(promptdrain.TriggerConfig{Secret: "cron-secret-42", BaseURL: "https://hook.example.com/"})
	trig.EventQueued(event("ignored.example"))
	reqs := rec.sent()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.URL.String() != "https://hook.example.com/api/process_events?trigger=prompt" {
		t.Fatalf("sent %s %s", r.Method, r.URL)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer cron-secret-42" {
		t.Fatalf("Authorization %q", got)
	}
	if r.Header.Get(promptdrain.BypassHeader) != "" {
		t.Fatal("bypass header sent without a bypass secret")
	}
	if strings.Contains(logs.String(), "cron-secret-42") {
		t.Fatalf("secret logged: %s", logs.String())
	}
}

// Without a configured base the request's own Host tells where to send
// the cron secret: X-Forwarded-Host and -Proto are the client's to choose,
// and a client header must never choose where a secret goes.
func TestTriggerWithoutBaseURLUsesTheRequestsHostNotForwardedHeaders(t *testing.T) {
	trig, rec, _, _ := newTrigger(promptdrain.TriggerConfig{Secret: "s", BypassSecret: "bypass-0123"})
	r := event("my-hook.example:3000")
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Host", "evil.example")
	trig.EventQueued(r)
	reqs := rec.sent()
	for _, req := range reqs {
		if strings.Contains(req.URL.Host, "evil") {
			t.Fatalf("the cron secret was sent to %s, the client's X-Forwarded-Host", req.URL)
		}
	}
	if len(reqs) != 1 || reqs[0].URL.String() != "http://my-hook.example:3000/api/process_events?trigger=prompt" {
		t.Fatalf("sent %v; want one request to the request's Host", reqs)
	}
	if reqs[0].Header.Get("x-vercel-protection-bypass") != "bypass-0123" {
		t.Fatalf("bypass header %q", reqs[0].Header.Get("x-vercel-protection-bypass"))
	}
}

func TestNoTriggerWithoutCronSecretAndItIsLoggedOnce(t *testing.T) {
	trig, rec, clock, logs := newTrigger(promptdrain.TriggerConfig{BaseURL: "http://127.0.0.1:1"})
	for range 3 {
		trig.EventQueued(event("x"))
		clock.Advance(time.Minute)
	}
	if n := len(rec.sent()); n != 0 {
		t.Fatalf("%d requests without CRON_SECRET", n)
	}
	if n := strings.Count(logs.String(), "CRON_SECRET is not set"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestNoTriggerWhenOff(t *testing.T) {
	trig, rec, _, logs := newTrigger(promptdrain.TriggerConfig{Secret: "s", Off: true, BaseURL: "http://127.0.0.1:1"})
	trig.EventQueued(event("x"))
	if n := len(rec.sent()); n != 0 || logs.String() != "" {
		t.Fatalf("%d requests, logs %q", n, logs.String())
	}
}

func TestAtMostOneTriggerPerInstancePerInterval(t *testing.T) {
	trig, rec, clock, _ := newTrigger(promptdrain.TriggerConfig{Secret: "s", BaseURL: "http://127.0.0.1:1"})
	var wg sync.WaitGroup
	for range 50 { // a burst, concurrently
		wg.Go(func() { trig.EventQueued(event("x")) })
	}
	wg.Wait()
	if n := len(rec.sent()); n != 1 {
		t.Fatalf("a burst of 50 sent %d triggers, want 1", n)
	}
	clock.Advance(promptdrain.Interval - time.Millisecond)
	trig.EventQueued(event("x"))
	if n := len(rec.sent()); n != 1 {
		t.Fatalf("inside the interval: %d triggers, want 1", n)
	}
	clock.Advance(time.Millisecond)
	trig.EventQueued(event("x"))
	if n := len(rec.sent()); n != 2 {
		t.Fatalf("after the interval: %d triggers, want 2", n)
	}
}

// Over real HTTP: the request arrives whole, and the caller is back before
// the drain has answered (it runs as its own request).
func TestTriggerDoesNotWaitForTheDrain(t *testing.T) {
	arrived := make(chan *http.Request, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r
		<-release // the drain is still running
		w.Write([]byte(`{"trigger":"prompt"}`))
	}))
	defer srv.Close()
	defer close(release)
	trig := promptdrain.NewTrigger(promptdrain.TriggerConfig{Secret: "s", BaseURL: srv.URL}, nil)
	returned := make(chan struct{})
	go func() { trig.EventQueued(event("x")); close(returned) }()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("EventQueued waited for the drain's answer")
	}
	select {
	case r := <-arrived:
		if r.URL.RequestURI() != "/api/process_events?trigger=prompt" || r.Header.Get("Authorization") != "Bearer s" {
			t.Fatalf("got %s with Authorization %q", r.URL.RequestURI(), r.Header.Get("Authorization"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the drain request never arrived")
	}
}

// Nothing listening: the caller hears nothing of it but a log line.
func TestTriggerToAnUnreachableDeploymentIsLogged(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler())
	base := ln.URL
	ln.Close() // nothing listens there any more
	logs := &logtest.Buffer{}
	trig := promptdrain.NewTrigger(promptdrain.TriggerConfig{Secret: "s", BaseURL: base}, slog.New(slog.NewJSONHandler(logs, nil)))
	trig.EventQueued(event("x"))
	if !strings.Contains(logs.String(), "prompt drain not started") {
		t.Fatalf("logs: %s", logs.String())
	}
}

// Under vercel dev (request ids dev1::…, plain http) the intake's process
// ends with its answer and takes the drain with it: the trigger waits for
// the drain's answer instead.
func TestUnderVercelDevTheTriggerWaitsForTheDrain(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		w.Write([]byte(`{"trigger":"prompt"}`))
	}))
	defer srv.Close()
	trig := promptdrain.NewTrigger(promptdrain.TriggerConfig{Secret: "s"}, nil)
	r := event(strings.TrimPrefix(srv.URL, "http://"))
	r.Header.Set("X-Vercel-Id", "dev1::dev1::abcde-1764547200000-0123456789ab")
	returned := make(chan struct{})
	go func() { trig.EventQueued(r); close(returned) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the drain request never arrived")
	}
	select {
	case <-returned:
		t.Fatal("under vercel dev the trigger returned before the drain answered")
	default:
	}
	close(release)
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the trigger did not return once the drain answered")
	}
}

func TestUnderVercelDevOnlyForDevRequestIDsOverPlainHTTP(t *testing.T) {
	for _, c := range []struct {
		id, base string
		want     bool
	}{
		{"dev1::dev1::x", "http://localhost:3000", true},
		{"dev1::dev1::x", "https://hook.example.com", false},
		{"fra1::iad1::x", "http://localhost:3000", false},
		{"", "http://127.0.0.1:3000", false},
	} {
		r := event("x")
		if c.id != "" {
			r.Header.Set("X-Vercel-Id", c.id)
		}
		if got := promptdrain.UnderVercelDev(r, c.base); got != c.want {
			t.Errorf("%q %q: %v, want %v", c.id, c.base, got, c.want)
		}
	}
}
