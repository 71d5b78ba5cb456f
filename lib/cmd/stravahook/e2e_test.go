package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// startServe runs `stravahook serve` (with extra flags) in process and
// returns its base URL.
func startServe(t testing.TB, env map[string]string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0"}, extra...), func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("serve printed nothing: %v", err)
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("serve said %q", line)
	}
	return m[1]
}

func TestFromZeroToTheFirstNotification(t *testing.T) {
	c := newCLI(t)
	fake := c.strava
	fake.SetPushRetryDelay(0)
	c.env["CRON_SECRET"] = "cron-secret-e2e"
	// This drains through the route by hand (step 5); prompt drains have
	// their own test (prompt_test.go).
	c.env["STRAVAHOOK_PROMPT_DRAIN"] = "off"
	base := startServe(t, c.env)

	// 1. The subscription: Strava validates our callback while we wait.
	code, out, stderr := c.run("subscription", "create", "-callback-url", base+"/api/activity_update")
	if code != 0 || !strings.Contains(out, "created subscription 120475") {
		t.Fatalf("subscription create = %d %q %q", code, out, stderr)
	}

	// 2. Refusals first: none stores anything or exchanges a code.
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Get(base + "/api/connect_callback?state=forged&code=code-x&scope=read,activity:read_all")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("state without its cookie: %d, want 403", resp.StatusCode)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = browser.Get(base + "/api/connect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authorize, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || authorize.Path != "/oauth/authorize" {
		t.Fatalf("/api/connect = %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := authorize.Query()
	if q.Get("client_id") != "5" || q.Get("response_type") != "code" || q.Get("approval_prompt") != "auto" ||
		q.Get("scope") != "read,activity:read_all" || q.Get("redirect_uri") != base+"/api/connect_callback" || len(q.Get("state")) < 16 {
		t.Fatalf("authorize URL = %s", authorize)
	}
	resp, err = browser.Get(base + "/api/connect_callback?state=" + url.QueryEscape(q.Get("state")+"x") + "&code=code-x&scope=read,activity:read_all")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("forged state with a cookie: %d, want 403", resp.StatusCode)
	}
	page := consent(t, base+"/api/connect", "deny")
	if !strings.Contains(page, "declined") {
		t.Fatalf("denied consent page: %s", page)
	}
	if code, out, _ := c.run("athlete", "list", "-json"); code != 0 || out != "" || fake.Calls(stravatest.RouteExchange) != 0 {
		t.Fatalf("after refusals: athletes %q, %d exchanges", out, fake.Calls(stravatest.RouteExchange))
	}

	// 3. The athlete connects in a browser.
	page = consent(t, base+"/api/connect", "approve")
	if !strings.Contains(page, "Jane Doe") {
		t.Fatalf("connected page: %s", page)
	}
	if fake.Calls(stravatest.RouteExchange) != 1 {
		t.Fatalf("%d code exchanges, want 1", fake.Calls(stravatest.RouteExchange))
	}
	if code, out, _ := c.run("athlete", "list", "-json"); code != 0 || !strings.Contains(out, `"id":134815`) {
		t.Fatalf("athlete list = %d %q", code, out)
	}
	a, err := c.store().Athlete(context.Background(), 134815)
	if err != nil || strings.Contains(page, a.AccessToken) || strings.Contains(page, a.RefreshToken) {
		t.Fatalf("stored %v, %v; the page shows a token: %s", a, err, page)
	}

	// 4. Strava notifies; a foreign subscription is refused.
	ride := fake.NewActivity(134815, "Ride")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if res, err := fake.Push(ctx, stravatest.ActivityEvent("create", 134815, ride.ID, nil)); err != nil || res.Status != 200 {
		t.Fatalf("event POST = %+v %v", res, err)
	}
	foreign := stravatest.ActivityEvent("create", 134815, ride.ID+1, nil)
	foreign.SubscriptionID, foreign.EventTime = 999, time.Now().Unix()
	if res := stravatest.Deliver(ctx, base+"/api/activity_update", foreign, 0); res.Status != 403 {
		t.Fatalf("foreign subscription POST = %+v, want 403", res)
	}

	// 5. A drain through the HTTP route, then the activity is listed.
	req, _ := http.NewRequest("POST", base+"/api/process_events", nil)
	req.Header.Set("Authorization", "Bearer cron-secret-e2e")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct{ Claimed, Fetched, Kept int }
	json.NewDecoder(resp.Body).Decode(&sum)
	resp.Body.Close()
	if resp.StatusCode != 200 || sum.Claimed != 1 || sum.Kept != 1 || fake.Calls(stravatest.RouteActivity) != 1 {
		t.Fatalf("process_events = %d %+v, %d activity GETs", resp.StatusCode, sum, fake.Calls(stravatest.RouteActivity))
	}
	code, out, _ = c.run("activities", "list", "-athlete", "134815", "-json")
	if code != 0 || !strings.Contains(out, fmt.Sprintf(`"id":%d`, ride.ID)) || !strings.Contains(out, fmt.Sprintf(`"name":%q`, ride.Name)) {
		t.Fatalf("activities list = %d %q", code, out)
	}
}

// consent is an athlete in a browser: start leads to Strava's approve
// page, where they press Authorize ("approve") or Cancel ("deny"); it
// returns the page they end on.
func consent(t *testing.T, start, decision string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/oauth/authorize" {
		t.Fatalf("%s led to %d at %s, want Strava's approve page", start, resp.StatusCode, resp.Request.URL)
	}
	form := resp.Request.URL.Query()
	form.Set("decision", decision)
	form.Set("athlete_id", "134815")
	action := *resp.Request.URL
	action.RawQuery = ""
	resp, err = browser.PostForm(action.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
