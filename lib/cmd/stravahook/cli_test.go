package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// cli runs commands in process against a test Redis and a Strava stand-in.
type cli struct {
	t      *testing.T
	redis  *rdbtest.Redis
	env    map[string]string
	strava *stravatest.Server
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	r := rdbtest.New(t)
	double := stravatest.NewT(t, stravatest.WithApp("5", "client-secret-xyz"))
	double.AddSampleData()
	return &cli{t: t, redis: r, strava: double, env: map[string]string{
		"REDIS_URL":               r.URL,
		"STRAVAHOOK_REDIS_PREFIX": r.Prefix,
		"STRAVA_BASE_URL":         double.URL,
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

// subscriber is a callback that answers Strava's validation GET the way
// serve does with STRAVA_VERIFY_TOKEN=verify-abc, or with status (and no
// body) when set.
func subscriber(t *testing.T, status int) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case status != 0:
			w.WriteHeader(status)
			return
		case q.Get("hub.verify_token") != "verify-abc":
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"hub.challenge": q.Get("hub.challenge")})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/api/activity_update"
}

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
	given := c.strava.IssueToken(134815, "")
	code, out, stderr := c.run("athlete", "add", "-refresh-token", given.RefreshToken, "-scope", "read,activity:read_all")
	if code != 0 || !strings.Contains(out, "athlete 134815 (Jane Doe)") {
		t.Fatalf("add = %d %q %q", code, out, stderr)
	}
	if c.strava.Calls(stravatest.RouteRefresh) != 1 || c.strava.Calls(stravatest.RouteAthlete) != 1 {
		t.Fatalf("Strava calls: %d refreshes, %d athlete", c.strava.Calls(stravatest.RouteRefresh), c.strava.Calls(stravatest.RouteAthlete))
	}
	a, err := c.store().Athlete(context.Background(), 134815)
	if err != nil || a.RefreshToken == given.RefreshToken || a.Scope != "read,activity:read_all" {
		t.Fatalf("stored %v, %v: want the rotated refresh token", a, err)
	}
	// What was stored is what Strava issued last: it works there.
	if _, err := c.strava.Client().RefreshToken(context.Background(), a.RefreshToken); err != nil {
		t.Fatalf("the stored refresh token at Strava: %v", err)
	}
	for _, args := range [][]string{{"athlete", "list"}, {"athlete", "list", "-json"}} {
		code, out, _ = c.run(args...)
		if code != 0 || !strings.Contains(out, "134815") || strings.Contains(out, a.AccessToken) || strings.Contains(out, a.RefreshToken) {
			t.Fatalf("%v = %d %q", args, code, out)
		}
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
	callback := subscriber(t, 0)
	code, out, stderr := c.run("subscription", "create", "-callback-url", callback)
	if code != 0 || !strings.Contains(out, "created subscription 120475") {
		t.Fatalf("create = %d %q %q", code, out, stderr)
	}
	if id, _ := c.store().SubscriptionID(context.Background()); id != 120475 {
		t.Fatalf("remembered id = %d", id)
	}
	code, _, stderr = c.run("subscription", "create", "-callback-url", callback)
	if code != 1 || !strings.Contains(stderr, "one subscription per application") || !strings.Contains(stderr, "subscription delete -id 120475") {
		t.Fatalf("second create = %d %q", code, stderr)
	}
	code, out, _ = c.run("subscription", "view")
	if code != 0 || !strings.Contains(out, "subscription 120475") || !strings.Contains(out, callback) {
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
	// 200 without the challenge echoed: Strava says "not verifiable"; a
	// 503: "GET to callback URL does not return 200".
	for status, says := range map[int]string{http.StatusOK: "not verifiable", http.StatusServiceUnavailable: "does not return 200"} {
		code, _, stderr := c.run("subscription", "create", "-callback-url", subscriber(t, status))
		if code != 1 || !strings.Contains(stderr, "not verified by Strava") || !strings.Contains(stderr, "deployment must be up") || !strings.Contains(stderr, says) {
			t.Fatalf("callback answering %d: %d %q", status, code, stderr)
		}
		if strings.Contains(stderr, "verify-abc") || strings.Contains(stderr, "client-secret-xyz") {
			t.Fatalf("stderr leaks a secret: %q", stderr)
		}
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
