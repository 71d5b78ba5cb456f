package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// stravaForE2E plays Strava for the whole onboarding: it validates the
// callback during subscription create (as Strava does, synchronously),
// approves OAuth consent in a browser, exchanges codes, serves activities,
// and can push events to the subscribed callback.
type stravaForE2E struct {
	t   *testing.T
	srv *httptest.Server

	mu          sync.Mutex
	callback    string
	subID       int64
	exchanges   int
	activityGET int
	consent     string // "approve" or "deny"
	codes       map[string]bool
}

func newStravaForE2E(t *testing.T) *stravaForE2E {
	s := &stravaForE2E{t: t, consent: "approve", codes: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		cb := r.Form.Get("callback_url")
		challenge := "c" + fmt.Sprint(time.Now().UnixNano())
		q := url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {challenge}, "hub.verify_token": {r.Form.Get("verify_token")}}
		resp, err := http.Get(cb + "?" + q.Encode())
		ok := err == nil && resp.StatusCode == 200
		if ok {
			var body map[string]string
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			ok = body["hub.challenge"] == challenge && resp.Header.Get("Content-Type") == "application/json"
		}
		if !ok {
			writeJSONBody(w, 400, `{"message":"Bad Request","errors":[{"resource":"PushSubscription","field":"callback url","code":"not verifiable"}]}`)
			return
		}
		s.mu.Lock()
		s.callback, s.subID = cb, 120475
		s.mu.Unlock()
		writeJSONBody(w, 201, `{"id":120475}`)
	})
	mux.HandleFunc("GET /oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		back, _ := url.Parse(q.Get("redirect_uri"))
		v := url.Values{"state": {q.Get("state")}}
		s.mu.Lock()
		if s.consent == "deny" {
			v.Set("error", "access_denied")
		} else {
			code := fmt.Sprintf("code-%d", len(s.codes)+1)
			s.codes[code] = true
			v.Set("code", code)
			v.Set("scope", q.Get("scope"))
		}
		s.mu.Unlock()
		back.RawQuery = v.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		s.mu.Lock()
		defer s.mu.Unlock()
		switch r.Form.Get("grant_type") {
		case "authorization_code":
			s.exchanges++
			if !s.codes[r.Form.Get("code")] {
				writeJSONBody(w, 400, `{"message":"Bad Request","errors":[{"resource":"AuthorizationCode","field":"code","code":"invalid"}]}`)
				return
			}
			delete(s.codes, r.Form.Get("code"))
			writeJSONBody(w, 200, fmt.Sprintf(`{"token_type":"Bearer","expires_at":%d,"expires_in":21600,"refresh_token":"refresh-1","access_token":"access-1","athlete":{"id":134815,"resource_state":2,"firstname":"Jane","lastname":"Doe"}}`, time.Now().Add(6*time.Hour).Unix()))
		default:
			writeJSONBody(w, 400, `{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}`)
		}
	})
	mux.HandleFunc("GET /api/v3/activities/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.activityGET++
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer access-1" {
			writeJSONBody(w, 401, `{"message":"Authorization Error","errors":[{"resource":"Athlete","field":"access_token","code":"invalid"}]}`)
			return
		}
		writeJSONBody(w, 200, fmt.Sprintf(`{"id":%s,"resource_state":3,"athlete":{"id":134815,"resource_state":1},"name":"Lunch Ride","distance":28099.0,"moving_time":4207,"elapsed_time":4410,"total_elevation_gain":516.0,"type":"Ride","sport_type":"MountainBikeRide","start_date":"2026-11-26T12:00:00Z","start_date_local":"2026-11-26T04:00:00Z","timezone":"(GMT-08:00) America/Los_Angeles","trainer":false,"commute":false,"manual":false,"private":false,"average_speed":6.679,"max_speed":18.5,"segment_efforts":[],"laps":[]}`, r.PathValue("id")))
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// push POSTs an event to the subscribed callback, as Strava does.
func (s *stravaForE2E) push(t *testing.T, subscriptionID int64, objectID int64, aspect string) int {
	t.Helper()
	s.mu.Lock()
	cb := s.callback
	s.mu.Unlock()
	body := fmt.Sprintf(`{"aspect_type":%q,"event_time":%d,"object_id":%d,"object_type":"activity","owner_id":134815,"subscription_id":%d,"updates":{}}`, aspect, time.Now().Unix(), objectID, subscriptionID)
	resp, err := http.Post(cb, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// startServe runs `stravahook serve` (with extra flags) in process and
// returns its base URL.
func startServe(t *testing.T, env map[string]string, extra ...string) string {
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
	fake := newStravaForE2E(t)
	c.env["STRAVA_BASE_URL"] = fake.srv.URL
	c.env["CRON_SECRET"] = "cron-secret-e2e"
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
	fake.mu.Lock()
	fake.consent = "deny"
	fake.mu.Unlock()
	page := followBrowser(t, base+"/api/connect")
	if !strings.Contains(page, "declined") {
		t.Fatalf("denied consent page: %s", page)
	}
	if code, out, _ := c.run("athlete", "list", "-json"); code != 0 || out != "" || fake.exchanges != 0 {
		t.Fatalf("after refusals: athletes %q, %d exchanges", out, fake.exchanges)
	}

	// 3. The athlete connects in a browser.
	fake.mu.Lock()
	fake.consent = "approve"
	fake.mu.Unlock()
	page = followBrowser(t, base+"/api/connect")
	if !strings.Contains(page, "Jane Doe") || strings.Contains(page, "access-1") || strings.Contains(page, "refresh-1") {
		t.Fatalf("connected page: %s", page)
	}
	if fake.exchanges != 1 {
		t.Fatalf("%d code exchanges, want 1", fake.exchanges)
	}
	if code, out, _ := c.run("athlete", "list", "-json"); code != 0 || !strings.Contains(out, `"id":134815`) {
		t.Fatalf("athlete list = %d %q", code, out)
	}

	// 4. Strava notifies; a foreign subscription is refused.
	if status := fake.push(t, 120475, 16001, "create"); status != 200 {
		t.Fatalf("event POST = %d", status)
	}
	if status := fake.push(t, 999, 16002, "create"); status != 403 {
		t.Fatalf("foreign subscription POST = %d, want 403", status)
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
	if resp.StatusCode != 200 || sum.Claimed != 1 || sum.Kept != 1 || fake.activityGET != 1 {
		t.Fatalf("process_events = %d %+v, %d activity GETs", resp.StatusCode, sum, fake.activityGET)
	}
	code, out, _ = c.run("activities", "list", "-athlete", "134815", "-json")
	if code != 0 || !strings.Contains(out, `"id":16001`) || !strings.Contains(out, `"name":"Lunch Ride"`) {
		t.Fatalf("activities list = %d %q", code, out)
	}
}

// followBrowser follows redirects like a browser with cookies and returns
// the final page.
func followBrowser(t *testing.T, start string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	resp, err := (&http.Client{Jar: jar}).Get(start)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
