package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// cli runs commands in process against a test Redis and a Strava stand-in.
type cli struct {
	t      *testing.T
	redis  *rdbtest.Redis
	env    map[string]string
	strava *fakeStrava
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	r := rdbtest.New(t)
	fs := newFakeStrava(t)
	return &cli{t: t, redis: r, strava: fs, env: map[string]string{
		"REDIS_URL":               r.URL,
		"STRAVAHOOK_REDIS_PREFIX": r.Prefix,
		"STRAVA_BASE_URL":         fs.srv.URL,
		"STRAVA_CLIENT_ID":        "5",
		"STRAVA_CLIENT_SECRET":    "client-secret-xyz",
		"STRAVA_VERIFY_TOKEN":     "verify-abc",
	}}
}

// run returns the exit status, stdout and stderr of one command.
func (c *cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, args, func(k string) string { return c.env[k] }, &stdout, &stderr)
	code := exitCode(err, &stderr)
	return code, stdout.String(), stderr.String()
}

func (c *cli) store() *store.Store { return store.New(c.redis.Client, c.redis.Prefix) }

// fakeStrava speaks Strava's documented answers for what the CLI calls.
type fakeStrava struct {
	srv *httptest.Server

	mu            sync.Mutex
	calls         map[string]int
	subscriptions []strava.Subscription
	validateURL   func(callback string) error // what Strava does during create
	refreshTokens map[string]bool             // valid refresh tokens
}

func newFakeStrava(t *testing.T) *fakeStrava {
	f := &fakeStrava{calls: map[string]int{}, refreshTokens: map[string]bool{"good-refresh": true}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		f.count("refresh")
		r.ParseForm()
		f.mu.Lock()
		ok := f.refreshTokens[r.Form.Get("refresh_token")]
		f.mu.Unlock()
		if !ok {
			stravaError(w, 400, `{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}`)
			return
		}
		writeJSONBody(w, 200, fmt.Sprintf(`{"token_type":"Bearer","access_token":"access-new","expires_at":%d,"expires_in":21600,"refresh_token":"refresh-rotated"}`, time.Now().Add(6*time.Hour).Unix()))
	})
	mux.HandleFunc("GET /api/v3/athlete", func(w http.ResponseWriter, r *http.Request) {
		f.count("athlete")
		if r.Header.Get("Authorization") != "Bearer access-new" {
			stravaError(w, 401, `{"message":"Authorization Error","errors":[{"resource":"Athlete","field":"access_token","code":"invalid"}]}`)
			return
		}
		writeJSONBody(w, 200, `{"id":134815,"resource_state":3,"firstname":"Jane","lastname":"Doe","city":"San Francisco"}`)
	})
	mux.HandleFunc("POST /api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
		f.count("create")
		r.ParseForm()
		f.mu.Lock()
		exists := len(f.subscriptions) > 0
		validate := f.validateURL
		f.mu.Unlock()
		if exists {
			stravaError(w, 400, `{"message":"Bad Request","errors":[{"resource":"PushSubscription","field":"","code":"already exists"}]}`)
			return
		}
		if validate != nil {
			if err := validate(r.Form.Get("callback_url")); err != nil {
				stravaError(w, 400, `{"message":"Bad Request","errors":[{"resource":"PushSubscription","field":"callback url","code":"not verifiable"}]}`)
				return
			}
		}
		f.mu.Lock()
		f.subscriptions = append(f.subscriptions, strava.Subscription{ID: 120475, ApplicationID: 5, CallbackURL: r.Form.Get("callback_url"), CreatedAt: time.Date(2018, 5, 26, 13, 4, 57, 0, time.UTC)})
		f.mu.Unlock()
		writeJSONBody(w, 201, `{"id":120475}`)
	})
	mux.HandleFunc("GET /api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
		f.count("list")
		f.mu.Lock()
		defer f.mu.Unlock()
		b, _ := json.Marshal(f.subscriptions)
		if f.subscriptions == nil {
			b = []byte("[]")
		}
		writeJSONBody(w, 200, string(b))
	})
	mux.HandleFunc("DELETE /api/v3/push_subscriptions/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.count("delete")
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, s := range f.subscriptions {
			if fmt.Sprint(s.ID) == r.PathValue("id") {
				f.subscriptions = append(f.subscriptions[:i], f.subscriptions[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		stravaError(w, 404, `{"message":"Resource Not Found","errors":[{"resource":"PushSubscription","field":"id","code":"not found"}]}`)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeStrava) count(name string) { f.mu.Lock(); f.calls[name]++; f.mu.Unlock() }
func (f *fakeStrava) callCount(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func writeJSONBody(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-RateLimit-Limit", "200,2000")
	w.Header().Set("X-RateLimit-Usage", "12,340")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

func stravaError(w http.ResponseWriter, status int, body string) { writeJSONBody(w, status, body) }

func TestUsageErrorsExit2WithAUsageLine(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"queue", "status", "-bogus"},
		{"queue", "status", "extra"},
		{"athlete", "add"},
		{"athlete", "remove"},
		{"athlete", "remove", "abc"},
		{"activities", "list"},
		{"subscription", "create"},
		{"subscription", "create", "-callback-url", "not a url"},
		{"serve", "-addr"},
	} {
		code, _, stderr := c.run(args...)
		if code != 2 || !strings.Contains(stderr, "usage: stravahook") {
			t.Errorf("%q: exit %d, stderr %q; want 2 with a usage line", args, code, stderr)
		}
	}
}

func TestHelpForEveryCommandExits0(t *testing.T) {
	c := newCLI(t)
	code, out, _ := c.run("-h")
	if code != 0 || !strings.Contains(out, "queue status") || !strings.Contains(out, "subscription create") {
		t.Fatalf("-h: %d %q", code, out)
	}
	for _, cmd := range commands() {
		args := append(strings.Fields(cmd.path), "-h")
		code, out, _ := c.run(args...)
		if code != 0 || !strings.Contains(out, "usage: ") && !strings.Contains(out, "stravahook "+cmd.path) {
			t.Errorf("%q: exit %d, out %q", args, code, out)
		}
	}
}

func TestCommandsOtherThanServeNeedRedisURL(t *testing.T) {
	c := newCLI(t)
	delete(c.env, "REDIS_URL")
	for _, args := range [][]string{{"queue", "status"}, {"queue", "redrive"}, {"athlete", "list"}, {"process"}, {"activities", "list", "-athlete", "1"}} {
		code, _, stderr := c.run(args...)
		if code != 1 || !strings.Contains(stderr, "REDIS_URL (or KV_URL) is not set") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%q: exit %d, stderr %q; want 1 and one line naming REDIS_URL", args, code, stderr)
		}
	}
}

func TestQueueStatusAndRedrive(t *testing.T) {
	c := newCLI(t)
	q := queue.New(c.redis.Client, c.redis.Prefix+"queue:")
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		q.Enqueue(ctx, id, []byte("{}"))
	}
	msgs, _ := q.Claim(ctx, 1, time.Minute)
	q.Fail(ctx, msgs[0], "athlete 7 not connected", 0, 0)

	code, out, stderr := c.run("queue", "status", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct{ Ready, Delayed, Dead int }
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Ready != 2 || got.Delayed != 0 || got.Dead != 1 {
		t.Fatalf("status -json = %s (%v)", out, err)
	}
	code, out, _ = c.run("queue", "status")
	if code != 0 || !strings.Contains(out, "dead:    1") || !strings.Contains(out, "athlete 7 not connected") {
		t.Fatalf("status = %d %q", code, out)
	}
	code, out, _ = c.run("queue", "redrive")
	if code != 0 || out != "moved 1 dead events back to ready\n" {
		t.Fatalf("redrive = %d %q", code, out)
	}
	if s, _ := q.Stats(ctx); s.Ready != 3 || s.Dead != 0 {
		t.Fatalf("after redrive: %+v", s)
	}
}

func TestAthleteAddListRemove(t *testing.T) {
	c := newCLI(t)
	code, out, stderr := c.run("athlete", "add", "-refresh-token", "good-refresh", "-scope", "read,activity:read_all")
	if code != 0 || !strings.Contains(out, "athlete 134815 (Jane Doe)") {
		t.Fatalf("add = %d %q %q", code, out, stderr)
	}
	if c.strava.callCount("refresh") != 1 || c.strava.callCount("athlete") != 1 {
		t.Fatalf("Strava calls: %v", c.strava.calls)
	}
	a, err := c.store().Athlete(context.Background(), 134815)
	if err != nil || a.RefreshToken != "refresh-rotated" || a.AccessToken != "access-new" || a.Scope != "read,activity:read_all" {
		t.Fatalf("stored %v, %v (refresh %q)", a, err, a.RefreshToken)
	}
	code, out, _ = c.run("athlete", "list")
	if code != 0 || !strings.Contains(out, "134815") || strings.Contains(out, "access-new") || strings.Contains(out, "refresh-rotated") {
		t.Fatalf("list = %d %q", code, out)
	}
	code, out, _ = c.run("athlete", "list", "-json")
	if code != 0 || !strings.Contains(out, `"id":134815`) || strings.Contains(out, "access-new") {
		t.Fatalf("list -json = %d %q", code, out)
	}
	act := strava.DetailedActivity{ID: 12312312312, Athlete: strava.MetaAthlete{ID: 134815}, Name: "Morning Ride", Type: "Ride", StartDate: time.Now().Add(-time.Hour)}
	if err := c.store().KeepActivity(context.Background(), act, time.Hour); err != nil {
		t.Fatal(err)
	}
	code, out, _ = c.run("athlete", "remove", "134815")
	if code != 0 || out != "removed athlete 134815 and 1 kept activities\n" {
		t.Fatalf("remove = %d %q", code, out)
	}
	if _, err := c.store().Athlete(context.Background(), 134815); err == nil {
		t.Fatal("athlete still stored")
	}
	if code, _, stderr := c.run("athlete", "remove", "134815"); code != 1 || !strings.Contains(stderr, "not connected") {
		t.Fatalf("second remove = %d %q", code, stderr)
	}
}

func TestAthleteAddWithARefusedTokenExits1WithStravasMessage(t *testing.T) {
	c := newCLI(t)
	code, out, stderr := c.run("athlete", "add", "-refresh-token", "revoked")
	if code != 1 || out != "" || !strings.Contains(stderr, "Bad Request") || !strings.Contains(stderr, "refresh_token invalid") {
		t.Fatalf("= %d %q %q", code, out, stderr)
	}
	if strings.Contains(stderr, "revoked") || strings.Contains(stderr, "client-secret-xyz") {
		t.Fatalf("stderr leaks a secret: %q", stderr)
	}
}

func TestActivitiesListNewestFirst(t *testing.T) {
	c := newCLI(t)
	st := c.store()
	if err := st.SaveAthlete(context.Background(), store.Athlete{ID: 7, AccessToken: "a", RefreshToken: "r", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 20, 7, 0, 0, 0, time.UTC)
	for i, name := range []string{"Older Run", "Newer Ride", "Middle Swim"} {
		offsets := []time.Duration{0, 48 * time.Hour, 24 * time.Hour}
		act := strava.DetailedActivity{ID: int64(9000000000 + i), Athlete: strava.MetaAthlete{ID: 7}, Name: name, Type: strings.Fields(name)[1], Distance: 1000 * float64(i+1), StartDate: base.Add(offsets[i])}
		if err := st.KeepActivity(context.Background(), act, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr := c.run("activities", "list", "-athlete", "7", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var names []string
	for _, l := range lines {
		var a map[string]any
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		for _, k := range []string{"id", "name", "type", "start_date", "distance"} {
			if _, ok := a[k]; !ok {
				t.Fatalf("line lacks %s: %s", k, l)
			}
		}
		names = append(names, a["name"].(string))
	}
	if strings.Join(names, ",") != "Newer Ride,Middle Swim,Older Run" {
		t.Fatalf("order = %v", names)
	}
	code, out, _ = c.run("activities", "list", "-athlete", "7")
	if code != 0 || !strings.Contains(out, "Newer Ride") || strings.Index(out, "Newer Ride") > strings.Index(out, "Older Run") {
		t.Fatalf("table = %q", out)
	}
}

func TestSubscriptionCreateViewDelete(t *testing.T) {
	c := newCLI(t)
	var validated []string
	c.strava.validateURL = func(cb string) error { validated = append(validated, cb); return nil }
	code, out, stderr := c.run("subscription", "create", "-callback-url", "https://hook.example/api/activity_update")
	if code != 0 || !strings.Contains(out, "created subscription 120475") {
		t.Fatalf("create = %d %q %q", code, out, stderr)
	}
	if id, _ := c.store().SubscriptionID(context.Background()); id != 120475 {
		t.Fatalf("remembered id = %d", id)
	}
	code, _, stderr = c.run("subscription", "create", "-callback-url", "https://hook.example/api/activity_update")
	if code != 1 || !strings.Contains(stderr, "one subscription per application") || !strings.Contains(stderr, "subscription delete -id 120475") {
		t.Fatalf("second create = %d %q", code, stderr)
	}
	code, out, _ = c.run("subscription", "view")
	if code != 0 || !strings.Contains(out, "subscription 120475") || !strings.Contains(out, "https://hook.example/api/activity_update") {
		t.Fatalf("view = %d %q", code, out)
	}
	code, out, _ = c.run("subscription", "delete")
	if code != 0 || out != "deleted subscription 120475\n" {
		t.Fatalf("delete = %d %q", code, out)
	}
	if id, _ := c.store().SubscriptionID(context.Background()); id != 0 {
		t.Fatalf("remembered id after delete = %d", id)
	}
	if code, _, stderr := c.run("subscription", "delete"); code != 1 || !strings.Contains(stderr, "no subscription") {
		t.Fatalf("delete with none = %d %q", code, stderr)
	}
	if code, _, stderr := c.run("subscription", "delete", "-id", "999"); code != 1 || !strings.Contains(stderr, "Not Found") {
		t.Fatalf("delete unknown = %d %q", code, stderr)
	}
}

func TestSubscriptionCreateNotVerifiableSaysWhy(t *testing.T) {
	c := newCLI(t)
	c.strava.validateURL = func(string) error { return fmt.Errorf("GET did not answer 200") }
	code, _, stderr := c.run("subscription", "create", "-callback-url", "https://down.example/api/activity_update")
	if code != 1 || !strings.Contains(stderr, "not verified by Strava") || !strings.Contains(stderr, "deployment must be up") || !strings.Contains(stderr, "not verifiable") {
		t.Fatalf("= %d %q", code, stderr)
	}
	if strings.Contains(stderr, "verify-abc") || strings.Contains(stderr, "client-secret-xyz") {
		t.Fatalf("stderr leaks a secret: %q", stderr)
	}
}

func TestStravaCredentialsMissingIsOneClearLine(t *testing.T) {
	c := newCLI(t)
	delete(c.env, "STRAVA_CLIENT_SECRET")
	code, _, stderr := c.run("subscription", "view")
	if code != 1 || !strings.Contains(stderr, "STRAVA_CLIENT_SECRET not set") {
		t.Fatalf("= %d %q", code, stderr)
	}
}
