package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/logtest"
	"github.com/stravahook/stravahook/lib/notify"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

const cliNotifySecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// notifyReceiver is the user's endpoint. While hold is set it never
// answers (until the test ends or the client gives up); otherwise it
// answers status.
type notifyReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	status   int
	hold     bool
	received []receivedRequest
	released chan struct{}
}

type receivedRequest struct {
	header http.Header
	body   []byte
}

func newNotifyReceiver(t *testing.T) *notifyReceiver {
	r := &notifyReceiver{status: 200, released: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.received = append(r.received, receivedRequest{header: req.Header.Clone(), body: body})
		status, hold := r.status, r.hold
		r.mu.Unlock()
		if hold {
			select {
			case <-req.Context().Done():
			case <-r.released:
			}
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "thanks")
	}))
	t.Cleanup(func() {
		close(r.released)
		r.srv.Close()
	})
	return r
}

func (r *notifyReceiver) got() []receivedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedRequest(nil), r.received...)
}

func (r *notifyReceiver) set(status int, hold bool) {
	r.mu.Lock()
	r.status, r.hold = status, hold
	r.mu.Unlock()
}

// saveJane stores Jane as connected, with tokens the Strava double issued.
func saveJane(t *testing.T, c *cli) {
	t.Helper()
	tok := c.strava.IssueToken(134815, "")
	if err := c.store().SaveAthlete(context.Background(), store.Athlete{ID: 134815, Name: "Jane Doe", AccessToken: tok.AccessToken,
		RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt, Scope: tok.Scope}); err != nil {
		t.Fatal(err)
	}
}

// postEvent has Jane upload activityID at the Strava double and POSTs its
// event to the intake, as Strava does.
func postEvent(t *testing.T, c *cli, activityID int64) {
	t.Helper()
	c.strava.AddActivity(strava.DetailedActivity{ID: activityID, Athlete: strava.MetaAthlete{ID: 134815},
		Name: "Lunch Ride", Type: "Ride", SportType: "Ride", Distance: 28099, StartDate: time.Now().Add(-time.Hour).Truncate(time.Second)})
	cfg, err := app.LoadConfig(func(k string) string { return c.env[k] })
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(app.New(cfg, c.redis.Client, slog.New(slog.DiscardHandler)).Routes())
	defer web.Close()
	event := fmt.Sprintf(`{"aspect_type":"create","event_time":%d,"object_id":%d,"object_type":"activity","owner_id":134815,"subscription_id":120475,"updates":{}}`,
		time.Now().Unix(), activityID)
	resp, err := http.Post(web.URL+"/api/activity_update", "application/json", strings.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST event: %d", resp.StatusCode)
	}
}

// stravaAnswer is Strava's answer for activity id, byte for byte, to
// compare with the notification's activity.
func stravaAnswer(t *testing.T, c *cli, id int64) string {
	t.Helper()
	body, ok := c.strava.ActivityJSON(id)
	if !ok {
		t.Fatalf("no activity %d at Strava", id)
	}
	return string(body)
}

// Event POSTed → drain → the endpoint got exactly one activity.created
// carrying the whole activity, and the reference Standard Webhooks
// library verifies it; a tampered body, a wrong secret and a timestamp 10
// minutes old fail that verification.
func TestNotificationEndToEnd(t *testing.T) {
	const activityID = 17000000001
	c := newCLI(t)
	rcv := newNotifyReceiver(t)
	c.env["NOTIFY_URL"] = rcv.srv.URL + "/hooks/strava"
	c.env["NOTIFY_SECRET"] = cliNotifySecret
	saveJane(t, c)

	postEvent(t, c, activityID)
	code, out, stderr := c.run("process", "-budget", "5s")
	if code != 0 {
		t.Fatalf("process: exit %d\n%s\n%s", code, out, stderr)
	}
	var sum struct {
		Kept          int
		Notifications notify.Summary
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if sum.Kept != 1 || sum.Notifications != (notify.Summary{Stored: 1, Delivered: 1}) {
		t.Errorf("summary %s, want 1 kept and 1 notification stored and delivered", out)
	}

	got := rcv.got()
	if len(got) != 1 {
		t.Fatalf("endpoint got %d requests, want exactly 1", len(got))
	}
	n := got[0]
	var body struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      struct {
			AthleteID  int64           `json:"athlete_id"`
			ActivityID int64           `json:"activity_id"`
			Activity   json.RawMessage `json:"activity"`
		} `json:"data"`
	}
	if err := json.Unmarshal(n.body, &body); err != nil {
		t.Fatalf("body %s: %v", n.body, err)
	}
	if body.Type != "activity.created" || body.Data.AthleteID != 134815 || body.Data.ActivityID != activityID {
		t.Errorf("notification %s", n.body)
	}
	if _, err := time.Parse(time.RFC3339, body.Timestamp); err != nil {
		t.Errorf("timestamp %q is not RFC 3339", body.Timestamp)
	}
	if want := stravaAnswer(t, c, activityID); string(body.Data.Activity) != want {
		t.Errorf("activity\n got %s\nwant Strava's answer %s", body.Data.Activity, want)
	}
	if ct, ua := n.header.Get("Content-Type"), n.header.Get("User-Agent"); ct != "application/json" || !strings.Contains(ua, "stravahook") {
		t.Errorf("Content-Type %q, User-Agent %q", ct, ua)
	}

	ref, err := standardwebhooks.NewWebhook(cliNotifySecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Verify(n.body, n.header); err != nil {
		t.Fatalf("the reference library rejects the notification: %v", err)
	}
	tampered := bytes.Replace(n.body, []byte(`"athlete_id":134815`), []byte(`"athlete_id":134816`), 1)
	if err := ref.Verify(tampered, n.header); err == nil {
		t.Error("a tampered body verifies")
	}
	wrong, _ := standardwebhooks.NewWebhook(notify.NewSecret())
	if err := wrong.Verify(n.body, n.header); err == nil {
		t.Error("a wrong secret verifies")
	}
	stale := n.header.Clone()
	old := time.Now().Add(-10 * time.Minute)
	sig, _ := ref.Sign(n.header.Get("webhook-id"), old, n.body)
	stale.Set("webhook-timestamp", strconv.FormatInt(old.Unix(), 10))
	stale.Set("webhook-signature", sig)
	if err := ref.Verify(n.body, stale); err == nil {
		t.Error("a 10-minute-old notification verifies")
	}

	code, out, _ = c.run("notify", "status")
	if code != 0 || !strings.Contains(out, "pending 0, retrying 0, dead 0") || strings.Contains(out, "/hooks/strava?") {
		t.Errorf("notify status = %d %q", code, out)
	}
}

// A drain killed (SIGKILL) after the Strava work, while its notification
// is on its way: the event is acked, the notification stored, and the
// next drain delivers it (same webhook-id).
func TestDrainKilledBeforeDeliveryStillNotifies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it as a child process")
	}
	const activityID = 17000000002
	bin := buildCLI(t)
	c := newCLI(t)
	rcv := newNotifyReceiver(t)
	rcv.set(0, true) // the delivery hangs: the drain is caught after the Strava work
	c.env["NOTIFY_URL"] = rcv.srv.URL
	c.env["NOTIFY_SECRET"] = cliNotifySecret
	saveJane(t, c)
	postEvent(t, c, activityID)

	cmd, exited, childOut, childErr := startDrain(t, bin, c.env, "30s")
	// Deliveries start as soon as a claim's notifications are stored,
	// beside that claim's ack: wait for both.
	q := queue.New(c.redis.Client, c.redis.Prefix+"queue:")
	waitFor(t, "the event acked and its notification on its way", func() bool {
		s, err := q.Stats(context.Background())
		return err == nil && s.Ready+s.Delayed == 0 && len(rcv.got()) == 1
	})
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatalf("the killed drain exited 0\n%s\n%s", childOut, childErr)
	}
	if c.strava.Calls(stravatest.RouteActivity) != 1 {
		t.Fatalf("%d Strava calls, want 1", c.strava.Calls(stravatest.RouteActivity))
	}
	code, out, _ := c.run("queue", "status", "-json")
	var qs struct {
		Ready, Delayed, Dead int64
		Notifications        []notify.EndpointStats
	}
	if err := json.Unmarshal([]byte(out), &qs); code != 0 || err != nil {
		t.Fatalf("queue status: %d %q %v", code, out, err)
	}
	if qs.Ready+qs.Delayed+qs.Dead != 0 || len(qs.Notifications) != 1 || qs.Notifications[0].Pending != 1 {
		t.Fatalf("after the kill: %s; want the event acked and its notification pending", out)
	}

	// The killed drain's lease on the notification is scored with its
	// wall clock (2 min): score it 0, which is what its end amounts to.
	ctx := context.Background()
	dues, err := c.redis.Client.Do(ctx, c.redis.Client.B().Keys().Pattern(c.redis.Prefix+"notify:ep:*:due").Build()).AsStrSlice()
	if err != nil || len(dues) != 1 {
		t.Fatalf("due keys %v, %v", dues, err)
	}
	ids, _ := c.redis.Client.Do(ctx, c.redis.Client.B().Zrange().Key(dues[0]).Min("0").Max("-1").Build()).AsStrSlice()
	for _, id := range ids {
		if err := c.redis.Client.Do(ctx, c.redis.Client.B().Zadd().Key(dues[0]).Xx().ScoreMember().ScoreMember(0, id).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}

	rcv.set(200, false)
	code, out, stderr := c.run("process", "-budget", "5s")
	if code != 0 || !strings.Contains(out, `"claimed":0`) || !strings.Contains(out, `"delivered":1`) {
		t.Fatalf("next drain: exit %d\n%s\n%s", code, out, stderr)
	}
	got := rcv.got()
	if len(got) != 2 || got[0].header.Get("webhook-id") != got[1].header.Get("webhook-id") {
		t.Fatalf("endpoint got %d requests; want the same webhook-id twice", len(got))
	}
	ref, _ := standardwebhooks.NewWebhook(cliNotifySecret)
	if err := ref.Verify(got[1].body, got[1].header); err != nil {
		t.Errorf("redelivery does not verify: %v", err)
	}
	if c.strava.Calls(stravatest.RouteActivity) != 1 {
		t.Errorf("%d Strava calls in all, want 1", c.strava.Calls(stravatest.RouteActivity))
	}
}

// notify test pings every endpoint and prints each answer; notify secret
// prints one that parses; without a secret the drain says why.
func TestNotifyCommands(t *testing.T) {
	c := newCLI(t)
	code, out, _ := c.run("notify", "secret")
	if _, err := notify.ParseSecret(strings.TrimSpace(out)); code != 0 || err != nil {
		t.Fatalf("notify secret = %d %q: %v", code, out, err)
	}

	ok := newNotifyReceiver(t)
	gone := newNotifyReceiver(t)
	gone.set(410, false)
	c.env["NOTIFY_URL"] = ok.srv.URL + "/a?token=hidden, " + gone.srv.URL
	code, _, stderr := c.run("notify", "test")
	if code != 1 || !strings.Contains(stderr, "NOTIFY_SECRET is not set") {
		t.Errorf("notify test without a secret = %d %q", code, stderr)
	}
	c.env["NOTIFY_SECRET"] = cliNotifySecret
	code, out, stderr = c.run("notify", "test")
	if code != 1 || !regexp.MustCompile(`/a\?…: 200 OK \(webhook-id msg_[0-9a-f]+\): thanks\n`).MatchString(out) ||
		!strings.Contains(out, ": 410 Gone") || !strings.Contains(stderr, "1 of 2 endpoints did not answer 2xx") {
		t.Errorf("notify test = %d\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(out+stderr, "hidden") || strings.Contains(out+stderr, "MfKQ") {
		t.Errorf("notify test printed a secret:\n%s%s", out, stderr)
	}
	ref, _ := standardwebhooks.NewWebhook(cliNotifySecret)
	if g := ok.got(); len(g) != 1 || ref.Verify(g[0].body, g[0].header) != nil || !bytes.Contains(g[0].body, []byte(`"type":"ping","timestamp":`)) {
		t.Errorf("ping received: %+v", g)
	}

	code, out, _ = c.run("notify", "redrive")
	if code != 0 || !strings.Contains(out, "moved 0 dead notifications") {
		t.Errorf("notify redrive = %d %q", code, out)
	}
}

// A notification dead for an endpoint (here after one failed attempt, to
// skip a day of backoff) shows in notify status and queue status; notify
// redrive brings it back and the next drain delivers it.
func TestNotifyRedriveDeliversTheDead(t *testing.T) {
	c := newCLI(t)
	rcv := newNotifyReceiver(t)
	rcv.set(500, false)
	c.env["NOTIFY_URL"] = rcv.srv.URL
	c.env["NOTIFY_SECRET"] = cliNotifySecret
	cfg := notify.ConfigFromEnv(c.env["NOTIFY_URL"], c.env["NOTIFY_SECRET"])
	cfg.MaxAttempts = 1
	n := notify.New(c.redis.Client, c.redis.Prefix+"notify:", cfg, nil)
	nt := notify.NewNotification(notify.TypeActivityDeleted, "134815:1", "event-1", time.Now(), notify.DeletedData(134815, 1))
	if err := n.Store(context.Background(), []notify.Notification{nt}); err != nil {
		t.Fatal(err)
	}
	if s := n.Deliver(context.Background(), time.Now().Add(time.Minute)); s.Dead != 1 {
		t.Fatalf("delivery %+v, want it dead", s)
	}

	code, out, _ := c.run("notify", "status")
	if code != 0 || !strings.Contains(out, "pending 0, retrying 0, dead 1") || !strings.Contains(out, "notify redrive") {
		t.Errorf("notify status = %d %q", code, out)
	}
	code, out, _ = c.run("queue", "status")
	if code != 0 || !strings.Contains(out, "dead 1") {
		t.Errorf("queue status = %d %q; want the notification counts", code, out)
	}
	rcv.set(200, false)
	code, out, _ = c.run("notify", "redrive")
	if code != 0 || !strings.Contains(out, "moved 1 dead notifications") {
		t.Fatalf("notify redrive = %d %q", code, out)
	}
	code, out, stderr := c.run("process", "-budget", "5s")
	if code != 0 || !strings.Contains(out, `"delivered":1`) {
		t.Fatalf("drain after redrive: %d %s %s", code, out, stderr)
	}
	got := rcv.got()
	if len(got) != 2 || got[1].header.Get("webhook-id") != nt.ID {
		t.Errorf("endpoint got %d requests; want the dead one's webhook-id again", len(got))
	}
}

// listen verifies each notification: signed ones get 204 and a line, bad
// or stale ones 401.
func TestListen(t *testing.T) {
	env := map[string]string{"NOTIFY_SECRET": cliNotifySecret}
	var stdout, stderr logtest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"listen", "-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listen: %v", err)
		}
	}()
	var addr string
	waitFor(t, "listen to print its address", func() bool {
		m := regexp.MustCompile(`listening on (http://[0-9.:]+)`).FindStringSubmatch(stdout.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})

	ref, _ := standardwebhooks.NewWebhook(cliNotifySecret)
	body := []byte(`{"type":"activity.created","timestamp":"2026-12-01T00:00:00Z","data":{"athlete_id":7,"activity_id":42,"activity":{"name":"Lunch Ride","sport_type":"Ride","distance":12345}}}`)
	post := func(at time.Time, body []byte, sign func(id string, at time.Time, body []byte) string) int {
		req, _ := http.NewRequest("POST", addr, bytes.NewReader(body))
		req.Header.Set("webhook-id", "msg_1")
		req.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
		req.Header.Set("webhook-signature", sign("msg_1", at, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := func(id string, at time.Time, body []byte) string { s, _ := ref.Sign(id, at, body); return s }
	other, _ := standardwebhooks.NewWebhook(notify.NewSecret())
	bad := func(id string, at time.Time, body []byte) string { s, _ := other.Sign(id, at, body); return s }

	if code := post(time.Now(), body, good); code != 204 {
		t.Errorf("signed notification: %d, want 204", code)
	}
	if code := post(time.Now(), body, bad); code != 401 {
		t.Errorf("wrong secret: %d, want 401", code)
	}
	if code := post(time.Now().Add(-10*time.Minute), body, good); code != 401 {
		t.Errorf("10 minutes old: %d, want 401", code)
	}
	waitFor(t, "three lines", func() bool { return strings.Count(stdout.String(), "\n") >= 4 })
	out := stdout.String()
	if !strings.Contains(out, `activity.created msg_1 athlete 7 activity 42 "Lunch Ride" Ride 12.3 km`) ||
		strings.Count(out, "rejected msg_1") != 2 || !strings.Contains(out, "stale") {
		t.Errorf("listen printed:\n%s", out)
	}
}
