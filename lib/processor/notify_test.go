package processor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/stravahook/stravahook/lib/notify"
	"github.com/stravahook/stravahook/lib/strava"
)

const testNotifySecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// receiver is the user's endpoint: it records every notification and
// answers status (200 unless set).
type receiver struct {
	srv *httptest.Server

	mu     sync.Mutex
	status int
	got    []receivedNotification
}

type receivedNotification struct {
	header http.Header
	body   []byte
	Type   string `json:"type"`
	Data   struct {
		AthleteID  int64           `json:"athlete_id"`
		ActivityID int64           `json:"activity_id"`
		Activity   json.RawMessage `json:"activity"`
	} `json:"data"`
}

// oneCreateAndReceiver is an env with jane connected and the create of her
// activity 1 queued, and an endpoint that records what it receives.
func oneCreateAndReceiver(t *testing.T) (*env, *receiver) {
	t.Helper()
	e := newEnv(t)
	e.connect(jane)
	e.queueCreates(jane, 1, 1)
	return e, newReceiver(t)
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{status: 200}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		n := receivedNotification{header: req.Header.Clone(), body: body}
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("notification body is not JSON: %v", err)
		}
		r.mu.Lock()
		r.got = append(r.got, n)
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []receivedNotification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedNotification(nil), r.got...)
}

func (r *receiver) answer(status int) {
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
}

// notifier is a Notifier on env's Redis (or on client, when given) with
// the test's clock, delivering to urls.
func (e *env) notifier(urls, secret string, client rueidis.Client) *notify.Notifier {
	if client == nil {
		client = e.cmds
	}
	cfg := notify.ConfigFromEnv(urls, secret)
	cfg.Now = e.clock.Now
	cfg.Jitter = func(d time.Duration) time.Duration { return d }
	return notify.New(client, e.redis.Prefix+"notify:", cfg, testLogger(e.t))
}

func (e *env) notifyStats(n *notify.Notifier) notify.EndpointStats {
	e.t.Helper()
	s, err := n.Stats(context.Background())
	if err != nil || len(s) != 1 {
		e.t.Fatalf("notification stats: %v, %v", s, err)
	}
	return s[0]
}

// Each event's work becomes one notification: a created activity with
// Strava's answer byte for byte, a deleted one, a confirmed
// deauthorization; an activity created and deleted before the drain tells
// nothing. Every one verifies with the reference library.
func TestDrainNotifiesWhatItDid(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	john := e.connect(john)
	e.strava.activity(1, jane)
	e.strava.activity(2, jane)
	e.keepBefore(3, jane)
	e.strava.Revoke(john.ID) // John revoked our access
	e.enqueue(
		event(strava.AspectCreate, jane, 1, 10),
		event(strava.AspectCreate, jane, 2, 11),
		event(strava.AspectDelete, jane, 2, 12),
		event(strava.AspectDelete, jane, 3, 13),
		deauthorization(john.ID, 14),
	)
	rcv := newReceiver(t)
	n := e.notifier(rcv.srv.URL, testNotifySecret, nil)

	sum := e.drain(e.processor(Config{Notifier: n}))

	if sum.Notifications == nil || *sum.Notifications != (notify.Summary{Stored: 3, Delivered: 3}) {
		t.Fatalf("summary notifications %+v, want 3 stored and delivered", sum.Notifications)
	}
	got := rcv.received()
	byType := map[string]receivedNotification{}
	for _, r := range got {
		byType[r.Type] = r
	}
	if len(got) != 3 || len(byType) != 3 {
		t.Fatalf("received %d notifications (%v), want one of each type", len(got), byType)
	}
	c := byType[notify.TypeActivityCreated]
	if c.Data.AthleteID != jane || c.Data.ActivityID != 1 || string(c.Data.Activity) != e.strava.answer(1) {
		t.Errorf("activity.created data: athlete %d, activity %d, activity %s; want Strava's answer byte for byte",
			c.Data.AthleteID, c.Data.ActivityID, c.Data.Activity)
	}
	if d := byType[notify.TypeActivityDeleted]; d.Data.ActivityID != 3 || d.Data.AthleteID != jane {
		t.Errorf("activity.deleted data %+v", d.Data)
	}
	if d := byType[notify.TypeAthleteDeauthorized]; d.Data.AthleteID != john.ID {
		t.Errorf("athlete.deauthorized data %+v", d.Data)
	}
	ref, err := standardwebhooks.NewWebhook(testNotifySecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		// The test's clock is in 2030: the timestamp check is the
		// reference library's own business (covered in lib/notify).
		if err := ref.VerifyIgnoringTimestamp(r.body, r.header); err != nil {
			t.Errorf("%s does not verify: %v", r.Type, err)
		}
	}
	e.wantQueueEmpty()
	if s := e.notifyStats(n); s.Pending+s.Retrying+s.Dead != 0 {
		t.Errorf("notifications left: %+v", s)
	}
}

// The event is acked once its notification is stored, whatever the
// endpoint does; the notification waits for the endpoint, and a later
// drain with an empty queue delivers it.
func TestEndpointDownHoldsBackNothing(t *testing.T) {
	e, rcv := oneCreateAndReceiver(t)
	rcv.answer(503)
	n := e.notifier(rcv.srv.URL, testNotifySecret, nil)
	p := e.processor(Config{Notifier: n})

	sum := e.drain(p)
	if sum.Kept != 1 || sum.Notifications.Retrying != 1 {
		t.Fatalf("summary %+v / %+v, want kept and the notification retrying", sum, sum.Notifications)
	}
	e.wantQueueEmpty()
	if s := e.notifyStats(n); s.Retrying != 1 {
		t.Fatalf("stats %+v", s)
	}

	rcv.answer(200)
	e.clock.Advance(notify.DefaultRetryBase)
	sum = e.drain(p)
	if sum.Claimed != 0 || sum.Notifications.Delivered != 1 {
		t.Fatalf("second drain %+v / %+v", sum, sum.Notifications)
	}
	got := rcv.received()
	if len(got) != 2 || got[0].header.Get("webhook-id") != got[1].header.Get("webhook-id") {
		t.Errorf("want the same webhook-id twice, got %d requests", len(got))
	}
}

// NOTIFY_URL set without a valid secret: the Strava work goes on, nothing
// is sent, the summary says why, and the notification stays stored.
func TestNoValidSecretKeepsNotificationsAndSaysWhy(t *testing.T) {
	e, rcv := oneCreateAndReceiver(t)
	n := e.notifier(rcv.srv.URL, "", nil)

	sum := e.drain(e.processor(Config{Notifier: n}))
	if sum.Kept != 1 || sum.Notifications.Stored != 1 || !strings.Contains(sum.Notifications.Error, "NOTIFY_SECRET is not set") {
		t.Fatalf("summary %+v / %+v", sum, sum.Notifications)
	}
	if len(rcv.received()) != 0 {
		t.Error("something was sent without a secret")
	}
	e.wantQueueEmpty()
	if s := e.notifyStats(n); s.Pending != 1 {
		t.Errorf("stats %+v, want the notification pending", s)
	}
}

// When the notifications cannot be stored, their events are not acked:
// the next drain (after the lease) redoes them and the notification goes
// out. Nothing is acked without its notification.
func TestNotificationsNotStoredMeansEventsNotAcked(t *testing.T) {
	e, rcv := oneCreateAndReceiver(t)
	lost := &cuttable{Client: e.cmds}
	lost.cut.Store(true)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := e.processor(Config{Notifier: e.notifier(rcv.srv.URL, testNotifySecret, lost)}).Drain(ctx)
	if err == nil || sum.Kept != 1 {
		t.Fatalf("Drain = %+v, %v; want the activity kept and an error", sum, err)
	}
	if s := e.stats(); s.Delayed != 1 || s.Leased != 1 {
		t.Fatalf("queue %+v, want the event still leased", s)
	}

	e.clock.Advance(DefaultLease + time.Second)
	sum = e.drain(e.processor(Config{Notifier: e.notifier(rcv.srv.URL, testNotifySecret, nil)}))
	if sum.Notifications.Delivered != 1 {
		t.Fatalf("next drain %+v / %+v", sum, sum.Notifications)
	}
	if got := rcv.received(); len(got) != 1 || got[0].Type != notify.TypeActivityCreated {
		t.Errorf("received %+v", got)
	}
	e.wantQueueEmpty()
}

// An activity update (queued with STRAVA_QUEUE_UPDATES) is re-fetched and
// told as activity.updated, with the new answer; a created-then-updated
// activity fetched once is still news: activity.created.
func TestUpdatesAreToldAsActivityUpdated(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.keepBefore(1, jane)
	e.strava.activity(1, jane)
	e.strava.activity(2, jane)
	renamed := event(strava.AspectUpdate, jane, 1, 20)
	renamed.Updates = map[string]string{"title": "Morning Run 1"}
	e.enqueue(renamed, event(strava.AspectCreate, jane, 2, 21), event(strava.AspectUpdate, jane, 2, 22))
	rcv := newReceiver(t)

	sum := e.drain(e.processor(Config{Notifier: e.notifier(rcv.srv.URL, testNotifySecret, nil)}))
	if sum.Fetched != 2 || sum.Notifications.Delivered != 2 {
		t.Fatalf("summary %+v / %+v", sum, sum.Notifications)
	}
	types := map[int64]string{}
	for _, r := range rcv.received() {
		types[r.Data.ActivityID] = r.Type
		if string(r.Data.Activity) != e.strava.answer(r.Data.ActivityID) {
			t.Errorf("%s of %d carries %s", r.Type, r.Data.ActivityID, r.Data.Activity)
		}
	}
	if types[1] != notify.TypeActivityUpdated || types[2] != notify.TypeActivityCreated {
		t.Errorf("types %v, want 1 updated and 2 created", types)
	}
}
