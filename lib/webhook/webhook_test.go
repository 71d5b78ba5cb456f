package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/logtest"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/webhook"
)

const verifyToken = "STRAVA-verify-7f3a"

// ourSubscription is the subscription_id of Strava's documented events in
// lib/strava/testdata/events (the legacy one says "1").
const ourSubscription = 122449

// intake is the handler on real HTTP in front of a queue on the test's
// Redis, with its log captured as JSON lines.
type intake struct {
	srv   *httptest.Server
	queue *queue.Queue
	logs  *logtest.Buffer
}

type options struct {
	cfg          webhook.Config
	subscription webhook.SubscriptionLookup
	redisURL     string // default: the test's Redis directly
	// noVerifyToken leaves cfg.VerifyToken empty (else it is verifyToken).
	noVerifyToken bool
}

func newIntake(t *testing.T, opt options) *intake {
	t.Helper()
	r := rdbtest.New(t)
	client := r.Client
	if opt.redisURL != "" {
		c, err := rdb.Connect(context.Background(), opt.redisURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		client = c
	}
	if opt.cfg.VerifyToken == "" && !opt.noVerifyToken {
		opt.cfg.VerifyToken = verifyToken
	}
	logs := &logtest.Buffer{}
	q := queue.New(client, r.Prefix)
	h := webhook.NewHandler(opt.cfg, q, opt.subscription, slog.New(slog.NewJSONHandler(logs, nil)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &intake{srv: srv, queue: queue.New(r.Client, r.Prefix), logs: logs}
}

func (in *intake) post(t *testing.T, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(in.srv.URL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// queued claims everything in the queue and returns the events as the
// processor will read them.
func (in *intake) queued(t *testing.T) []strava.Event {
	t.Helper()
	msgs, err := in.queue.Claim(context.Background(), 1000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]strava.Event, len(msgs))
	for i, m := range msgs {
		var ev strava.Event
		if len(m.Payload) == 0 {
			ev, err = strava.ParseKey(m.ID)
		} else {
			ev, err = strava.DecodeEvent(m.Payload)
		}
		if err != nil {
			t.Fatalf("queued %q (%q) does not decode: %v", m.ID, m.Payload, err)
		}
		out[i] = ev
	}
	return out
}

func (in *intake) ready(t *testing.T) int64 {
	t.Helper()
	s, err := in.queue.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Ready
}

func documented(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "strava", "testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func answerIs(t *testing.T, status int, body string, wantStatus int, wantOutcome string) {
	t.Helper()
	if want := `{"status":"` + wantOutcome + `"}` + "\n"; status != wantStatus || body != want {
		t.Errorf("answer %d %q, want %d %q", status, body, wantStatus, want)
	}
}

func TestValidation(t *testing.T) {
	challenge := "15f7d1a91c1f40f8a748fd134752feb3<&>\"x"
	in := newIntake(t, options{})
	for _, tc := range []struct {
		name   string
		query  url.Values
		status int
	}{
		{"ours", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {challenge}}, 200},
		{"wrong token", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken + "x"}, "hub.challenge": {challenge}}, 403},
		{"no token", url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {challenge}}, 400},
		{"no challenge", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}}, 400},
		{"no mode", url.Values{"hub.verify_token": {verifyToken}, "hub.challenge": {challenge}}, 400},
		{"other mode", url.Values{"hub.mode": {"unsubscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {challenge}}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(in.srv.URL + "?" + tc.query.Encode())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("answer %d (%s) %s, want %d JSON", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status)
			}
			if tc.status != 200 {
				var refusal map[string]string
				if err := json.Unmarshal(body, &refusal); err != nil || refusal["error"] == "" || strings.Contains(string(body), challenge) {
					t.Fatalf("refusal %s, want an error that does not echo the challenge", body)
				}
				return
			}
			// Byte for byte, without HTML escaping.
			want, _ := json.Marshal(challenge)
			if string(body) != `{"hub.challenge":`+strings.NewReplacer(`\u003c`, "<", `\u0026`, "&", `\u003e`, ">").Replace(string(want))+"}\n" {
				t.Fatalf("body %s, want the challenge echoed unescaped", body)
			}
		})
	}
}

// Without STRAVA_VERIFY_TOKEN the answer is 500, the log says why (at
// error level) and the answer does not.
func TestValidationWithoutVerifyToken(t *testing.T) {
	in := newIntake(t, options{noVerifyToken: true})
	resp, err := http.Get(in.srv.URL + "?hub.mode=subscribe&hub.verify_token=x&hub.challenge=y")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || strings.Contains(string(body), "STRAVA_VERIFY_TOKEN") || !strings.Contains(string(body), "misconfigured") {
		t.Fatalf("answer %d %s, want 500 saying the server is misconfigured, without details", resp.StatusCode, body)
	}
	lines := in.logs.Lines(t)
	if len(lines) != 1 || lines[0]["level"] != "ERROR" || !strings.Contains(fmt.Sprint(lines[0]["outcome"]), "STRAVA_VERIFY_TOKEN is not set") {
		t.Fatalf("log %v, want one error line saying STRAVA_VERIFY_TOKEN is not set", lines)
	}
}

func TestDocumentedEventsAreQueuedOrIgnored(t *testing.T) {
	for _, tc := range []struct {
		file         string
		queueUpdates bool
		outcome      string
	}{
		{"create.json", false, "queued"},
		{"legacy-string-subscription.json", false, "queued"},
		{"deauthorize.json", false, "queued"},
		{"update-title.json", false, "ignored"},
		{"privacy.json", false, "ignored"},
		{"update-title.json", true, "queued"},
	} {
		name := tc.file
		if tc.queueUpdates {
			name += " with updates queued"
		}
		t.Run(name, func(t *testing.T) {
			in := newIntake(t, options{cfg: webhook.Config{QueueUpdates: tc.queueUpdates}})
			body := documented(t, tc.file)
			status, answer := in.post(t, body)
			answerIs(t, status, answer, 200, tc.outcome)
			got := in.queued(t)
			if tc.outcome == "ignored" {
				if len(got) != 0 {
					t.Fatalf("an ignored event was queued: %+v", got)
				}
				return
			}
			sent, err := strava.DecodeEvent([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Key() != sent.Key() || len(got[0].Updates) != len(sent.Updates) {
				t.Fatalf("queued %+v, want exactly the event sent (%+v)", got, sent)
			}
		})
	}
}

// A repeated delivery (Strava retries up to three times) is answered 200
// "duplicate" and queued once; the log says so too.
func TestRepeatedDeliveryIsADuplicate(t *testing.T) {
	in := newIntake(t, options{})
	body := documented(t, "create.json")
	status, answer := in.post(t, body)
	answerIs(t, status, answer, 200, "queued")
	for range 2 {
		status, answer = in.post(t, body)
		answerIs(t, status, answer, 200, "duplicate")
	}
	if n := len(in.queued(t)); n != 1 {
		t.Fatalf("queued %d times, want once", n)
	}
	lines := in.logs.WaitLines(t, 3)
	if len(lines) != 3 || lines[0]["outcome"] != "queued" || lines[1]["outcome"] != "duplicate" || lines[1]["msg"] != "event duplicate" {
		t.Fatalf("log %v, want queued then duplicate lines", lines)
	}
}

func TestSubscriptionCheck(t *testing.T) {
	create := documented(t, "create.json") // subscription 122449
	fixed := func(id int64) webhook.SubscriptionLookup {
		return func(context.Context) (int64, error) { return id, nil }
	}
	for _, tc := range []struct {
		name    string
		lookup  webhook.SubscriptionLookup
		status  int
		queued  int
		wantErr string
	}{
		{"no lookup: any subscription", nil, 200, 1, ""},
		{"none known: any subscription", fixed(0), 200, 1, ""},
		{"ours", fixed(ourSubscription), 200, 1, ""},
		{"another one's", fixed(ourSubscription + 1), 403, 0, "not this application's subscription"},
		// An id we cannot read must not let everyone in: 503, and Strava
		// retries once Redis answers again.
		{"unreadable", func(context.Context) (int64, error) {
			return 0, errors.New("read the remembered subscription id: WRONGTYPE")
		}, 503, 0, "event not stored; retry later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newIntake(t, options{subscription: tc.lookup})
			status, answer := in.post(t, create)
			if status != tc.status || tc.wantErr != "" && !strings.Contains(answer, tc.wantErr) {
				t.Fatalf("answer %d %s, want %d %q", status, answer, tc.status, tc.wantErr)
			}
			if n := len(in.queued(t)); n != tc.queued {
				t.Fatalf("queued %d, want %d", n, tc.queued)
			}
		})
	}
}

func TestMalformedEventsAre400(t *testing.T) {
	in := newIntake(t, options{})
	create := documented(t, "create.json")
	for _, body := range []string{
		``,
		`not json`,
		`{"aspect_type":"create"`,
		`[]`,
		strings.Replace(create, `"object_id":1491968222`, `"object_id":-5`, 1),
		strings.Replace(create, `"object_id":1491968222`, `"object_id":1.5`, 1),
		strings.Replace(create, `"object_id":1491968222`, `"object_id":"1491968222"`, 1),
		strings.Replace(create, `"object_id":1491968222,`, ``, 1),
		strings.Replace(create, `"owner_id":28004310`, `"owner_id":0`, 1),
		strings.Replace(create, `"event_time":1522986611`, `"event_time":null`, 1),
		strings.Replace(create, `"subscription_id":122449`, `"subscription_id":"abc"`, 1),
		strings.Replace(create, `"activity"`, `"route"`, 1),
		strings.Replace(create, `"create"`, `"explode"`, 1),
		create + create,
	} {
		status, answer := in.post(t, body)
		var refusal map[string]string
		if status != 400 || json.Unmarshal([]byte(answer), &refusal) != nil || refusal["error"] == "" {
			t.Errorf("POST %q = %d %s, want 400 with an error", body, status, answer)
		}
	}
	if n := in.ready(t); n != 0 {
		t.Fatalf("%d malformed events queued", n)
	}
	for _, l := range in.logs.Lines(t) {
		if l["level"] != "WARN" || l["status"] != float64(400) {
			t.Errorf("log line %v, want a warning with status 400", l)
		}
	}
}

// Bodies up to MaxBody are read whole, however they arrive; beyond it the
// answer is 413.
func TestBodySizes(t *testing.T) {
	in := newIntake(t, options{cfg: webhook.Config{QueueUpdates: true}})
	// An update with a long title: several KiB, read past the first buffer.
	title := strings.Repeat("Ride along the coast ", 200)
	long := `{"aspect_type":"update","event_time":1516126040,"object_id":1360128428,"object_type":"activity","owner_id":134815,"subscription_id":120475,"updates":{"title":"` + title + `"}}`
	status, answer := in.post(t, long)
	answerIs(t, status, answer, 200, "queued")
	got := in.queued(t)
	if len(got) != 1 || got[0].Updates["title"] != title {
		t.Fatalf("queued %d events; the long title did not come through whole", len(got))
	}

	padded := strings.Repeat(" ", webhook.MaxBody-len(long)) + long
	for _, tc := range []struct {
		name    string
		body    string
		chunked bool
		status  int
	}{
		{"exactly MaxBody", padded, false, 200},
		{"exactly MaxBody, chunked", padded, true, 200},
		{"one byte over", " " + padded, false, 413},
		{"one byte over, chunked", " " + padded, true, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length
			}
			req, _ := http.NewRequest("POST", in.srv.URL, body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("answer %d %s, want %d", resp.StatusCode, b, tc.status)
			}
			if tc.status == 413 && !strings.Contains(string(b), "64 KiB") {
				t.Fatalf("answer %s, want it to say the limit", b)
			}
		})
	}
}

func TestOtherMethodsAre405(t *testing.T) {
	in := newIntake(t, options{})
	for _, m := range []string{"PUT", "DELETE", "PATCH", "HEAD"} {
		req, _ := http.NewRequest(m, in.srv.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("%s = %d, Allow %q; want 405, GET, POST", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// With Redis gone, no event is acknowledged: 503 without internals, an
// error log line, and nothing claimed as stored.
func TestRedisDownIs503(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	in := newIntake(t, options{redisURL: proxy.URL()})
	proxy.Cut()
	status, answer := in.post(t, documented(t, "create.json"))
	if status != 503 || answer != `{"error":"event not stored; retry later"}`+"\n" {
		t.Fatalf("answer %d %s, want 503 asking for a retry", status, answer)
	}
	lines := in.logs.Lines(t)
	if len(lines) != 1 || lines[0]["level"] != "ERROR" || lines[0]["status"] != float64(503) || lines[0]["error"] == nil {
		t.Fatalf("log %v, want one error line with the cause", lines)
	}
}

// One log line per event with what Strava sent, the outcome and the
// latency; never the verify token.
func TestLogLine(t *testing.T) {
	in := newIntake(t, options{})
	start := time.Now()
	in.post(t, documented(t, "create.json"))
	elapsed := time.Since(start)
	in.logs.WaitLines(t, 1) // logged after the answer
	resp, err := http.Get(in.srv.URL + "?hub.mode=subscribe&hub.verify_token=" + verifyToken + "&hub.challenge=abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	lines := in.logs.Lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want one per request", len(lines))
	}
	want := map[string]any{
		"level": "INFO", "msg": "event queued", "status": float64(200), "outcome": "queued",
		"object_type": "activity", "object_id": float64(1491968222), "aspect_type": "create",
		"owner_id": float64(28004310), "subscription_id": float64(ourSubscription), "event_time": float64(1522986611),
	}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("log %s = %v, want %v", k, lines[0][k], v)
		}
	}
	// Measured before the answer is written, so within what the client saw.
	if ms, ok := lines[0]["latency_ms"].(float64); !ok || ms < 0 || ms > float64(elapsed.Microseconds())/1000 {
		t.Errorf("latency_ms = %v, want milliseconds within the %s the request took", lines[0]["latency_ms"], elapsed)
	}
	if lines[1]["msg"] != "subscription validation" || lines[1]["outcome"] != "validated" || lines[1]["level"] != "INFO" {
		t.Errorf("validation log %v", lines[1])
	}
	if strings.Contains(in.logs.String(), verifyToken) {
		t.Fatal("the verify token was logged")
	}
}
