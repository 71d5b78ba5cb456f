package connect_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/connect"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// stravaStandIn answers for Strava's /oauth/authorize (the athlete
// approves at once, granting scope) and /oauth/token (each code works
// once), speaking Strava's documented JSON.
type stravaStandIn struct {
	t     *testing.T
	scope string

	mu        sync.Mutex
	exchanges int
	used      map[string]bool
}

func (s *stravaStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/oauth/authorize":
		q := r.URL.Query()
		if q.Get("client_id") != clientID || q.Get("response_type") != "code" || q.Get("approval_prompt") != "auto" {
			http.Error(w, "bad authorize request "+q.Encode(), http.StatusBadRequest)
			return
		}
		back := q.Get("redirect_uri") + "?" + url.Values{"state": {q.Get("state")}, "code": {authCode}, "scope": {s.scope}}.Encode()
		http.Redirect(w, r, back, http.StatusFound)
	case "/oauth/token":
		s.mu.Lock()
		defer s.mu.Unlock()
		s.exchanges++
		if r.Method != http.MethodPost || r.PostFormValue("grant_type") != "authorization_code" ||
			r.PostFormValue("client_id") != clientID || r.PostFormValue("client_secret") != clientSecret {
			s.t.Errorf("token request %s %v", r.Method, r.PostForm)
		}
		code := r.PostFormValue("code")
		if code != authCode || s.used[code] {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"message":"Bad Request","errors":[{"resource":"AuthorizationCode","field":"code","code":"invalid"}]}`)
			return
		}
		s.used[code] = true
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"token_type": "Bearer", "expires_at": t0.Add(6 * time.Hour).Unix(), "expires_in": 21600,
			"refresh_token": refreshToken, "access_token": accessToken,
			"athlete": map[string]any{"id": janeID, "username": "jdoe", "resource_state": 2, "firstname": "Jane", "lastname": "Doe"},
		})
	default:
		http.NotFound(w, r)
	}
}

func (s *stravaStandIn) exchangeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanges
}

// TestConnectWithStravaAndRedis runs the whole flow with the real Strava
// client against a stand-in and the real store on Redis: the browser
// follows every redirect itself.
func TestConnectWithStravaAndRedis(t *testing.T) {
	standIn := &stravaStandIn{t: t, scope: fullScope, used: map[string]bool{}}
	stravaSrv := httptest.NewServer(standIn)
	t.Cleanup(stravaSrv.Close)

	r := rdbtest.New(t)
	st := store.New(r.Client, r.Prefix)
	client := strava.NewClient(strava.Options{BaseURL: stravaSrv.URL, ClientID: clientID, ClientSecret: clientSecret})
	clk := &clock{now: t0}
	logs := &syncBuffer{}
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
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		visited = append(visited, req.URL.Path)
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
	assertNoSecrets(t, "page", string(body))
	assertNoSecrets(t, "logs", logs.String())
	if n := standIn.exchangeCount(); n != 1 {
		t.Errorf("%d token exchanges at Strava; want 1", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := st.Athlete(ctx, janeID)
	if err != nil {
		t.Fatalf("athlete not stored: %v", err)
	}
	if got.Name != "Jane Doe" || got.AccessToken != accessToken || got.RefreshToken != refreshToken ||
		!got.ExpiresAt.Equal(t0.Add(6*time.Hour)) || got.Scope != fullScope || !got.ConnectedAt.Equal(t0) {
		t.Errorf("stored %#v (tokens %q, %q)", got, got.AccessToken, got.RefreshToken)
	}

	// A used code, with a fresh state: Strava refuses it, nothing changes.
	clk.Add(time.Minute)
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(app.URL + "/api/connect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	back := app.URL + "/api/connect_callback?" + url.Values{"state": {loc.Query().Get("state")}, "code": {authCode}, "scope": {fullScope}}.Encode()
	resp, err = noFollow.Get(back)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "refused the authorization code") {
		t.Errorf("used code: status %d, body %s; want 400 saying the code was refused", resp.StatusCode, body)
	}
	if n := standIn.exchangeCount(); n != 2 {
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
