package webhook_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stravahook/stravahook/lib/webhook"
)

// fakeQueue answers Enqueue with what the test says.
type fakeQueue struct {
	added bool
	err   error
}

func (q *fakeQueue) Enqueue(context.Context, string, []byte) (bool, error) { return q.added, q.err }

// The Queued hook (prompt drains) runs for newly queued events only: not
// for duplicates, ignored or malformed events, nor when the queue failed
// (the 503 must not wait for it).
func TestQueuedHookRunsOnlyForNewlyQueuedEvents(t *testing.T) {
	const create = `{"aspect_type":"create","event_time":1522986611,"object_id":1491968222,"object_type":"activity","owner_id":28004310,"subscription_id":122449,"updates":{}}`
	const rename = `{"aspect_type":"update","event_time":1522986612,"object_id":1491968222,"object_type":"activity","owner_id":28004310,"subscription_id":122449,"updates":{"title":"x"}}`
	for _, c := range []struct {
		name       string
		queue      fakeQueue
		body       string
		wantStatus int
		wantHook   bool
	}{
		{"queued", fakeQueue{added: true}, create, 200, true},
		{"duplicate", fakeQueue{added: false}, create, 200, false},
		{"ignored update", fakeQueue{added: true}, rename, 200, false},
		{"malformed", fakeQueue{added: true}, `{"object_type":`, 400, false},
		{"queue down", fakeQueue{err: errors.New("redis: connection refused")}, create, 503, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			q := c.queue
			h := webhook.NewHandler(webhook.Config{VerifyToken: "v", Queued: func(*http.Request) { calls++ }}, &q, nil, slog.New(slog.DiscardHandler))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("POST", "/api/activity_update", strings.NewReader(c.body)))
			if w.Code != c.wantStatus {
				t.Fatalf("status %d, want %d", w.Code, c.wantStatus)
			}
			if got := calls == 1; got != c.wantHook || calls > 1 {
				t.Fatalf("hook called %d times", calls)
			}
		})
	}
}
