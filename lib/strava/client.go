package strava

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults for Options.
const (
	DefaultBaseURL   = "https://www.strava.com"
	DefaultUserAgent = "stravahook/1 (+https://github.com/stravahook/stravahook)"
	DefaultTimeout   = 10 * time.Second
)

// maxBodyBytes bounds every answer we read; a DetailedActivity with all its
// efforts is well below it.
const maxBodyBytes = 4 << 20

// Options configures a Client. Zero values take the defaults.
type Options struct {
	BaseURL      string // default "https://www.strava.com"; /oauth/* and /api/v3/* are resolved against it
	ClientID     string
	ClientSecret string
	HTTPClient   *http.Client // default: one with a 10s timeout
	UserAgent    string       // default "stravahook/1 (+https://github.com/stravahook/stravahook)"
}

// String keeps the client secret out of logs.
func (o Options) String() string {
	return fmt.Sprintf("strava.Options{BaseURL: %q, ClientID: %q, ClientSecret: %s}", o.BaseURL, o.ClientID, redactedIfSet(o.ClientSecret))
}

// GoString is String, for %#v.
func (o Options) GoString() string { return o.String() }

// Client calls Strava's REST API (/api/v3) and OAuth endpoints (/oauth).
// It is safe for concurrent use. Calls made for an athlete take that
// athlete's access token; calls made for the application (push
// subscriptions, token exchange) use the client id and secret.
type Client struct {
	baseURL      string // without a trailing slash
	baseErr      error  // set when Options.BaseURL is unusable; every call returns it
	clientID     string
	clientSecret string
	httpClient   *http.Client
	userAgent    string
}

// NewClient returns a Client for opts. An unusable BaseURL does not panic:
// every call then fails with an error saying so.
func NewClient(opts Options) *Client {
	base := strings.TrimRight(strings.TrimSpace(opts.BaseURL), "/")
	if base == "" {
		base = DefaultBaseURL
	}
	c := &Client{
		baseURL:      base,
		clientID:     opts.ClientID,
		clientSecret: opts.ClientSecret,
		httpClient:   opts.HTTPClient,
		userAgent:    opts.UserAgent,
	}
	if c.httpClient == nil {
		// A drain runs many calls to one host at once; Go's default keeps
		// only 2 idle connections per host, so most calls would pay a new
		// TLS handshake.
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = 32
		c.httpClient = &http.Client{Timeout: DefaultTimeout, Transport: transport}
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		c.baseErr = fmt.Errorf("strava: invalid base URL %q: want http(s)://host[/path]", withoutQuery(base))
	}
	return c
}

// String keeps the client secret out of logs.
func (c *Client) String() string {
	return fmt.Sprintf("strava.Client{BaseURL: %q, ClientID: %q, ClientSecret: %s}", c.baseURL, c.clientID, redactedIfSet(c.clientSecret))
}

// GoString is String, for %#v.
func (c *Client) GoString() string { return c.String() }

func redactedIfSet(secret string) string {
	if secret == "" {
		return `""`
	}
	return redacted
}

// Response is Strava's answer with the rate limits it reported (Strava sends
// them on every answer). The body has already been read and closed.
type Response struct {
	*http.Response
	RateLimit RateLimit
}

// newRequest builds a request for path (e.g. "/api/v3/athlete") under the
// base URL. A non-nil form becomes an urlencoded body; accessToken, when
// set, goes in the Authorization header.
func (c *Client) newRequest(ctx context.Context, method, path string, query, form url.Values, accessToken string) (*http.Request, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, scrub(fmt.Errorf("strava: build %s %s: %w", method, path, err), c.clientSecret, accessToken)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	return req, nil
}

// Do sends req with ctx, reads the whole answer (at most 4 MiB), records
// its rate limits, turns a non-2xx answer into an *Error and decodes a 2xx
// JSON body into v when v is non-nil. The Response is returned whenever
// Strava answered, errors included, so callers can read its RateLimit.
// Errors never contain the access token or the client secret.
func (c *Client) Do(ctx context.Context, req *http.Request, v any) (*Response, error) {
	return c.do(ctx, req, v)
}

// do is Do that also blanks extraSecrets (values sent in the body, which Do
// cannot see) out of errors.
func (c *Client) do(ctx context.Context, req *http.Request, v any, extraSecrets ...string) (*Response, error) {
	if ctx == nil {
		return nil, errors.New("strava: nil context")
	}
	req = req.Clone(ctx)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	secrets := append([]string{c.clientSecret, bearerToken(req)}, extraSecrets...)
	what := req.Method + " " + req.URL.Path

	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, scrub(fmt.Errorf("strava: %s: %w", what, &transportError{err}), secrets...)
	}
	defer resp.Body.Close()
	response := &Response{Response: resp, RateLimit: ParseRateLimit(resp.Header)}

	body, err := readBody(resp.Body)
	if err != nil {
		if !errors.Is(err, errBodyTooLarge) {
			err = &transportError{err}
		}
		return response, scrub(fmt.Errorf("strava: %s: read answer: %w", what, err), secrets...)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return response, newError(resp, body, secrets...)
	}
	if v != nil && len(body) > 0 {
		if err := json.Unmarshal(body, v); err != nil {
			return response, fmt.Errorf("strava: %s: decode answer: %w", what, err)
		}
	}
	return response, nil
}

func bearerToken(req *http.Request) string {
	token, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	return token
}

var errBodyTooLarge = fmt.Errorf("answer larger than %d bytes", maxBodyBytes)

func readBody(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBodyBytes {
		return nil, errBodyTooLarge
	}
	return body, nil
}
