package connect_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/clocktest"
	"github.com/stravahook/stravahook/lib/connect"
	"github.com/stravahook/stravahook/lib/logtest"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// TestConnectWithStravaAndRedis runs the whole flow with the real Strava
// client against a stand-in and the real store on Redis: the browser
// follows every redirect itself.
func TestConnectWithStravaAndRedis(t *testing.T) {
	clk := clocktest.New(t0)
	double := stravatest.NewT(t, stravatest.WithApp(clientID, clientSecret), stravatest.WithClock(clk.Now))
	double.AddAthlete(strava.Athlete{ID: janeID, Username: "jdoe", FirstName: "Jane", LastName: "Doe"})
	double.AutoApprove(janeID) // she approved before: Strava skips its page

	r := rdbtest.New(t)
	st := store.New(r.Client, r.Prefix)
	client := double.Client()
	logs := &logtest.Buffer{}
	pages := connect.New(connect.Config{
		StateSecret: connect.DeriveStateSecret(clientSecret),
		ClientIDSet: true,
		Now:         clk.Now,
	}, client, st, slog.New(slog.NewJSONHandler(logs, nil)))

	mux := http.NewServeMux()
	mux.Handle("/api/connect", pages.Start())
	mux.Handle("/api/connect_callback", pages.Callback())
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var visited []string
	var code string
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		visited = append(visited, req.URL.Path)
		if c := req.URL.Query().Get("code"); c != "" {
			code = c
		}
		return nil
	}}

	resp, err := browser.Get(app.URL + "/api/connect")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Connected Jane Doe (athlete 134815)") {
		t.Fatalf("after the flow: status %d, body %s; want 200 naming Jane", resp.StatusCode, body)
	}
	if strings.Join(visited, " ") != "/oauth/authorize /api/connect_callback" {
		t.Errorf("browser went through %v", visited)
	}
	if n := double.Calls(stravatest.RouteExchange); n != 1 {
		t.Errorf("%d token exchanges at Strava; want 1", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := st.Athlete(ctx, janeID)
	if err != nil {
		t.Fatalf("athlete not stored: %v", err)
	}
	if got.Name != "Jane Doe" || got.AccessToken == "" || got.RefreshToken == "" ||
		!got.ExpiresAt.Equal(t0.Add(6*time.Hour)) || got.Scope != fullScope || !got.ConnectedAt.Equal(t0) {
		t.Errorf("stored %#v (tokens %q, %q)", got, got.AccessToken, got.RefreshToken)
	}
	// The stored tokens are the ones Strava issued: they work there.
	if who, _, err := client.GetAuthenticatedAthlete(ctx, got.AccessToken); err != nil || who.ID != janeID {
		t.Errorf("the stored access token at Strava: %v, %v", who, err)
	}
	if code == "" {
		t.Fatal("no code seen on the redirect")
	}
	for what, text := range map[string]string{"page": string(body), "logs": logs.String()} {
		assertNoSecrets(t, what, text)
		for _, secret := range []string{got.AccessToken, got.RefreshToken, code} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains a secret: %s", what, text)
			}
		}
	}

	// A used code, with a fresh state: Strava refuses it, nothing changes.
	clk.Advance(time.Minute)
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(app.URL + "/api/connect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	back := app.URL + "/api/connect_callback?" + url.Values{"state": {loc.Query().Get("state")}, "code": {code}, "scope": {fullScope}}.Encode()
	resp, err = noFollow.Get(back)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "refused the authorization code") {
		t.Errorf("used code: status %d, body %s; want 400 saying the code was refused", resp.StatusCode, body)
	}
	if n := double.Calls(stravatest.RouteExchange); n != 2 {
		t.Errorf("%d token exchanges at Strava; want 2", n)
	}
	again, err := st.Athlete(ctx, janeID)
	if err != nil || !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("athlete changed by a refused code: %#v, %v", again, err)
	}
}

// TestConnectStoreDown: Redis unreachable → 503, and the page asks to try
// again.
func TestConnectStoreDown(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	st := store.New(rdbtest.Dial(t, proxy.URL()), r.Prefix)
	h := newHarness(t, nil)
	pages := connect.New(connect.Config{
		PublicURL: "https://x.vercel.app", StateSecret: connect.DeriveStateSecret(clientSecret), ClientIDSet: true, Now: h.clock.Now,
	}, h.oauth, st, slog.New(slog.NewJSONHandler(h.logs, nil)))
	h.pages = pages

	loc, c := h.start(t, nil)
	proxy.Cut()
	rec := h.callback(t, approved(loc.Query().Get("state")), c)
	assertHTMLPage(t, rec, http.StatusServiceUnavailable, "storing the authorization failed")
	if log := h.lastLog(t); log["outcome"] != "save_failed" || log["athlete_id"] != float64(janeID) {
		t.Errorf("log line %v", log)
	}
	assertNoSecrets(t, "logs", h.logs.String())
}

// A replayed callback (the same URL with the same state cookie, e.g. taken
// from a proxy log or the browser's history) is refused before Strava is
// asked, even though the cookie is still valid: a state is single-use.
func TestReplayedCallbackIsRefused(t *testing.T) {
	double := stravatest.NewT(t, stravatest.WithApp(clientID, clientSecret))
	double.AddAthlete(strava.Athlete{ID: janeID, Username: "jdoe", FirstName: "Jane", LastName: "Doe"})
	double.AutoApprove(janeID)
	r := rdbtest.New(t)
	st := store.New(r.Client, r.Prefix)
	pages := connect.New(connect.Config{
		StateSecret: connect.DeriveStateSecret(clientSecret), ClientIDSet: true, SpendState: st.SpendState,
	}, double.Client(), st, slog.New(slog.DiscardHandler))
	mux := http.NewServeMux()
	mux.Handle("/api/connect", pages.Start())
	mux.Handle("/api/connect_callback", pages.Callback())
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(app.URL + "/api/connect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Cookies()[0]
	// Strava approves at once and sends the browser back with a code.
	resp, err = noFollow.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	if !strings.Contains(callback, "code=") {
		t.Fatalf("Strava's redirect back: %d %q", resp.StatusCode, callback)
	}
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", callback, nil)
		req.AddCookie(cookie)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("first callback: %d %s", code, body)
	}
	code, body := get()
	if code != http.StatusForbidden || !strings.Contains(body, "already used") {
		t.Errorf("replayed callback: %d %s; want 403 saying it was already used", code, body)
	}
	if n := double.Calls(stravatest.RouteExchange); n != 1 {
		t.Errorf("%d code exchanges at Strava, want 1: the replay must not reach Strava", n)
	}
}
