package strava

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Credentials shaped like Strava's (40 hex digits); tests assert that none
// of them ever shows up in an error string.
const (
	testClientID     = "5"
	testClientSecret = "7b2946535949ae70f015d696d8ac602830ece412"
	testAccessToken  = "a4b945687g7b2c5e3d9f0e1a2b3c4d5e6f708192"
	testRefreshToken = "e5n567567b8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
)

// Strava's answers, as its API reference documents them.
const (
	body401 = `{"message":"Authorization Error","errors":[{"resource":"Athlete","field":"access_token","code":"invalid"}]}`
	body404 = `{"message":"Record Not Found","errors":[{"resource":"Activity","field":"id","code":"not found"}]}`
	body429 = `{"message":"Rate Limit Exceeded","errors":[{"resource":"Application","field":"rate limit","code":"exceeded"}]}`

	bodyRefreshRefused = `{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}`
)

// setup starts a stand-in for Strava and returns a Client pointed at it
// and the mux on which each test registers the endpoints it expects.
func setup(t *testing.T) (*Client, *http.ServeMux) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := NewClient(Options{BaseURL: srv.URL, ClientID: testClientID, ClientSecret: testClientSecret})
	return c, mux
}

// answer writes a Strava answer: its rate-limit headers (the documented
// example values), JSON content type, status and body.
func answer(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("X-RateLimit-Limit", "200,2000")
	h.Set("X-RateLimit-Usage", "12,340")
	h.Set("X-ReadRateLimit-Limit", "100,1000")
	h.Set("X-ReadRateLimit-Usage", "8,210")
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// documentedRateLimit is what answer's headers parse to.
var documentedRateLimit = RateLimit{
	Limit15: 200, LimitDaily: 2000, Usage15: 12, UsageDaily: 340,
	ReadLimit15: 100, ReadLimitDaily: 1000, ReadUsage15: 8, ReadUsageDaily: 210,
}

func testMethod(t *testing.T, r *http.Request, want string) {
	t.Helper()
	if r.Method != want {
		t.Errorf("method = %s, want %s", r.Method, want)
	}
}

func testHeader(t *testing.T, r *http.Request, name, want string) {
	t.Helper()
	if got := r.Header.Get(name); got != want {
		t.Errorf("header %s = %q, want %q", name, got, want)
	}
}

// testValues checks that vals holds exactly want.
func testValues(t *testing.T, what string, vals url.Values, want map[string]string) {
	t.Helper()
	wantVals := url.Values{}
	for k, v := range want {
		wantVals.Set(k, v)
	}
	if vals.Encode() != wantVals.Encode() {
		t.Errorf("%s = %s, want %s", what, vals.Encode(), wantVals.Encode())
	}
}

// testForm checks the urlencoded body of r.
func testForm(t *testing.T, r *http.Request, want map[string]string) {
	t.Helper()
	testHeader(t, r, "Content-Type", "application/x-www-form-urlencoded")
	if err := r.ParseForm(); err != nil {
		t.Fatalf("parse form: %v", err)
	}
	testValues(t, "form", r.PostForm, want)
}

// testNoSecrets fails if err's message could leak a credential.
func testNoSecrets(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	msg := fmt.Sprintf("%v|%+v|%s", err, err, err.Error())
	for _, s := range []string{testClientSecret, testAccessToken, testRefreshToken} {
		if strings.Contains(msg, s) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewClientDefaults(t *testing.T) {
	c := NewClient(Options{})
	if c.baseURL != "https://www.strava.com" {
		t.Errorf("base URL = %q", c.baseURL)
	}
	if c.userAgent != "stravahook/1 (+https://github.com/stravahook/stravahook)" {
		t.Errorf("user agent = %q", c.userAgent)
	}
	if c.httpClient == nil || c.httpClient.Timeout != 10*time.Second {
		t.Errorf("HTTP client = %+v, want one with a 10s timeout", c.httpClient)
	}
	if got := c.AuthCodeURL("s", "https://app.example/cb", "read"); !strings.HasPrefix(got, "https://www.strava.com/oauth/authorize?") {
		t.Errorf("AuthCodeURL = %q, want it under Strava's production URL", got)
	}
}

func TestNewClientOptions(t *testing.T) {
	var gotUA string
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/prefix/api/v3/athlete", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		gotUA = r.Header.Get("User-Agent")
		answer(w, http.StatusOK, `{"id":134815}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// A base URL with a path and a trailing slash: everything resolves under it.
	c := NewClient(Options{BaseURL: srv.URL + "/prefix/", UserAgent: "custom/2", HTTPClient: srv.Client()})
	if _, _, err := c.GetAuthenticatedAthlete(context.Background(), testAccessToken); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || gotUA != "custom/2" {
		t.Errorf("calls = %d, User-Agent = %q; want 1 call with custom/2", calls.Load(), gotUA)
	}
}

func TestNewClientInvalidBaseURL(t *testing.T) {
	for _, base := range []string{"ftp://strava.example", "not a url", "://x", "http://", "http://h/?client_secret=" + testClientSecret} {
		t.Run(base, func(t *testing.T) {
			c := NewClient(Options{BaseURL: base, ClientSecret: testClientSecret})
			ctx := context.Background()
			_, _, err := c.GetActivity(ctx, testAccessToken, 1)
			testNoSecrets(t, err)
			if _, err := c.RefreshToken(ctx, testRefreshToken); err == nil {
				t.Error("RefreshToken: want an error")
			}
			if _, err := c.ListSubscriptions(ctx); err == nil {
				t.Error("ListSubscriptions: want an error")
			}
			if IsTransient(err) {
				t.Errorf("a configuration error is not transient: %v", err)
			}
		})
	}
}

func TestDoSendsUserAgentAndParsesRateLimit(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/athlete", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "User-Agent", DefaultUserAgent)
		testHeader(t, r, "Accept", "application/json")
		answer(w, http.StatusOK, `{"id":134815}`)
	})
	_, resp, err := c.GetAuthenticatedAthlete(context.Background(), testAccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if resp.RateLimit != documentedRateLimit {
		t.Errorf("RateLimit = %+v, want %+v", resp.RateLimit, documentedRateLimit)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d", resp.StatusCode)
	}
}

func TestDoCallerRequest(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/athletes/134815/stats", func(w http.ResponseWriter, r *http.Request) {
		testHeader(t, r, "User-Agent", DefaultUserAgent)
		answer(w, http.StatusOK, `{"biggest_ride_distance":175454.0}`)
	})
	req, err := c.newRequest(context.Background(), http.MethodGet, "/api/v3/athletes/134815/stats", nil, nil, testAccessToken)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Del("User-Agent") // Do supplies it when missing
	var stats struct {
		BiggestRide float64 `json:"biggest_ride_distance"`
	}
	if _, err := c.Do(context.Background(), req, &stats); err != nil {
		t.Fatal(err)
	}
	if stats.BiggestRide != 175454 {
		t.Errorf("decoded %+v", stats)
	}
}

func TestDoErrors(t *testing.T) {
	tests := []struct {
		name                                string
		status                              int
		body                                string
		wantMsg                             string
		notFound, unauthorized, rateLimited bool
		transient                           bool
		wantDetails                         []ErrorDetail
	}{
		{
			name: "404", status: 404, body: body404,
			wantMsg:     "strava: 404 Record Not Found (Activity id not found)",
			notFound:    true,
			wantDetails: []ErrorDetail{{Resource: "Activity", Field: "id", Code: "not found"}},
		},
		{
			name: "401", status: 401, body: body401,
			wantMsg:      "strava: 401 Authorization Error (Athlete access_token invalid)",
			unauthorized: true,
			wantDetails:  []ErrorDetail{{Resource: "Athlete", Field: "access_token", Code: "invalid"}},
		},
		{
			name: "429", status: 429, body: body429,
			wantMsg:     "strava: 429 Rate Limit Exceeded (Application rate limit exceeded)",
			rateLimited: true,
			wantDetails: []ErrorDetail{{Resource: "Application", Field: "rate limit", Code: "exceeded"}},
		},
		{name: "500 JSON", status: 500, body: `{"message":"error","errors":[]}`, wantMsg: "strava: 500 error", transient: true},
		{name: "502 HTML", status: 502, body: "<html><body>Bad gateway</body></html>", wantMsg: "strava: 502 Bad Gateway", transient: true},
		{name: "503 empty", status: 503, body: "", wantMsg: "strava: 503 Service Unavailable", transient: true},
		{name: "400 no details", status: 400, body: `{"message":"Bad Request"}`, wantMsg: "strava: 400 Bad Request"},
		{name: "403 JSON without message", status: 403, body: `{}`, wantMsg: "strava: 403 Forbidden"},
		{
			name: "400 with an empty detail", status: 400, body: `{"message":"Bad Request","errors":[{},{"code":"invalid"}]}`,
			wantMsg: "strava: 400 Bad Request (invalid)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux := setup(t)
			var calls atomic.Int32
			mux.HandleFunc("/api/v3/activities/12312312312", func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				answer(w, tt.status, tt.body)
			})
			a, resp, err := c.GetActivity(context.Background(), testAccessToken, 12312312312)
			if a != nil {
				t.Errorf("activity = %+v, want nil", a)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %#v, want *Error", err)
			}
			if se.StatusCode != tt.status || err.Error() != tt.wantMsg {
				t.Errorf("err = %d %q, want %d %q", se.StatusCode, err.Error(), tt.status, tt.wantMsg)
			}
			if tt.wantDetails != nil && fmt.Sprint(se.Errors) != fmt.Sprint(tt.wantDetails) {
				t.Errorf("details = %+v, want %+v", se.Errors, tt.wantDetails)
			}
			if se.RateLimit != documentedRateLimit {
				t.Errorf("error RateLimit = %+v", se.RateLimit)
			}
			if resp == nil || resp.RateLimit != documentedRateLimit || resp.StatusCode != tt.status {
				t.Errorf("response = %+v, want the answer with its rate limits", resp)
			}
			if IsNotFound(err) != tt.notFound || IsUnauthorized(err) != tt.unauthorized ||
				IsRateLimited(err) != tt.rateLimited || IsTransient(err) != tt.transient {
				t.Errorf("IsNotFound=%v IsUnauthorized=%v IsRateLimited=%v IsTransient=%v; want %v %v %v %v",
					IsNotFound(err), IsUnauthorized(err), IsRateLimited(err), IsTransient(err),
					tt.notFound, tt.unauthorized, tt.rateLimited, tt.transient)
			}
			if calls.Load() != 1 {
				t.Errorf("Strava called %d times, want 1 (the client never retries on its own)", calls.Load())
			}
		})
	}
}

func TestErrorRetryAfter(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/activities/1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		answer(w, http.StatusTooManyRequests, body429)
	})
	_, _, err := c.GetActivity(context.Background(), testAccessToken, 1)
	var se *Error
	if !errors.As(err, &se) || se.RetryAfter != 2*time.Minute {
		t.Fatalf("err = %v, want an *Error with RetryAfter 2m", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"30":                            30 * time.Second,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"Mon, 01 Jan 2024 12:05:00 GMT": 5 * time.Minute,
		"Mon, 01 Jan 2024 11:00:00 GMT": 0,
		"99999999999999":                7 * 24 * time.Hour,
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestErrorMessageBounded(t *testing.T) {
	c, mux := setup(t)
	long := strings.Repeat("é", 500)
	mux.HandleFunc("/api/v3/activities/1", func(w http.ResponseWriter, r *http.Request) {
		details := strings.Repeat(`{"resource":"A","field":"b","code":"c"},`, 50)
		answer(w, 400, `{"message":"`+long+`","errors":[`+strings.TrimSuffix(details, ",")+`]}`)
	})
	_, _, err := c.GetActivity(context.Background(), testAccessToken, 1)
	var se *Error
	if !errors.As(err, &se) {
		t.Fatal(err)
	}
	if len(se.Message) > maxErrorMessage+len("…") || len(se.Errors) != maxErrorDetails {
		t.Errorf("message %d bytes, %d details; want both bounded", len(se.Message), len(se.Errors))
	}
	if !strings.HasSuffix(se.Message, "…") || strings.ContainsRune(se.Message, '\uFFFD') {
		t.Errorf("message not cut at a rune boundary: %q", se.Message[len(se.Message)-8:])
	}
}

func TestDoBodyTooLarge(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/activities/1", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, `{"id":1,"name":"`+strings.Repeat("x", maxBodyBytes)+`"}`)
	})
	_, resp, err := c.GetActivity(context.Background(), testAccessToken, 1)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want a too-large error", err)
	}
	if IsTransient(err) {
		t.Error("an oversized answer is not transient")
	}
	if resp == nil || resp.RateLimit != documentedRateLimit {
		t.Errorf("response = %+v, want the rate limits even so", resp)
	}
}

func TestDoUndecodableAnswer(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/activities/1", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, `<html>maintenance</html>`)
	})
	_, _, err := c.GetActivity(context.Background(), testAccessToken, 1)
	if err == nil || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("err = %v, want a decode error", err)
	}
	var se *Error
	if errors.As(err, &se) || IsTransient(err) {
		t.Errorf("a 200 that is not JSON is neither an *Error nor transient: %v", err)
	}
}

func TestContextTimeoutIsTransient(t *testing.T) {
	c, mux := setup(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux.HandleFunc("/api/v3/activities/1", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, resp, err := c.GetActivity(ctx, testAccessToken, 1)
	if !IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a transient deadline error", err)
	}
	if resp != nil {
		t.Errorf("response = %+v, want nil without an answer", resp)
	}
	if IsNotFound(err) || IsUnauthorized(err) || IsRateLimited(err) || IsRefreshRefused(err) {
		t.Errorf("a timeout is none of Strava's verdicts: %v", err)
	}
	testNoSecrets(t, err)
}

func TestContextCanceledIsTransient(t *testing.T) {
	c, _ := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := c.GetActivity(ctx, testAccessToken, 1)
	if !IsTransient(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a transient cancellation", err)
	}
}

func TestHTTPClientTimeoutIsTransient(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v3/activities/1", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := NewClient(Options{BaseURL: srv.URL, HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
	_, _, err := c.GetActivity(context.Background(), testAccessToken, 1)
	if !IsTransient(err) {
		t.Fatalf("err = %v, want transient", err)
	}
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	c := NewClient(Options{BaseURL: base, ClientID: testClientID, ClientSecret: testClientSecret})
	ctx := context.Background()

	_, _, err := c.GetActivity(ctx, testAccessToken, 1)
	if !IsTransient(err) {
		t.Errorf("GetActivity: err = %v, want transient", err)
	}
	testNoSecrets(t, err)

	// The client secret travels in the query string here: the transport
	// error must not repeat the URL with it.
	_, err = c.ListSubscriptions(ctx)
	if !IsTransient(err) {
		t.Errorf("ListSubscriptions: err = %v, want transient", err)
	}
	testNoSecrets(t, err)
	var ue *url.Error
	if errors.As(err, &ue) && strings.Contains(ue.URL, testClientSecret) {
		t.Errorf("url.Error keeps the secret in its URL: %s", ue.URL)
	}

	err = c.DeleteSubscription(ctx, 120475)
	if !IsTransient(err) {
		t.Errorf("DeleteSubscription: err = %v, want transient", err)
	}
	testNoSecrets(t, err)

	_, err = c.RefreshToken(ctx, testRefreshToken)
	if !IsTransient(err) || IsRefreshRefused(err) {
		t.Errorf("RefreshToken: err = %v, want transient and not refused", err)
	}
	testNoSecrets(t, err)
}

func TestTruncatedAnswerIsTransient(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/activities/1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		answer(w, http.StatusOK, `{"id":1,"name":"cut sh`)
	})
	_, _, err := c.GetActivity(context.Background(), testAccessToken, 1)
	if !IsTransient(err) {
		t.Fatalf("err = %v, want transient", err)
	}
}

// TestErrorsNeverContainSecrets makes Strava (or a proxy) echo our
// credentials back in every field an error could show.
func TestErrorsNeverContainSecrets(t *testing.T) {
	c, mux := setup(t)
	echo := func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		auth, query, form := r.Header.Get("Authorization"), r.URL.RawQuery, r.PostForm.Encode()
		dump := fmt.Sprintf("%s %s %s %v %s", auth, query, form, r.Form, url.QueryEscape(testClientSecret))
		answer(w, http.StatusBadRequest, fmt.Sprintf(
			`{"message":%q,"errors":[{"resource":%q,"field":%q,"code":%q}]}`, dump, auth, query, form))
	}
	mux.HandleFunc("/", echo)
	ctx := context.Background()

	_, _, err := c.GetActivity(ctx, testAccessToken, 12312312312)
	testNoSecrets(t, err)
	if !strings.Contains(err.Error(), redacted) {
		t.Errorf("err = %q, want the echoed secrets replaced by %s", err, redacted)
	}
	_, _, err = c.GetAuthenticatedAthlete(ctx, testAccessToken)
	testNoSecrets(t, err)
	_, err = c.RefreshToken(ctx, testRefreshToken)
	testNoSecrets(t, err)
	_, err = c.ExchangeCode(ctx, "75e251e3ff8fff")
	testNoSecrets(t, err)
	testNoSecrets(t, c.Deauthorize(ctx, testAccessToken))
	_, err = c.CreateSubscription(ctx, "https://app.example/api/activity_update", "verify-me-please")
	testNoSecrets(t, err)
	if strings.Contains(err.Error(), "verify-me-please") {
		t.Errorf("err = %q shows the verify token", err)
	}
	_, err = c.ListSubscriptions(ctx)
	testNoSecrets(t, err)
	testNoSecrets(t, c.DeleteSubscription(ctx, 120475))
}

func TestFormattingHidesSecrets(t *testing.T) {
	c := NewClient(Options{ClientID: testClientID, ClientSecret: testClientSecret})
	opts := Options{ClientID: testClientID, ClientSecret: testClientSecret}
	tok := Token{AccessToken: testAccessToken, RefreshToken: testRefreshToken, Athlete: &Athlete{ID: 134815}}
	for _, s := range []string{
		fmt.Sprintf("%v %+v %#v %s", c, c, c, c),
		fmt.Sprintf("%v %+v %#v %s", opts, opts, opts, opts),
		fmt.Sprintf("%v %+v %#v %s", tok, tok, tok, tok),
		fmt.Sprintf("%v %+v %#v %s", &tok, &tok, &tok, &tok),
	} {
		for _, secret := range []string{testClientSecret, testAccessToken, testRefreshToken} {
			if strings.Contains(s, secret) {
				t.Errorf("formatted value %q shows a secret", s)
			}
		}
	}
	if !strings.Contains(tok.String(), "134815") {
		t.Errorf("Token.String() = %q, want the athlete id for debugging", tok.String())
	}
}

func TestIsTransientClassification(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("strava: decode answer"), false},
		{&Error{StatusCode: 500}, true},
		{&Error{StatusCode: 503}, true},
		{&Error{StatusCode: 408}, true},
		{&Error{StatusCode: 429}, false},
		{&Error{StatusCode: 404}, false},
		{&Error{StatusCode: 401}, false},
		{&Error{StatusCode: 400}, false},
		{fmt.Errorf("fetch activity 1: %w", &Error{StatusCode: 502}), true},
		{fmt.Errorf("fetch: %w", context.DeadlineExceeded), true},
		{&transportError{errors.New("connection reset")}, true},
	}
	for _, tt := range tests {
		if got := IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestPredicatesSeeWrappedErrors(t *testing.T) {
	wrap := func(code int) error { return fmt.Errorf("fetch activity 12312312312: %w", &Error{StatusCode: code}) }
	refused := fmt.Errorf("refresh: %w", &Error{StatusCode: 400, Errors: []ErrorDetail{{Resource: "RefreshToken", Field: "refresh_token", Code: "invalid"}}})
	if !IsNotFound(wrap(404)) || !IsUnauthorized(wrap(401)) || !IsRateLimited(wrap(429)) || !IsRefreshRefused(refused) {
		t.Error("predicates must see through wrapping")
	}
	if IsNotFound(errors.New("404")) || IsNotFound(nil) || IsRefreshRefused(nil) {
		t.Error("predicates must be false for other errors")
	}
}

func TestDoTakesEvery2xxAsSuccess(t *testing.T) {
	tests := []struct {
		status int
		body   string
		wantID int64
		ok     bool
	}{
		{200, `{"id":134815}`, 134815, true},
		{201, `{"id":134815}`, 134815, true},
		{299, `{"id":134815}`, 134815, true},
		{204, ``, 0, true}, // no body: nothing to decode, not an error
		{300, `{"id":134815}`, 0, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			c, mux := setup(t)
			mux.HandleFunc("/api/v3/athletes/134815", func(w http.ResponseWriter, r *http.Request) {
				answer(w, tt.status, tt.body)
			})
			req, err := c.newRequest(context.Background(), http.MethodGet, "/api/v3/athletes/134815", nil, nil, testAccessToken)
			if err != nil {
				t.Fatal(err)
			}
			var got struct{ ID int64 }
			resp, err := c.Do(context.Background(), req, &got)
			var se *Error
			if tt.ok && err != nil || !tt.ok && (!errors.As(err, &se) || se.StatusCode != tt.status) {
				t.Fatalf("%d answer: err = %v, want success %v", tt.status, err, tt.ok)
			}
			if got.ID != tt.wantID || resp.StatusCode != tt.status {
				t.Errorf("decoded id %d from a %d, want %d", got.ID, resp.StatusCode, tt.wantID)
			}
		})
	}
}

func TestDoTakesAnAnswerOfExactlyTheLimit(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/oauth/deauthorize", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, strings.Repeat(" ", maxBodyBytes))
	})
	// Deauthorize decodes nothing, so the test costs only the transfer.
	if err := c.Deauthorize(context.Background(), testAccessToken); err != nil {
		t.Fatalf("an answer of exactly %d bytes: %v", maxBodyBytes, err)
	}
}

func TestErrorMessageOfExactlyTheBoundIsWhole(t *testing.T) {
	c, mux := setup(t)
	message := strings.Repeat("m", maxErrorMessage)
	mux.HandleFunc("/api/v3/activities/1", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusBadRequest, `{"message":"`+message+`"}`)
	})
	_, _, err := c.GetActivity(context.Background(), testAccessToken, 1)
	if want := "strava: 400 " + message; errString(err) != want {
		t.Errorf("err = %q, want %q", errString(err), want)
	}
}

func TestFormattingSaysWhichSecretsAreSet(t *testing.T) {
	tests := []struct{ got, want string }{
		{
			Options{ClientID: testClientID, ClientSecret: testClientSecret}.String(),
			`strava.Options{BaseURL: "", ClientID: "5", ClientSecret: [REDACTED]}`,
		},
		{
			NewClient(Options{BaseURL: "https://strava.example", ClientID: testClientID}).String(),
			`strava.Client{BaseURL: "https://strava.example", ClientID: "5", ClientSecret: ""}`,
		},
		{
			Token{AccessToken: testAccessToken, ExpiresAt: time.Unix(1568775134, 0).UTC(), Scope: "read"}.String(),
			`strava.Token{AccessToken: [REDACTED], RefreshToken: "", ExpiresAt: 2019-09-18T02:52:14Z, Scope: "read", Athlete: nil}`,
		},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got  %s\nwant %s", tt.got, tt.want)
		}
	}
}

// A secret as short as redaction takes, with characters that travel
// escaped: Strava (or a proxy) echoing the query back shows neither form.
func TestShortSecretIsRedactedInBothForms(t *testing.T) {
	const secret = "a/b+c=" // minSecretLen bytes; escaped "a%2Fb%2Bc%3D"
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusUnauthorized, fmt.Sprintf(`{"message":%q}`, r.URL.RawQuery+" "+r.URL.Query().Get("client_secret")))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := NewClient(Options{BaseURL: srv.URL, ClientID: testClientID, ClientSecret: secret})
	_, err := c.ListSubscriptions(context.Background())
	if want := "strava: 401 client_id=5&client_secret=[REDACTED] [REDACTED]"; errString(err) != want {
		t.Errorf("err = %q, want %q", errString(err), want)
	}
}
