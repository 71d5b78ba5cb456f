package connect_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
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

	"github.com/stravahook/stravahook/lib/clocktest"
	"github.com/stravahook/stravahook/lib/connect"
	"github.com/stravahook/stravahook/lib/logtest"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

const (
	clientID     = "12345"
	clientSecret = "0123456789abcdef0123456789abcdef01234567"
	accessToken  = "acc0ffee0acc0ffee0acc0ffee0acc0ffee0acc0"
	refreshToken = "ref0ffee0ref0ffee0ref0ffee0ref0ffee0ref0"
	authCode     = "c0dec0dec0dec0dec0dec0dec0dec0dec0dec0de"
	janeID       = int64(134815)
	fullScope    = "read,activity:read_all"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeOAuth builds authorize URLs as the real client does and counts the
// exchanges.
type fakeOAuth struct {
	authorize *strava.Client

	mu    sync.Mutex
	codes []string
	token *strava.Token
	err   error
}

func (f *fakeOAuth) AuthCodeURL(state, redirectURI, scope string) string {
	return f.authorize.AuthCodeURL(state, redirectURI, scope)
}

func (f *fakeOAuth) ExchangeCode(_ context.Context, code string) (*strava.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codes = append(f.codes, code)
	return f.token, f.err
}

func (f *fakeOAuth) exchanges() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.codes...)
}

type fakeSaver struct {
	mu    sync.Mutex
	saved []store.Athlete
	err   error
}

func (s *fakeSaver) SaveAthlete(_ context.Context, a store.Athlete) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = append(s.saved, a)
	return s.err
}

func (s *fakeSaver) athletes() []store.Athlete {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.Athlete(nil), s.saved...)
}

type harness struct {
	pages *connect.Pages
	oauth *fakeOAuth
	saver *fakeSaver
	clock *clocktest.Clock
	logs  *logtest.Buffer
}

func janeToken() *strava.Token {
	return &strava.Token{
		AccessToken:  accessToken,
		RefreshToken: refreshToken,
		ExpiresAt:    t0.Add(6 * time.Hour),
		Athlete:      &strava.Athlete{ID: janeID, FirstName: "Jane", LastName: "Doe"},
	}
}

func newHarness(t *testing.T, configure func(*connect.Config)) *harness {
	t.Helper()
	h := &harness{
		oauth: &fakeOAuth{
			authorize: strava.NewClient(strava.Options{BaseURL: "https://strava.test", ClientID: clientID, ClientSecret: clientSecret}),
			token:     janeToken(),
		},
		saver: &fakeSaver{},
		clock: clocktest.New(t0),
		logs:  &logtest.Buffer{},
	}
	cfg := connect.Config{
		PublicURL:   "https://x.vercel.app",
		StateSecret: connect.DeriveStateSecret(clientSecret),
		ClientIDSet: true,
		Now:         h.clock.Now,
	}
	if configure != nil {
		configure(&cfg)
	}
	h.pages = connect.New(cfg, h.oauth, h.saver, slog.New(slog.NewJSONHandler(h.logs, nil)))
	return h
}

// start runs GET /api/connect and returns Strava's authorize URL and the
// state cookie set.
func (h *harness) start(t *testing.T, req *http.Request) (*url.URL, *http.Cookie) {
	t.Helper()
	if req == nil {
		req = httptest.NewRequest(http.MethodGet, "https://x.vercel.app/api/connect", nil)
	}
	rec := httptest.NewRecorder()
	h.pages.Start().ServeHTTP(rec, req)
	if rec.Code != http.StatusFound {
		t.Fatalf("start: status %d, body %s; want 302", rec.Code, rec.Body)
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatalf("start: Location: %v", err)
	}
	c := stateCookie(t, rec.Result())
	if c == nil {
		t.Fatalf("start: no %s cookie in %q", connect.StateCookieName, rec.Header().Values("Set-Cookie"))
	}
	return loc, c
}

func stateCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	var found *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == connect.StateCookieName {
			if found != nil {
				t.Fatalf("two state cookies set: %q", resp.Header.Values("Set-Cookie"))
			}
			found = c
		}
	}
	return found
}

// callback runs GET /api/connect_callback with query and cookies.
func (h *harness) callback(t *testing.T, query url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "https://x.vercel.app/api/connect_callback?"+query.Encode(), nil)
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	h.pages.Callback().ServeHTTP(rec, req)
	return rec
}

func approved(state string) url.Values {
	return url.Values{"state": {state}, "code": {authCode}, "scope": {fullScope}}
}

func assertHTMLPage(t *testing.T, rec *httptest.ResponseRecorder, status int, contains ...string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status %d; want %d (body %s)", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q; want text/html; charset=utf-8", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q; want no-store", cc)
	}
	body := rec.Body.String()
	if !strings.HasPrefix(body, "<!DOCTYPE html>") || !strings.HasSuffix(body, "</html>\n") {
		t.Errorf("body is not a whole HTML page: %s", body)
	}
	for _, s := range contains {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q: %s", s, body)
		}
	}
	assertNoSecrets(t, "page", body)
}

func assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{accessToken, refreshToken, authCode, clientSecret} {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains secret %q: %s", what, secret, s)
		}
	}
}

func (h *harness) assertNothingDone(t *testing.T) {
	t.Helper()
	if n := len(h.oauth.exchanges()); n != 0 {
		t.Errorf("%d code exchanges; want 0", n)
	}
	if n := len(h.saver.athletes()); n != 0 {
		t.Errorf("%d athletes saved; want 0", n)
	}
}

func (h *harness) lastLog(t *testing.T) map[string]any {
	t.Helper()
	lines := h.logs.Lines(t)
	if len(lines) == 0 {
		t.Fatal("nothing logged")
	}
	return lines[len(lines)-1]
}

func TestStartRedirectsToStravaAuthorize(t *testing.T) {
	h := newHarness(t, func(c *connect.Config) { c.PublicURL = "https://x.vercel.app/" })
	req := httptest.NewRequest(http.MethodGet, "http://internal:8080/api/connect", nil)
	req.Header.Set("X-Forwarded-Host", "ignored.example") // PUBLIC_URL wins
	rec := httptest.NewRecorder()
	h.pages.Start().ServeHTTP(rec, req)

	if rec.Code != http.StatusFound {
		t.Fatalf("status %d; want 302", rec.Code)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q; want no-store", cc)
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != "https://strava.test/oauth/authorize" {
		t.Errorf("authorize endpoint %q; want https://strava.test/oauth/authorize", got)
	}
	q := loc.Query()
	for param, want := range map[string]string{
		"client_id":       clientID,
		"redirect_uri":    "https://x.vercel.app/api/connect_callback",
		"response_type":   "code",
		"approval_prompt": "auto",
		"scope":           fullScope,
	} {
		if got := q.Get(param); got != want {
			t.Errorf("%s = %q; want %q", param, got, want)
		}
	}
	state := q.Get("state")
	if raw, err := base64.RawURLEncoding.DecodeString(state); err != nil || len(raw) < 16 {
		t.Errorf("state %q: want ≥ 128 random bits, base64url", state)
	}
	c := stateCookie(t, rec.Result())
	if c == nil || !strings.HasPrefix(c.Value, state+".") {
		t.Fatalf("state cookie %v does not carry state %q", c, state)
	}
	if strings.Contains(c.Value, clientSecret) {
		t.Error("cookie contains the client secret")
	}

	// Every start gets its own state.
	loc2, c2 := h.start(t, nil)
	if loc2.Query().Get("state") == state || c2.Value == c.Value {
		t.Error("two starts gave the same state")
	}

	log := h.lastLog(t)
	if log["outcome"] != "redirected" || log["status"] != float64(302) || log["redirect_uri"] != "https://x.vercel.app/api/connect_callback" {
		t.Errorf("log line %v", log)
	}
	if strings.Contains(h.logs.String(), state) {
		t.Error("the state was logged")
	}
}

func TestStartConfiguredScope(t *testing.T) {
	h := newHarness(t, func(c *connect.Config) { c.Scope = "read,activity:read" })
	loc, _ := h.start(t, nil)
	if got := loc.Query().Get("scope"); got != "read,activity:read" {
		t.Errorf("scope %q; want read,activity:read", got)
	}
}

func TestStartRedirectURIAndCookieFromRequest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		publicURL string
		target    string
		tls       bool
		headers   map[string]string
		wantURI   string
		secure    bool
	}{
		{
			name: "vercel forwarded headers", target: "http://internal.vercel/api/connect",
			headers: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "x.vercel.app"},
			wantURI: "https://x.vercel.app/api/connect_callback", secure: true,
		},
		{
			name: "first of several forwarded values", target: "http://internal/api/connect",
			headers: map[string]string{"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "a.example.org, b.internal"},
			wantURI: "https://a.example.org/api/connect_callback", secure: true,
		},
		{
			name: "plain http host (stravahook serve)", target: "http://127.0.0.1:3000/api/connect",
			wantURI: "http://127.0.0.1:3000/api/connect_callback", secure: false,
		},
		{
			name: "TLS without proxy", target: "https://hook.example.org/api/connect", tls: true,
			wantURI: "https://hook.example.org/api/connect_callback", secure: true,
		},
		{
			name: "forwarded proto http over TLS hop", target: "https://internal/api/connect", tls: true,
			headers: map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": "localhost:3000"},
			wantURI: "http://localhost:3000/api/connect_callback", secure: false,
		},
		{
			name: "PUBLIC_URL over forwarded headers", publicURL: "http://localhost:3000", target: "http://internal/api/connect",
			headers: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
			wantURI: "http://localhost:3000/api/connect_callback", secure: false,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *connect.Config) { c.PublicURL = tc.publicURL })
			req := httptest.NewRequest(http.MethodGet, tc.target, nil)
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			} else {
				req.TLS = nil
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			loc, c := h.start(t, req)
			if got := loc.Query().Get("redirect_uri"); got != tc.wantURI {
				t.Errorf("redirect_uri %q; want %q", got, tc.wantURI)
			}
			if c.Secure != tc.secure {
				t.Errorf("cookie Secure = %v; want %v", c.Secure, tc.secure)
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/api/" || c.MaxAge != 600 {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/api/, Max-Age=600", c)
			}
		})
	}
}

func TestStartCookieHeader(t *testing.T) {
	h := newHarness(t, nil)
	rec := httptest.NewRecorder()
	h.pages.Start().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://x.vercel.app/api/connect", nil))
	raw := rec.Header().Get("Set-Cookie")
	for _, attr := range []string{connect.StateCookieName + "=", "Path=/api/", "Max-Age=600", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(raw, attr) {
			t.Errorf("Set-Cookie %q lacks %s", raw, attr)
		}
	}
}

func TestStartRefusesUnusableHost(t *testing.T) {
	h := newHarness(t, func(c *connect.Config) { c.PublicURL = "" })
	req := httptest.NewRequest(http.MethodGet, "http://x.vercel.app/api/connect", nil)
	req.Header.Set("X-Forwarded-Host", "evil.example/phish?x=")
	rec := httptest.NewRecorder()
	h.pages.Start().ServeHTTP(rec, req)
	assertHTMLPage(t, rec, http.StatusBadRequest, "PUBLIC_URL")
	if rec.Header().Get("Location") != "" || rec.Header().Get("Set-Cookie") != "" {
		t.Errorf("headers %v: want no redirect and no cookie", rec.Header())
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := newHarness(t, nil)
	for name, handler := range map[string]http.Handler{"start": h.pages.Start(), "callback": h.pages.Callback()} {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest(method, "https://x.vercel.app/api/connect_callback?"+approved("s").Encode(), strings.NewReader("x")))
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET" {
				t.Errorf("%s %s: status %d, Allow %q; want 405, GET", method, name, rec.Code, rec.Header().Get("Allow"))
			}
			if rec.Header().Get("Set-Cookie") != "" || rec.Header().Get("Location") != "" {
				t.Errorf("%s %s: headers %v; want no cookie, no redirect", method, name, rec.Header())
			}
		}
	}
	h.assertNothingDone(t)
}

func TestMisconfigured(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(*connect.Config)
		reason    string
	}{
		{"no client id", func(c *connect.Config) { c.ClientIDSet = false }, "STRAVA_CLIENT_ID is not set"},
		{"no client secret", func(c *connect.Config) { c.StateSecret = connect.DeriveStateSecret("") }, "STRAVA_CLIENT_SECRET is not set"},
		{"neither", func(c *connect.Config) { c.ClientIDSet, c.StateSecret = false, nil }, "STRAVA_CLIENT_ID and STRAVA_CLIENT_SECRET are not set"},
		{"bad PUBLIC_URL", func(c *connect.Config) { c.PublicURL = "x.vercel.app" }, "PUBLIC_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.configure)
			for name, handler := range map[string]http.Handler{"start": h.pages.Start(), "callback": h.pages.Callback()} {
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://x.vercel.app/api/x?"+approved("s").Encode(), nil))
				assertHTMLPage(t, rec, http.StatusInternalServerError, tc.reason)
				if rec.Header().Get("Location") != "" || rec.Header().Get("Set-Cookie") != "" {
					t.Errorf("%s: headers %v; want no redirect, no cookie", name, rec.Header())
				}
				log := h.lastLog(t)
				if log["level"] != "ERROR" || log["outcome"] != "misconfigured" || !strings.Contains(log["error"].(string), tc.reason) {
					t.Errorf("%s: log line %v; want an ERROR saying %q", name, log, tc.reason)
				}
			}
			h.assertNothingDone(t)
		})
	}
}

// TestFullFlowInBrowser plays an athlete's browser (a cookie jar) through
// start, Strava (skipped: the test follows the redirect itself) and the
// callback.
func TestFullFlowInBrowser(t *testing.T) {
	h := newHarness(t, func(c *connect.Config) { c.PublicURL = "" })
	mux := http.NewServeMux()
	mux.Handle("/api/connect", h.pages.Start())
	mux.Handle("/api/connect_callback", h.pages.Callback())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := browser.Get(srv.URL + "/api/connect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("start: status %d; want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	redirectURI := loc.Query().Get("redirect_uri")
	if redirectURI != srv.URL+"/api/connect_callback" {
		t.Fatalf("redirect_uri %q; want %s/api/connect_callback", redirectURI, srv.URL)
	}

	// What Strava does once the athlete approves.
	back := redirectURI + "?" + url.Values{"state": {loc.Query().Get("state")}, "code": {authCode}, "scope": {fullScope}}.Encode()
	get := func() (int, string) {
		t.Helper()
		resp, err := browser.Get(back)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		return resp.StatusCode, string(body)
	}
	status, body := get()
	if status != http.StatusOK {
		t.Fatalf("callback: status %d, body %s; want 200", status, body)
	}
	if !strings.Contains(body, "Connected Jane Doe (athlete 134815)") || !strings.Contains(body, "new activities") {
		t.Errorf("page does not name the athlete and what happens next: %s", body)
	}
	assertNoSecrets(t, "page", body)
	if got := h.oauth.exchanges(); len(got) != 1 || got[0] != authCode {
		t.Errorf("exchanges %q; want exactly one of the code", got)
	}
	saved := h.saver.athletes()
	if len(saved) != 1 {
		t.Fatalf("%d athletes saved; want 1", len(saved))
	}
	want := store.Athlete{ID: janeID, Name: "Jane Doe", AccessToken: accessToken, RefreshToken: refreshToken,
		ExpiresAt: t0.Add(6 * time.Hour), Scope: fullScope, ConnectedAt: t0}
	if a := saved[0]; a.ID != want.ID || a.Name != want.Name || a.AccessToken != want.AccessToken ||
		a.RefreshToken != want.RefreshToken || !a.ExpiresAt.Equal(want.ExpiresAt) || a.Scope != want.Scope ||
		!a.ConnectedAt.Equal(want.ConnectedAt) {
		t.Errorf("saved %#v\nwant  %#v", a, want)
	}
	u, _ := url.Parse(srv.URL + "/api/")
	if cookies := jar.Cookies(u); len(cookies) != 0 {
		t.Errorf("state cookie still in the browser after the callback: %v", cookies)
	}

	// The same redirect again (a reload) finds its state spent.
	if status, body := get(); status != http.StatusForbidden {
		t.Errorf("replayed callback: status %d, body %s; want 403", status, body)
	}
	if n := len(h.oauth.exchanges()); n != 1 {
		t.Errorf("%d exchanges after the replay; want still 1", n)
	}
	if n := len(h.saver.athletes()); n != 1 {
		t.Errorf("%d saves after the replay; want still 1", n)
	}

	lines := h.logs.Lines(t)
	if len(lines) != 3 {
		t.Fatalf("%d log lines for 3 requests; want one each:\n%s", len(lines), h.logs)
	}
	if l := lines[1]; l["outcome"] != "connected" || l["status"] != float64(200) || l["athlete_id"] != float64(janeID) {
		t.Errorf("callback log line %v; want outcome connected, status 200, athlete_id", l)
	}
	if l := lines[2]; l["outcome"] != "state_without_cookie" || l["status"] != float64(403) {
		t.Errorf("replay log line %v", l)
	}
	logs := h.logs.String()
	assertNoSecrets(t, "logs", logs)
	if strings.Contains(logs, loc.Query().Get("state")) {
		t.Error("the state was logged")
	}
}

func TestCallbackRefusesStateNotOfThisBrowser(t *testing.T) {
	otherKey := connect.DeriveStateSecret("another application's secret")
	for _, tc := range []struct {
		name        string
		prepare     func(h *harness, state string, c *http.Cookie) (url.Values, []*http.Cookie)
		outcome     string
		clearCookie bool
	}{
		{
			name: "forged state, cookie present",
			prepare: func(_ *harness, _ string, c *http.Cookie) (url.Values, []*http.Cookie) {
				return approved(unissuedState), []*http.Cookie{c}
			},
			outcome: "state_mismatch",
		},
		{
			name: "state without cookie",
			prepare: func(_ *harness, state string, _ *http.Cookie) (url.Values, []*http.Cookie) {
				return approved(state), nil
			},
			outcome: "state_without_cookie",
		},
		{
			name: "cookie MAC altered",
			prepare: func(_ *harness, state string, c *http.Cookie) (url.Values, []*http.Cookie) {
				parts := strings.Split(c.Value, ".")
				mac, _ := base64.RawURLEncoding.DecodeString(parts[2])
				mac[0] ^= 1
				return approved(state), []*http.Cookie{{Name: c.Name, Value: parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac)}}
			},
			outcome: "state_forged", clearCookie: true,
		},
		{
			name: "cookie expiry extended",
			prepare: func(h *harness, state string, c *http.Cookie) (url.Values, []*http.Cookie) {
				h.clock.Advance(time.Hour)
				parts := strings.Split(c.Value, ".")
				return approved(state), []*http.Cookie{{Name: c.Name, Value: parts[0] + ".99999999999." + parts[2]}}
			},
			outcome: "state_forged", clearCookie: true,
		},
		{
			name: "cookie state swapped for the attacker's",
			prepare: func(_ *harness, _ string, c *http.Cookie) (url.Values, []*http.Cookie) {
				parts := strings.Split(c.Value, ".")
				return approved(unissuedState), []*http.Cookie{{Name: c.Name, Value: unissuedState + "." + parts[1] + "." + parts[2]}}
			},
			outcome: "state_forged", clearCookie: true,
		},
		{
			name: "cookie signed with another key",
			prepare: func(h *harness, _ string, _ *http.Cookie) (url.Values, []*http.Cookie) {
				other := connect.New(connect.Config{PublicURL: "https://x.vercel.app", StateSecret: otherKey, ClientIDSet: true, Now: h.clock.Now},
					h.oauth, h.saver, slog.New(slog.DiscardHandler))
				rec := httptest.NewRecorder()
				other.Start().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://x.vercel.app/api/connect", nil))
				loc, _ := url.Parse(rec.Header().Get("Location"))
				return approved(loc.Query().Get("state")), []*http.Cookie{stateCookie(t, rec.Result())}
			},
			outcome: "state_forged", clearCookie: true,
		},
		{
			name: "garbage cookie",
			prepare: func(_ *harness, state string, c *http.Cookie) (url.Values, []*http.Cookie) {
				return approved(state), []*http.Cookie{{Name: c.Name, Value: state}}
			},
			outcome: "state_forged", clearCookie: true,
		},
		{
			name: "expired cookie",
			prepare: func(h *harness, state string, c *http.Cookie) (url.Values, []*http.Cookie) {
				h.clock.Advance(connect.StateTTL)
				return approved(state), []*http.Cookie{c}
			},
			outcome: "state_expired", clearCookie: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			loc, c := h.start(t, nil)
			query, cookies := tc.prepare(h, loc.Query().Get("state"), c)
			rec := h.callback(t, query, cookies...)
			assertHTMLPage(t, rec, http.StatusForbidden, `href="/api/connect"`)
			h.assertNothingDone(t)
			cleared := stateCookie(t, rec.Result())
			if tc.clearCookie != (cleared != nil && cleared.MaxAge < 0) {
				t.Errorf("Set-Cookie %q; want the state cookie cleared: %v", rec.Header().Values("Set-Cookie"), tc.clearCookie)
			}
			if log := h.lastLog(t); log["outcome"] != tc.outcome || log["status"] != float64(403) || log["level"] != "WARN" {
				t.Errorf("log line %v; want outcome %s, status 403, WARN", log, tc.outcome)
			}
		})
	}
}

// unissuedState is a well-formed state nobody issued: an attacker's own.
var unissuedState = base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

func TestCallbackAcceptsStateUntilItExpires(t *testing.T) {
	h := newHarness(t, nil)
	loc, c := h.start(t, nil)
	h.clock.Advance(connect.StateTTL - time.Second)
	rec := h.callback(t, approved(loc.Query().Get("state")), c)
	assertHTMLPage(t, rec, http.StatusOK, "Connected Jane Doe")
	cleared := stateCookie(t, rec.Result())
	if cleared == nil || cleared.MaxAge >= 0 || cleared.Path != "/api/" || !cleared.Secure {
		t.Errorf("Set-Cookie %q; want the state cookie cleared (Path=/api/, Secure)", rec.Header().Values("Set-Cookie"))
	}
}

func TestCallbackDeclined(t *testing.T) {
	h := newHarness(t, nil)
	loc, c := h.start(t, nil)
	rec := h.callback(t, url.Values{"state": {loc.Query().Get("state")}, "error": {"access_denied"}}, c)
	assertHTMLPage(t, rec, http.StatusOK, "You declined", `<a href="/api/connect">Try again</a>`)
	h.assertNothingDone(t)
	if log := h.lastLog(t); log["outcome"] != "declined" {
		t.Errorf("log line %v; want outcome declined", log)
	}

	// Any other error Strava reports, escaped.
	rec = h.callback(t, url.Values{"error": {"<script>alert(1)</script>"}})
	assertHTMLPage(t, rec, http.StatusBadRequest, "&lt;script&gt;", `href="/api/connect"`)
	if strings.Contains(rec.Body.String(), "<script>") {
		t.Errorf("Strava's error reached the page unescaped: %s", rec.Body)
	}
	h.assertNothingDone(t)
}

func TestCallbackMissingParameters(t *testing.T) {
	h := newHarness(t, nil)
	loc, c := h.start(t, nil)
	state := loc.Query().Get("state")
	for _, q := range []url.Values{
		{},
		{"state": {state}, "scope": {fullScope}},
		{"code": {authCode}, "scope": {fullScope}},
	} {
		rec := h.callback(t, q, c)
		assertHTMLPage(t, rec, http.StatusBadRequest, `href="/api/connect"`)
	}
	h.assertNothingDone(t)
	// The cookie survived: the athlete can still come back with the code.
	rec := h.callback(t, approved(state), c)
	assertHTMLPage(t, rec, http.StatusOK, "Connected Jane Doe")
}

func TestCallbackWithoutActivityScope(t *testing.T) {
	for _, scope := range []string{"read", "read,read_all,profile:read_all", "", "read,activity:write"} {
		t.Run(scope, func(t *testing.T) {
			h := newHarness(t, nil)
			loc, c := h.start(t, nil)
			q := approved(loc.Query().Get("state"))
			q.Set("scope", scope)
			rec := h.callback(t, q, c)
			assertHTMLPage(t, rec, http.StatusForbidden, "without access to your activities", "webhooks would bring nothing", `href="/api/connect"`)
			h.assertNothingDone(t)
			if log := h.lastLog(t); log["outcome"] != "insufficient_scope" || log["scope"] != scope {
				t.Errorf("log line %v", log)
			}
		})
	}
}

func TestCallbackActivityScopes(t *testing.T) {
	for _, scope := range []string{"read,activity:read", "activity:read_all", "read,activity:read_all,profile:read_all"} {
		t.Run(scope, func(t *testing.T) {
			h := newHarness(t, nil)
			loc, c := h.start(t, nil)
			q := approved(loc.Query().Get("state"))
			q.Set("scope", scope)
			assertHTMLPage(t, h.callback(t, q, c), http.StatusOK, "Connected Jane Doe (athlete 134815)")
			if saved := h.saver.athletes(); len(saved) != 1 || saved[0].Scope != scope {
				t.Errorf("saved %v; want one athlete with scope %q", saved, scope)
			}
		})
	}
}

func TestCallbackFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		token    *strava.Token
		exchErr  error
		saveErr  error
		status   int
		contains string
		outcome  string
		saves    int
	}{
		{name: "code refused", exchErr: &strava.Error{StatusCode: 400, Message: "Bad Request"},
			status: 400, contains: "refused the authorization code", outcome: "code_refused"},
		{name: "code unauthorized", exchErr: &strava.Error{StatusCode: 401, Message: "Authorization Error"},
			status: 400, contains: "refused the authorization code", outcome: "code_refused"},
		{name: "rate limited", exchErr: &strava.Error{StatusCode: 429, Message: "Rate Limit Exceeded"},
			status: 503, contains: "few minutes", outcome: "rate_limited"},
		{name: "strava down", exchErr: &strava.Error{StatusCode: 502, Message: "Bad Gateway"},
			status: 502, contains: "could not reach Strava", outcome: "exchange_failed"},
		{name: "transport", exchErr: errors.New("dial tcp: connection refused"),
			status: 502, contains: "could not reach Strava", outcome: "exchange_failed"},
		{name: "no athlete in answer", token: &strava.Token{AccessToken: accessToken, RefreshToken: refreshToken},
			status: 502, contains: "did not say which athlete", outcome: "bad_token_answer"},
		{name: "no refresh token in answer", token: &strava.Token{AccessToken: accessToken, Athlete: &strava.Athlete{ID: janeID}},
			status: 502, contains: "did not say which athlete", outcome: "bad_token_answer"},
		{name: "save fails", saveErr: errors.New("save athlete 134815 (Jane Doe) in redis: connection reset"),
			status: 503, contains: "storing the authorization failed", outcome: "save_failed", saves: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.oauth.err, h.saver.err = tc.exchErr, tc.saveErr
			if tc.token != nil {
				h.oauth.token = tc.token
			}
			loc, c := h.start(t, nil)
			rec := h.callback(t, approved(loc.Query().Get("state")), c)
			assertHTMLPage(t, rec, tc.status, tc.contains, `href="/api/connect"`)
			if strings.Contains(rec.Body.String(), "Connected") {
				t.Errorf("failure page claims a connection: %s", rec.Body)
			}
			if n := len(h.oauth.exchanges()); n != 1 {
				t.Errorf("%d exchanges; want 1", n)
			}
			if n := len(h.saver.athletes()); n != tc.saves {
				t.Errorf("%d saves; want %d", n, tc.saves)
			}
			log := h.lastLog(t)
			if log["outcome"] != tc.outcome || log["status"] != float64(tc.status) || log["error"] == nil {
				t.Errorf("log line %v; want outcome %s, status %d, an error", log, tc.outcome, tc.status)
			}
			assertNoSecrets(t, "logs", h.logs.String())
		})
	}
}

func TestCallbackEscapesAthleteName(t *testing.T) {
	h := newHarness(t, nil)
	h.oauth.token.Athlete = &strava.Athlete{ID: janeID, FirstName: `<img src=x onerror="alert(1)">`, LastName: "&Co"}
	loc, c := h.start(t, nil)
	rec := h.callback(t, approved(loc.Query().Get("state")), c)
	assertHTMLPage(t, rec, http.StatusOK, "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp;Co (athlete 134815)")
	if strings.Contains(rec.Body.String(), "<img") {
		t.Errorf("athlete name reached the page unescaped: %s", rec.Body)
	}
}

func TestDeriveStateSecret(t *testing.T) {
	a, b := connect.DeriveStateSecret(clientSecret), connect.DeriveStateSecret(clientSecret)
	if len(a) != 32 || !bytes.Equal(a, b) {
		t.Errorf("DeriveStateSecret: %d bytes, deterministic %v; want 32 bytes, deterministic", len(a), bytes.Equal(a, b))
	}
	if bytes.Equal(a, connect.DeriveStateSecret(clientSecret+"x")) {
		t.Error("two client secrets give the same key")
	}
	if bytes.Contains(a, []byte(clientSecret)) {
		t.Error("the key contains the client secret")
	}
	if connect.DeriveStateSecret("") != nil {
		t.Error("an empty client secret gives a key")
	}
}
