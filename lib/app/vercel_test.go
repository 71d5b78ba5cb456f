package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

func TestVercelWithoutRedisIs503AndLogsWhatToSet(t *testing.T) {
	var logs bytes.Buffer
	inst := app.NewInstance(func(k string) string {
		return map[string]string{"STRAVA_VERIFY_TOKEN": "t"}[k]
	}, slog.New(slog.NewJSONHandler(&logs, nil)))
	for range 2 { // the second request must not hang or panic either
		rec := httptest.NewRecorder()
		inst.Serve(rec, httptest.NewRequest("POST", "/api/activity_update", strings.NewReader(`{}`)), "/api/activity_update")
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status = %d, want 503", rec.Code)
		}
	}
	if !strings.Contains(logs.String(), "REDIS_URL") || !strings.Contains(logs.String(), "KV_URL") {
		t.Fatalf("log does not name the variables to set: %s", logs.String())
	}
}

func TestVercelUsesKVURLAndBuildsOnce(t *testing.T) {
	r := rdbtest.New(t)
	env := map[string]string{"STRAVA_VERIFY_TOKEN": "t", "KV_URL": r.URL, "STRAVAHOOK_REDIS_PREFIX": r.Prefix}
	inst := app.NewInstance(func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	// The second delivery finds the first: the App (and its queue under
	// the configured prefix) is the same one.
	for _, want := range []string{`{"status":"queued"}`, `{"status":"duplicate"}`} {
		rec := httptest.NewRecorder()
		inst.Serve(rec, httptest.NewRequest("POST", "/api/activity_update",
			strings.NewReader(`{"aspect_type":"create","event_time":1,"object_id":2,"object_type":"activity","owner_id":3,"subscription_id":4}`)), "/api/activity_update")
		if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != want {
			t.Fatalf("status = %d (%s), want 200 %s", rec.Code, rec.Body, want)
		}
	}
	if s, err := queue.New(r.Client, r.Prefix+"queue:").Stats(context.Background()); err != nil || s.Ready != 1 {
		t.Fatalf("queue under the configured prefix: %+v, %v; want the event ready", s, err)
	}
}

func TestVercelMalformedSettingIs503(t *testing.T) {
	var logs bytes.Buffer
	inst := app.NewInstance(func(k string) string {
		return map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "STRAVA_SUBSCRIPTION_ID": "abc"}[k]
	}, slog.New(slog.NewJSONHandler(&logs, nil)))
	rec := httptest.NewRecorder()
	inst.Serve(rec, httptest.NewRequest("GET", "/api/activity_update", nil), "/api/activity_update")
	if rec.Code != 503 || !strings.Contains(logs.String(), "STRAVA_SUBSCRIPTION_ID") {
		t.Fatalf("status %d, log %s", rec.Code, logs.String())
	}
}

// Vercel may hand a function a path the route table does not know (a
// rewrite); the function still serves its own route.
func TestVercelFunctionServesItsRouteWhateverThePath(t *testing.T) {
	r := rdbtest.New(t)
	env := map[string]string{"STRAVA_VERIFY_TOKEN": "t", "REDIS_URL": r.URL, "STRAVAHOOK_REDIS_PREFIX": r.Prefix}
	inst := app.NewInstance(func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	for _, path := range []string{"/api/activity_update", "/rewritten/elsewhere"} {
		rec := httptest.NewRecorder()
		inst.Serve(rec, httptest.NewRequest("GET", path+"?hub.mode=subscribe&hub.verify_token=t&hub.challenge=c1", nil), "/api/activity_update")
		if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"hub.challenge":"c1"}` {
			t.Errorf("GET %s: %d %q, want the validation answer", path, rec.Code, rec.Body)
		}
	}
}

// On Lambda the instance is prepared as the process starts: it connects
// before the first request, which then finds the connection open.
func TestPreparedInstanceConnectsBeforeTheFirstRequest(t *testing.T) {
	r := rdbtest.New(t)
	p := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	env := map[string]string{"STRAVA_VERIFY_TOKEN": "t", "REDIS_URL": p.URL(), "STRAVAHOOK_REDIS_PREFIX": r.Prefix}
	inst := app.NewInstance(func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	inst.Prepare()
	deadline := time.Now().Add(10 * time.Second)
	for p.Accepted() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Prepare opened no connection to Redis within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	rec := httptest.NewRecorder()
	inst.Serve(rec, httptest.NewRequest("POST", "/api/activity_update",
		strings.NewReader(`{"aspect_type":"create","event_time":1,"object_id":2,"object_type":"activity","owner_id":3,"subscription_id":4}`)), "/api/activity_update")
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"queued"}` {
		t.Fatalf("status = %d (%s), want 200 queued", rec.Code, rec.Body)
	}
	if n := p.Accepted(); n != 1 {
		t.Fatalf("%d connections to Redis, want the one Prepare opened", n)
	}
}

// An attempt begun as the process started may fail for having been frozen
// with the instance (proactive initialization): the request that thawed it
// and found it under way tries once more rather than answer 503.
func TestRequestRetriesAConnectionAttemptItJoinedThatFailed(t *testing.T) {
	r := rdbtest.New(t)
	p := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	env := map[string]string{"STRAVA_VERIFY_TOKEN": "t", "REDIS_URL": p.URL(), "STRAVAHOOK_REDIS_PREFIX": r.Prefix}
	var logs bytes.Buffer
	inst := app.NewInstance(func(k string) string { return env[k] }, slog.New(slog.NewJSONHandler(&logs, nil)))
	p.Stall()
	inst.Prepare()
	p.WaitHeld(t) // the attempt's HELLO is on its way, unanswered
	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		inst.Serve(rec, httptest.NewRequest("GET", "/api/activity_update?hub.mode=subscribe&hub.verify_token=t&hub.challenge=c1", nil), "/api/activity_update")
		answered <- rec
	}()
	app.WaitForGoroutine(t, "app.(*Instance).get", "TestRequestRetriesAConnectionAttemptItJoinedThatFailed")
	p.Drop() // the attempt fails; a new one may connect
	select {
	case rec := <-answered:
		if rec.Code != 200 {
			t.Fatalf("status = %d (%s), want 200 after a second attempt; logs: %s", rec.Code, rec.Body, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer within 20 s")
	}
}
