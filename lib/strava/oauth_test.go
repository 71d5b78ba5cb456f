package strava

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAuthCodeURL(t *testing.T) {
	c := NewClient(Options{BaseURL: "https://strava.example/", ClientID: testClientID, ClientSecret: testClientSecret})
	got := c.AuthCodeURL("st4te/+=", "https://app.example/api/connect_callback", "read,activity:read_all")
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" || u.Host != "strava.example" || u.Path != "/oauth/authorize" {
		t.Errorf("URL = %s, want https://strava.example/oauth/authorize?…", got)
	}
	testValues(t, "query", u.Query(), map[string]string{
		"client_id":       testClientID,
		"redirect_uri":    "https://app.example/api/connect_callback",
		"response_type":   "code",
		"approval_prompt": "auto",
		"scope":           "read,activity:read_all",
		"state":           "st4te/+=",
	})
	if strings.Contains(got, testClientSecret) {
		t.Error("the authorize URL carries the client secret")
	}

	// Empty scope and state are left out rather than sent empty.
	u, _ = url.Parse(c.AuthCodeURL("", "https://app.example/cb", ""))
	if u.Query().Has("scope") || u.Query().Has("state") {
		t.Errorf("query = %s, want no scope or state", u.RawQuery)
	}
}

func TestExchangeCode(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		testMethod(t, r, http.MethodPost)
		testHeader(t, r, "User-Agent", DefaultUserAgent)
		testHeader(t, r, "Authorization", "") // credentials go in the body
		testForm(t, r, map[string]string{
			"client_id":     testClientID,
			"client_secret": testClientSecret,
			"code":          "75e251e3ff8fff",
			"grant_type":    "authorization_code",
		})
		answer(w, http.StatusOK, `{"token_type":"Bearer","expires_at":1568775134,"expires_in":21600,`+
			`"refresh_token":"`+testRefreshToken+`","access_token":"`+testAccessToken+`",`+
			`"athlete":{"id":134815,"username":"marianne_t","resource_state":2,"firstname":"Marianne","lastname":"Teutenberg","city":"San Francisco","country":"US"}}`)
	})
	tok, err := c.ExchangeCode(context.Background(), "75e251e3ff8fff")
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("token endpoint called %d times", calls.Load())
	}
	if tok.AccessToken != testAccessToken || tok.RefreshToken != testRefreshToken {
		t.Errorf("tokens not taken from the answer: %v", tok)
	}
	if want := time.Unix(1568775134, 0); !tok.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %s, want %s (Strava's expires_at)", tok.ExpiresAt, want)
	}
	want := Athlete{ID: 134815, ResourceState: 2, Username: "marianne_t", FirstName: "Marianne", LastName: "Teutenberg", City: "San Francisco", Country: "US"}
	if tok.Athlete == nil || *tok.Athlete != want {
		t.Errorf("Athlete = %+v, want %+v", tok.Athlete, want)
	}
}

func TestExchangeCodeLargeAthleteID(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, `{"token_type":"Bearer","expires_at":1568775134,"expires_in":21600,"refresh_token":"r","access_token":"a","athlete":{"id":12312312312}}`)
	})
	tok, err := c.ExchangeCode(context.Background(), "code")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Athlete == nil || tok.Athlete.ID != 12312312312 {
		t.Errorf("Athlete = %+v, want id 12312312312", tok.Athlete)
	}
}

func TestExchangeCodeAnswerWithoutAthleteID(t *testing.T) {
	for _, athlete := range []string{`{"username":"marianne_t"}`, `{"id":0}`, `{"id":-1}`, `"marianne_t"`} {
		t.Run(athlete, func(t *testing.T) {
			c, mux := setup(t)
			mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
				answer(w, http.StatusOK, `{"token_type":"Bearer","expires_at":1568775134,"refresh_token":"r","access_token":"a","athlete":`+athlete+`}`)
			})
			tok, err := c.ExchangeCode(context.Background(), "code")
			if err != nil {
				t.Fatal(err)
			}
			if tok.Athlete != nil || tok.AccessToken != "a" {
				t.Errorf("token = %v, want its access token and no athlete", tok)
			}
		})
	}
}

func TestExchangeCodeRefused(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusBadRequest, `{"message":"Bad Request","errors":[{"resource":"AuthorizationCode","field":"code","code":"invalid"}]}`)
	})
	tok, err := c.ExchangeCode(context.Background(), "used-code")
	if tok != nil {
		t.Errorf("token = %v, want nil", tok)
	}
	if got, want := errString(err), "strava: 400 Bad Request (AuthorizationCode code invalid)"; got != want {
		t.Errorf("err = %q, want %q", got, want)
	}
	if !IsRefreshRefused(err) || IsTransient(err) {
		t.Errorf("a refused code is refused and not transient: %v", err)
	}
}

func TestRefreshToken(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		testMethod(t, r, http.MethodPost)
		testHeader(t, r, "User-Agent", DefaultUserAgent)
		testForm(t, r, map[string]string{
			"client_id":     testClientID,
			"client_secret": testClientSecret,
			"grant_type":    "refresh_token",
			"refresh_token": testRefreshToken,
		})
		// Strava rotates the refresh token.
		answer(w, http.StatusOK, `{"token_type":"Bearer","access_token":"a9b723new","expires_at":1568775134,"expires_in":20566,"refresh_token":"b5c569rotated"}`)
	})
	tok, err := c.RefreshToken(context.Background(), testRefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("token endpoint called %d times, want 1", calls.Load())
	}
	if tok.AccessToken != "a9b723new" || tok.RefreshToken != "b5c569rotated" || tok.Athlete != nil {
		t.Errorf("token = %+v", *tok)
	}
	if !tok.ExpiresAt.Equal(time.Unix(1568775134, 0)) {
		t.Errorf("ExpiresAt = %s", tok.ExpiresAt)
	}
}

func TestRefreshTokenExpiryFallsBackToExpiresIn(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, `{"token_type":"Bearer","access_token":"a","expires_in":21600}`)
	})
	before := time.Now()
	tok, err := c.RefreshToken(context.Background(), testRefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if tok.ExpiresAt.Before(before.Add(21599*time.Second)) || tok.ExpiresAt.After(after.Add(21601*time.Second)) {
		t.Errorf("ExpiresAt = %s, want about now+6h", tok.ExpiresAt)
	}
	// No refresh_token in the answer: the one we hold stays valid.
	if tok.RefreshToken != testRefreshToken {
		t.Errorf("RefreshToken = %q, want the one we sent", tok.RefreshToken)
	}
}

func TestRefreshTokenRefused(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		refused   bool
		transient bool
		limited   bool
		wantMsg   string
	}{
		{
			name: "400 invalid refresh token", status: 400, body: bodyRefreshRefused, refused: true,
			wantMsg: "strava: 400 Bad Request (RefreshToken refresh_token invalid)",
		},
		{name: "401", status: 401, body: body401, refused: true, wantMsg: "strava: 401 Authorization Error (Athlete access_token invalid)"},
		{name: "429", status: 429, body: body429, limited: true, wantMsg: "strava: 429 Rate Limit Exceeded (Application rate limit exceeded)"},
		{name: "500", status: 500, body: `{"message":"error"}`, transient: true, wantMsg: "strava: 500 error"},
		{name: "502 HTML", status: 502, body: `<html>bad gateway</html>`, transient: true, wantMsg: "strava: 502 Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux := setup(t)
			mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
				answer(w, tt.status, tt.body)
			})
			tok, err := c.RefreshToken(context.Background(), testRefreshToken)
			if tok != nil {
				t.Errorf("token = %v, want nil", tok)
			}
			var se *Error
			if !errors.As(err, &se) || se.StatusCode != tt.status {
				t.Fatalf("err = %#v, want *Error %d", err, tt.status)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("err = %q, want %q", err, tt.wantMsg)
			}
			if se.RateLimit != documentedRateLimit {
				t.Errorf("RateLimit = %+v, want the answer's", se.RateLimit)
			}
			if IsRefreshRefused(err) != tt.refused || IsTransient(err) != tt.transient || IsRateLimited(err) != tt.limited {
				t.Errorf("refused=%v transient=%v limited=%v; want %v %v %v",
					IsRefreshRefused(err), IsTransient(err), IsRateLimited(err), tt.refused, tt.transient, tt.limited)
			}
			testNoSecrets(t, err)
		})
	}
}

// RFC 6749 lets a token endpoint answer an error with 200; Strava does not,
// but a stand-in or a proxy might.
func TestRefreshTokenErrorInA200Answer(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, `{"error":"invalid_grant","error_description":"refresh token `+testRefreshToken+` was revoked"}`)
	})
	tok, err := c.RefreshToken(context.Background(), testRefreshToken)
	if tok != nil {
		t.Errorf("token = %v, want nil", tok)
	}
	if got, want := errString(err), "strava: 200 invalid_grant refresh token [REDACTED] was revoked"; got != want {
		t.Errorf("err = %q, want %q", got, want)
	}
	if IsTransient(err) {
		t.Errorf("err = %v, want it not transient", err)
	}
}

func TestRefreshTokenTimeoutIsTransient(t *testing.T) {
	c, mux := setup(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.RefreshToken(ctx, testRefreshToken)
	if !IsTransient(err) || IsRefreshRefused(err) {
		t.Fatalf("err = %v, want transient and not refused", err)
	}
	testNoSecrets(t, err)
}

func TestRefreshTokenTruncatedAnswerIsTransient(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "500")
		answer(w, http.StatusOK, `{"token_type":"Bearer","access_`)
	})
	_, err := c.RefreshToken(context.Background(), testRefreshToken)
	if !IsTransient(err) || IsRefreshRefused(err) {
		t.Fatalf("err = %v, want transient and not refused", err)
	}
}

func TestRefreshTokenHonoursHTTPClient(t *testing.T) {
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		testHeader(t, r, "User-Agent", "ops-cli/3")
		answer(w, http.StatusOK, `{"token_type":"Bearer","access_token":"a","refresh_token":"r","expires_at":1568775134}`)
	})
	srv := httptest.NewTLSServer(mux) // only srv.Client() trusts its certificate
	t.Cleanup(srv.Close)
	c := NewClient(Options{BaseURL: srv.URL, ClientID: testClientID, ClientSecret: testClientSecret, HTTPClient: srv.Client(), UserAgent: "ops-cli/3"})
	if _, err := c.RefreshToken(context.Background(), testRefreshToken); err != nil {
		t.Fatalf("RefreshToken did not go through Options.HTTPClient: %v", err)
	}
	if _, err := c.ExchangeCode(context.Background(), "code"); err != nil {
		t.Fatalf("ExchangeCode did not go through Options.HTTPClient: %v", err)
	}
	if calls.Load() != 2 {
		t.Errorf("calls = %d, want 2", calls.Load())
	}
}

func TestRefreshTokenMissingAccessToken(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, `{"token_type":"Bearer"}`)
	})
	_, err := c.RefreshToken(context.Background(), testRefreshToken)
	if err == nil || IsTransient(err) || IsRefreshRefused(err) {
		t.Fatalf("err = %v, want a plain error", err)
	}
}

func TestOAuthEmptyArguments(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	ctx := context.Background()
	if _, err := c.RefreshToken(ctx, ""); err == nil {
		t.Error("RefreshToken(\"\"): want an error")
	}
	if _, err := c.ExchangeCode(ctx, ""); err == nil {
		t.Error("ExchangeCode(\"\"): want an error")
	}
	if err := c.Deauthorize(ctx, ""); err == nil {
		t.Error("Deauthorize(\"\"): want an error")
	}
	if calls.Load() != 0 {
		t.Errorf("Strava called %d times for invalid arguments", calls.Load())
	}
}

func TestDeauthorize(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/oauth/deauthorize", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		testMethod(t, r, http.MethodPost)
		testHeader(t, r, "Authorization", "Bearer "+testAccessToken)
		testHeader(t, r, "User-Agent", DefaultUserAgent)
		testForm(t, r, map[string]string{"access_token": testAccessToken})
		answer(w, http.StatusOK, `{"access_token":"`+testAccessToken+`"}`)
	})
	if err := c.Deauthorize(context.Background(), testAccessToken); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("calls = %d, want 1", calls.Load())
	}
}

func TestDeauthorizeUnauthorized(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/oauth/deauthorize", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusUnauthorized, body401)
	})
	err := c.Deauthorize(context.Background(), testAccessToken)
	if !IsUnauthorized(err) {
		t.Fatalf("err = %v, want 401", err)
	}
	testNoSecrets(t, err)
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
