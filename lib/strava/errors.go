package strava

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error is every non-2xx answer from Strava, from the API and the OAuth
// endpoints alike. Message and Errors come from Strava's JSON body, e.g.
// {"message":"Record Not Found","errors":[{"resource":"Activity","field":"id","code":"not found"}]}.
type Error struct {
	StatusCode int           `json:"-"`
	Message    string        `json:"message"`
	Errors     []ErrorDetail `json:"errors"`
	RateLimit  RateLimit     `json:"-"` // parsed from the answer's headers (zero if none)
	RetryAfter time.Duration `json:"-"` // from Retry-After if present
}

// ErrorDetail is one entry of Strava's "errors" array.
type ErrorDetail struct {
	Resource string `json:"resource"`
	Field    string `json:"field"`
	Code     string `json:"code"`
}

// Error reads like `strava: 404 Record Not Found (Activity id not found)`.
// It holds only what Strava's body said (scrubbed of our secrets by the
// client), never a token or the client secret.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("strava: ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	if msg != "" {
		b.WriteString(" ")
		b.WriteString(msg)
	}
	var details []string
	for _, d := range e.Errors {
		var parts []string
		for _, p := range []string{d.Resource, d.Field, d.Code} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		if len(parts) > 0 {
			details = append(details, strings.Join(parts, " "))
		}
	}
	if len(details) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(details, "; "))
		b.WriteString(")")
	}
	return b.String()
}

// Bounds on what an error keeps of a body: enough to diagnose, not enough to
// carry a whole HTML page into logs.
const (
	maxErrorMessage = 200
	maxErrorDetails = 10
)

// newError builds the *Error for a non-2xx answer. A body that is not
// Strava's JSON (a proxy's HTML page, an empty 502) keeps the status text.
// secrets are blanked out before anything is shortened, so that no prefix
// of one survives.
func newError(resp *http.Response, body []byte, secrets ...string) *Error {
	e := &Error{StatusCode: resp.StatusCode, RateLimit: ParseRateLimit(resp.Header)}
	var parsed struct {
		Message string        `json:"message"`
		Errors  []ErrorDetail `json:"errors"`
	}
	if json.Unmarshal(body, &parsed) == nil {
		e.Message = parsed.Message
		e.Errors = parsed.Errors[:min(len(parsed.Errors), maxErrorDetails)]
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	_ = scrub(e, secrets...)
	e.Message = truncate(e.Message, maxErrorMessage)
	for i := range e.Errors {
		d := &e.Errors[i]
		d.Resource = truncate(d.Resource, maxErrorMessage)
		d.Field = truncate(d.Field, maxErrorMessage)
		d.Code = truncate(d.Code, maxErrorMessage)
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		const maxSecs = int64(7 * 24 * time.Hour / time.Second)
		return time.Duration(min(max(secs, 0), maxSecs)) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Drops the part of a rune the cut splits (and any other invalid
	// bytes), so that the result is valid UTF-8.
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// IsNotFound reports whether err is Strava's 404: the object is gone, or
// private to an athlete whose token lacks the scope to see it.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsUnauthorized reports whether err is Strava's 401: the access token is
// expired, revoked, or lacks the scope.
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

// IsRateLimited reports whether err is Strava's 429.
func IsRateLimited(err error) bool { return hasStatus(err, http.StatusTooManyRequests) }

// IsRefreshRefused reports whether the token endpoint turned a refresh
// token (or authorization code) down: Strava's own 400 or 401 answer, with
// its JSON error details, e.g.
// {"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}.
// For a refresh token that means the athlete revoked our access or the
// token was already rotated away. Only meaningful for errors from
// RefreshToken and ExchangeCode.
//
// Callers stop using the athlete's tokens on it (and delete their data when a
// deauthorization event said so), so anything less certain is not
// a refusal: another 4xx (a wrong STRAVA_BASE_URL answers 404, a proxy 403
// or 408), a body that is not Strava's JSON, and a refusal of our own
// application credentials (a wrong client id or secret).
func IsRefreshRefused(err error) bool {
	var e *Error
	if !errors.As(err, &e) || (e.StatusCode != http.StatusBadRequest && e.StatusCode != http.StatusUnauthorized) {
		return false
	}
	return len(e.Errors) > 0 && !IsAppCredentialsRejected(err)
}

// IsAppCredentialsRejected reports whether Strava refused our application's
// client id or secret, e.g. {"resource":"Application","field":"client_secret","code":"invalid"}.
func IsAppCredentialsRejected(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.StatusCode/100 != 4 {
		return false
	}
	for _, d := range e.Errors {
		if strings.EqualFold(d.Resource, "Application") || d.Field == "client_id" || d.Field == "client_secret" {
			return true
		}
	}
	return false
}

// IsTransient reports whether err is worth retrying later: a 5xx (or 408)
// from Strava, or no complete answer at all (timeout, cancelled context,
// refused or reset connection, truncated body). Strava's 4xx verdicts,
// 429 included, are not transient: they need a different reaction.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout
	}
	var te *transportError
	var ne net.Error
	return errors.As(err, &te) ||
		errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}

func hasStatus(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == code
}

// transportError marks a request that got no complete answer from Strava,
// so that IsTransient recognizes it even when the cause is not a net.Error.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// redactedError is err with our secrets blanked out of its message; Unwrap
// keeps errors.Is/As working.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

const redacted = "[REDACTED]"

// minSecretLen keeps redaction from mangling messages over a trivially short
// "secret" (Strava's secrets and tokens are 40 hex digits).
const minSecretLen = 6

// scrub removes every secret from err's message: from an *Error's fields in
// place, and from any other error by wrapping it. A *url.Error also loses
// its query string, where the client secret travels on GET and DELETE.
func scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	var forms []string
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			forms = append(forms, s)
			if q := url.QueryEscape(s); q != s {
				forms = append(forms, q)
			}
		}
	}
	clean := func(s string) string {
		for _, f := range forms {
			s = strings.ReplaceAll(s, f, redacted)
		}
		return s
	}
	var se *Error
	if errors.As(err, &se) {
		se.Message = clean(se.Message)
		for i := range se.Errors {
			d := &se.Errors[i]
			d.Resource, d.Field, d.Code = clean(d.Resource), clean(d.Field), clean(d.Code)
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = withoutQuery(ue.URL)
	}
	if msg := err.Error(); clean(msg) != msg {
		return &redactedError{msg: clean(msg), err: err}
	}
	return err
}

func withoutQuery(raw string) string {
	raw, _, _ = strings.Cut(raw, "#")
	raw, _, _ = strings.Cut(raw, "?")
	return raw
}
