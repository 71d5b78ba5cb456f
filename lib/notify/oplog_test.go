package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/logtest"
)

// loggedWorld is newWorld with the Notifier's log lines kept for the test.
func loggedWorld(t *testing.T, urls, secret string) (*world, *logtest.Buffer) {
	t.Helper()
	w := newWorld(t, urls, secret)
	logger, logs := logtest.JSON()
	w.n = New(w.redis.Client, w.redis.Prefix+"notify:", w.n.cfg, logger)
	return w, logs
}

func linesAbout(t *testing.T, logs *logtest.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range logs.Lines(t) {
		if strings.Contains(fmt.Sprint(l["msg"]), msg) {
			out = append(out, l)
		}
	}
	return out
}

// Storing forgets notifications older than KeepFor, delivered or not, and
// the operator reads how many in one warning; a store that forgets
// nothing says nothing.
func TestForgettingOldNotificationsIsWarnedWithTheCount(t *testing.T) {
	ep := newEndpoint(t)
	w, logs := loggedWorld(t, ep.srv.URL, "")
	w.store(created(1), created(2))
	if got := linesAbout(t, logs, "forgotten"); len(got) != 0 {
		t.Fatalf("a store that forgot nothing logged %v", got)
	}
	w.clock.Advance(KeepFor + time.Second)
	w.store(created(3))
	got := linesAbout(t, logs, "forgotten")
	if len(got) != 1 || got[0]["level"] != "WARN" || got[0]["forgotten"] != float64(2) {
		t.Errorf("lines %v, want one warning with forgotten=2", got)
	}
}

// NOTIFY_URL with an unusable entry: each delivery pass says so at error
// level, naming the entry; a clean NOTIFY_URL gets no such line.
func TestUnusableNotifyURLEntryIsLoggedOnEachPass(t *testing.T) {
	ep := newEndpoint(t)
	w, logs := loggedWorld(t, ep.srv.URL+",ftp://files.example/drop", testSecret)
	w.store(created(1))
	if s := w.deliver(); s.Delivered != 1 {
		t.Fatalf("pass %+v, want the usable endpoint served", s)
	}
	got := linesAbout(t, logs, "NOTIFY_URL entries are unusable")
	if len(got) != 1 || got[0]["level"] != "ERROR" || !strings.Contains(fmt.Sprint(got[0]["error"]), "entry 2 (ftp://files.example/drop)") {
		t.Errorf("lines %v, want one error naming entry 2", got)
	}

	w, logs = loggedWorld(t, ep.srv.URL, testSecret)
	w.store(created(2))
	w.deliver()
	if got := linesAbout(t, logs, "unusable"); len(got) != 0 {
		t.Errorf("a clean NOTIFY_URL logged %v", got)
	}
}

// Why nothing is delivered, as `notify` and the drain's summary say it.
func TestDeliveryRefusedSaysWhy(t *testing.T) {
	if err := newWorld(t, "https://hooks.example/in", "").n.DeliveryRefused(); err == nil || !strings.HasPrefix(err.Error(), "NOTIFY_SECRET is not set") {
		t.Errorf("no secret: %v, want NOTIFY_SECRET is not set", err)
	}
	_, parseErr := ParseSecret("not-a-secret")
	err := newWorld(t, "https://hooks.example/in", "not-a-secret").n.DeliveryRefused()
	if parseErr == nil || err == nil || err.Error() != parseErr.Error() {
		t.Errorf("bad secret: %v, want the parse error %v", err, parseErr)
	}
	if err := newWorld(t, "https://hooks.example/in", testSecret).n.DeliveryRefused(); err != nil {
		t.Errorf("valid secret: %v, want nil", err)
	}
}

// Without NOTIFY_URL the notifier is off: nothing is stored.
func TestNoNotifyURLMeansDisabled(t *testing.T) {
	w := newWorld(t, "", testSecret)
	if w.n.Enabled() {
		t.Error("Enabled() with NOTIFY_URL unset")
	}
}

// A failed attempt is described the way `notify` shows it: the status,
// then the endpoint's answer on one line when it gave one.
func TestFailureDescription(t *testing.T) {
	for _, tc := range []struct {
		status int
		answer string
		err    error
		want   string
	}{
		{500, "  database\n  down ", nil, "HTTP 500 Internal Server Error: database down"},
		{502, " \n", nil, "HTTP 502 Bad Gateway"},
		{0, "", errors.New("dial tcp: connection refused"), "dial tcp: connection refused"},
		{0, "", context.DeadlineExceeded, "no answer within 5s"},
	} {
		if got := describeFailure(tc.status, tc.answer, tc.err, 5*time.Second); got != tc.want {
			t.Errorf("describeFailure(%d, %q, %v) = %q, want %q", tc.status, tc.answer, tc.err, got, tc.want)
		}
	}
}

// `notify test` to an endpoint nobody listens on: the operator reads the
// transport's error, not an HTTP status, and not the URL's query.
func TestPingOfAnUnreachableEndpointNamesTheError(t *testing.T) {
	ep := newEndpoint(t)
	url := ep.srv.URL
	ep.srv.Close()
	w := newWorld(t, url+"?token=s3cret", testSecret)
	got, err := w.n.Ping(context.Background())
	if err != nil || len(got) != 1 {
		t.Fatalf("Ping = %v, %v; want one result", got, err)
	}
	if got[0].Status != 0 || got[0].Err == nil || !strings.Contains(got[0].Err.Error(), "POST "+url+"?…: ") {
		t.Errorf("result %+v, want no status and the POST's error", got[0])
	}
	if strings.Contains(got[0].Err.Error(), "s3cret") || strings.Contains(got[0].Err.Error(), "nil") {
		t.Errorf("error %q shows the query or no cause", got[0].Err)
	}
}
