package strava

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// oauthConfig is Strava's OAuth endpoint under our base URL.
// golang.org/x/oauth2/endpoints.Strava holds the production URLs; we derive
// ours from BaseURL so that a stand-in can answer for Strava. Strava wants
// the client id and secret in the form body, not in Basic auth.
func (c *Client) oauthConfig() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.clientID,
		ClientSecret: c.clientSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   c.baseURL + "/oauth/authorize",
			TokenURL:  c.baseURL + "/oauth/token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// AuthCodeURL is Strava's authorize page for an athlete's browser:
// BaseURL/oauth/authorize?client_id=…&redirect_uri=…&response_type=code&approval_prompt=auto&scope=…&state=….
// scope is Strava's comma-separated list (e.g. "read,activity:read_all");
// an empty scope or state is left out.
func (c *Client) AuthCodeURL(state, redirectURI, scope string) string {
	cfg := c.oauthConfig()
	cfg.RedirectURL = redirectURI
	if scope != "" {
		// One element: oauth2 would join several with spaces, Strava wants commas.
		cfg.Scopes = []string{scope}
	}
	return cfg.AuthCodeURL(state, oauth2.SetAuthURLParam("approval_prompt", "auto"))
}

// ExchangeCode trades the code Strava put on the redirect for the athlete's
// tokens (POST /oauth/token, grant_type=authorization_code). Token.Athlete
// is the athlete of Strava's answer (nil only if the answer lacked it).
func (c *Client) ExchangeCode(ctx context.Context, code string) (*Token, error) {
	if code == "" {
		return nil, errors.New("strava: exchange code: empty code")
	}
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	ctx, rec := c.oauthContext(ctx)
	ot, err := c.oauthConfig().Exchange(ctx, code)
	if err != nil {
		return nil, c.oauthFailure(ctx, "exchange code", err, rec, code)
	}
	tok := tokenFromOAuth(ot)
	tok.Athlete = athleteFromExtra(ot.Extra("athlete"))
	return tok, nil
}

// RefreshToken trades a refresh token for a new token pair (POST
// /oauth/token, grant_type=refresh_token). Strava may rotate the refresh
// token: persist the returned one, the old one stops working. A refused
// refresh is an *Error for which IsRefreshRefused is true.
func (c *Client) RefreshToken(ctx context.Context, refreshToken string) (*Token, error) {
	if refreshToken == "" {
		return nil, errors.New("strava: refresh token: empty refresh token")
	}
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	ctx, rec := c.oauthContext(ctx)
	ot, err := c.oauthConfig().TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, c.oauthFailure(ctx, "refresh token", err, rec, refreshToken)
	}
	return tokenFromOAuth(ot), nil
}

// Deauthorize revokes the athlete's grant to our application (POST
// /oauth/deauthorize). Every token of that athlete stops working.
func (c *Client) Deauthorize(ctx context.Context, accessToken string) error {
	if accessToken == "" {
		return errors.New("strava: deauthorize: empty access token")
	}
	// Strava documents the token as a form parameter; the header is what
	// every other call uses, and Strava accepts it too.
	form := url.Values{"access_token": {accessToken}}
	req, err := c.newRequest(ctx, http.MethodPost, "/oauth/deauthorize", nil, form, accessToken)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, req, nil)
	return err
}

// tokenFromOAuth reads Strava's expires_at (epoch seconds, authoritative)
// and falls back to oauth2's Expiry, which it derives from expires_in.
func tokenFromOAuth(ot *oauth2.Token) *Token {
	tok := &Token{AccessToken: ot.AccessToken, RefreshToken: ot.RefreshToken}
	if secs := int64FromExtra(ot.Extra("expires_at")); secs > 0 {
		tok.ExpiresAt = time.Unix(secs, 0).UTC()
	} else if !ot.Expiry.IsZero() {
		tok.ExpiresAt = ot.Expiry.UTC()
	}
	return tok
}

// int64FromExtra accepts the types oauth2 hands out for a number: float64
// from a JSON answer, int64/float64/string from a form-encoded one.
func int64FromExtra(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

// athleteFromExtra turns the "athlete" object oauth2 kept as a map back
// into an Athlete. Ids went through float64, exact up to 2^53.
func athleteFromExtra(v any) *Athlete {
	if v == nil {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var a Athlete
	if err := json.Unmarshal(raw, &a); err != nil || a.ID <= 0 {
		return nil
	}
	return &a
}

// oauthContext hands oauth2 our HTTP client (through the oauth2.HTTPClient
// context key) wrapped so that it sends our User-Agent and remembers a
// transport failure: oauth2 flattens some of those into plain strings, and
// IsTransient must still recognize them.
func (c *Client) oauthContext(ctx context.Context) (context.Context, *failureRecorder) {
	rec := &failureRecorder{base: c.httpClient.Transport, userAgent: c.userAgent}
	if rec.base == nil {
		rec.base = http.DefaultTransport
	}
	hc := &http.Client{
		Transport:     rec,
		CheckRedirect: c.httpClient.CheckRedirect,
		Jar:           c.httpClient.Jar,
		Timeout:       c.httpClient.Timeout,
	}
	return context.WithValue(ctx, oauth2.HTTPClient, hc), rec
}

// oauthFailure turns what oauth2 returned into our errors: Strava's refusal
// becomes an *Error, a transport failure stays recognizable as transient.
func (c *Client) oauthFailure(ctx context.Context, op string, err error, rec *failureRecorder, secret string) error {
	secrets := []string{c.clientSecret, secret}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		e := newError(re.Response, re.Body, secrets...)
		if e.StatusCode/100 == 2 && re.ErrorCode != "" {
			// An error in a 200 answer (RFC 6749 allows it; Strava does not do it).
			e.Message = truncate(re.ErrorCode+" "+re.ErrorDescription, maxErrorMessage)
			_ = scrub(e, secrets...)
		}
		return e
	}
	if failure := rec.failure(); failure != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			failure = err // the chain is intact and says more
		}
		return scrub(fmt.Errorf("strava: %s: %w", op, &transportError{failure}), secrets...)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("strava: %s: %w", op, &transportError{ctxErr})
	}
	return scrub(fmt.Errorf("strava: %s: %w", op, err), secrets...)
}

// failureRecorder is an http.RoundTripper that sets the User-Agent and
// records the first error of a round trip or of reading an answer's body.
type failureRecorder struct {
	base      http.RoundTripper
	userAgent string

	mu    sync.Mutex
	first error
}

func (f *failureRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", f.userAgent)
	r.Header.Set("Accept", "application/json")
	resp, err := f.base.RoundTrip(r)
	if err != nil {
		f.record(err)
		return nil, err
	}
	resp.Body = &recordingBody{ReadCloser: resp.Body, rec: f}
	return resp, nil
}

func (f *failureRecorder) record(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first == nil {
		f.first = err
	}
}

func (f *failureRecorder) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first
}

type recordingBody struct {
	io.ReadCloser
	rec *failureRecorder
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.rec.record(err)
	}
	return n, err
}
