package connect

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// Start is GET /api/connect: a 302 to Strava's authorize page, with a fresh
// state also set in the browser's state cookie.
func (p *Pages) Start() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.finish(w, r, "connect start", p.start(w, r))
	})
}

// Callback is GET /api/connect_callback, where Strava sends the browser
// back: it checks the state, exchanges the code and stores the athlete.
func (p *Pages) Callback() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.finish(w, r, "connect callback", p.callback(w, r))
	})
}

// result is what a request came to: the answer and its one log line.
type result struct {
	status    int
	outcome   string
	location  string // the redirect, for a 302
	page      page   // the answer otherwise
	athleteID int64
	attrs     []slog.Attr
	err       error // logged, never shown
}

// finish answers and logs one line. Nothing secret is in a result: the
// state and code stay out of it, and errors from strava and store carry no
// token.
func (p *Pages) finish(w http.ResponseWriter, r *http.Request, msg string, res result) {
	attrs := []slog.Attr{slog.String("outcome", res.outcome), slog.Int("status", res.status)}
	if res.athleteID != 0 {
		attrs = append(attrs, slog.Int64("athlete_id", res.athleteID))
	}
	attrs = append(attrs, res.attrs...)
	if res.err != nil {
		attrs = append(attrs, slog.String("error", res.err.Error()))
	}
	level := slog.LevelInfo
	switch {
	case res.status >= 500:
		level = slog.LevelError
	case res.status >= 400:
		level = slog.LevelWarn
	}
	p.logger.LogAttrs(r.Context(), level, msg, attrs...)

	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the callback's URL holds the code
	if res.status == http.StatusFound {
		h.Set("Location", res.location)
		w.WriteHeader(http.StatusFound)
		return
	}
	if res.status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodGet)
	}
	writePage(w, res.status, res.page)
}

func methodNotAllowed() result {
	return result{
		status: http.StatusMethodNotAllowed, outcome: "method_not_allowed",
		page: page{Title: "Method not allowed", Paragraphs: []string{"This page only answers GET: open it in a browser."}},
	}
}

func (p *Pages) misconfigured(reason string) result {
	return result{
		status: http.StatusInternalServerError, outcome: "misconfigured",
		err: errors.New(reason),
		page: page{Title: "stravahook is not set up", Paragraphs: []string{
			"Connecting to Strava is not possible yet: " + reason + ".",
			"The operator of this deployment must configure it; the logs say the same.",
		}},
	}
}

func (p *Pages) start(w http.ResponseWriter, r *http.Request) result {
	if r.Method != http.MethodGet {
		return methodNotAllowed()
	}
	if reason := p.misconfiguration(); reason != "" {
		return p.misconfigured(reason)
	}
	o, err := p.origin(r)
	if err != nil {
		return result{
			status: http.StatusBadRequest, outcome: "bad_host", err: err,
			page: page{Title: "Cannot connect", Paragraphs: []string{
				"This request does not say under which address stravahook is reached, so Strava could not send you back here.",
				"The operator can set PUBLIC_URL to fix this.",
			}},
		}
	}
	state, err := newState()
	if err != nil {
		return result{
			status: http.StatusInternalServerError, outcome: "no_randomness", err: err,
			page: page{Title: "Cannot connect", Paragraphs: []string{"Something went wrong on our side; please try again."}, Retry: "Try again"},
		}
	}
	setStateCookie(w, signState(p.cfg.StateSecret, state, p.cfg.Now().Add(StateTTL)), o.secure)
	redirectURI := o.base + CallbackPath
	return result{
		status: http.StatusFound, outcome: "redirected",
		location: p.oauth.AuthCodeURL(state, redirectURI, p.scope),
		attrs:    []slog.Attr{slog.String("redirect_uri", redirectURI), slog.String("scope", p.scope)},
	}
}

func (p *Pages) callback(w http.ResponseWriter, r *http.Request) result {
	if r.Method != http.MethodGet {
		return methodNotAllowed()
	}
	if reason := p.misconfiguration(); reason != "" {
		return p.misconfigured(reason)
	}
	// Without a usable origin the cookie's Secure flag is a guess; the
	// cookie is only cleared with it, so a wrong guess costs nothing.
	o, _ := p.origin(r)
	q := r.URL.Query()

	if stravaErr := q.Get("error"); stravaErr != "" {
		clearStateCookie(w, o.secure)
		if stravaErr == "access_denied" {
			return result{
				status: http.StatusOK, outcome: "declined",
				page: page{Title: "Not connected", Paragraphs: []string{
					"You declined to authorize stravahook on Strava, so nothing was connected and nothing was stored.",
				}, Retry: "Try again"},
			}
		}
		code := truncate(stravaErr, 100)
		return result{
			status: http.StatusBadRequest, outcome: "strava_error",
			attrs: []slog.Attr{slog.String("strava_error", code)},
			page: page{Title: "Not connected", Paragraphs: []string{
				"Strava did not authorize stravahook (" + code + "), so nothing was connected and nothing was stored.",
			}, Retry: "Try again"},
		}
	}

	state, code := q.Get("state"), q.Get("code")
	if state == "" || code == "" {
		return result{
			status: http.StatusBadRequest, outcome: "missing_parameters",
			page: page{Title: "Not connected", Paragraphs: []string{
				"This page is where Strava sends you back after you authorize stravahook, with a state and a code; this request lacks them.",
			}, Retry: "Start at /api/connect"},
		}
	}
	if err := checkStateCookies(p.cfg.StateSecret, r, state, p.cfg.Now()); err != nil {
		if !errors.Is(err, errStateMismatch) && !errors.Is(err, errStateNoCookie) {
			// Spent or unusable anyway. A mismatching cookie is kept: it may
			// belong to a connection this browser is making right now, and
			// the mismatching link may be someone else's.
			clearStateCookie(w, o.secure)
		}
		return result{
			status: http.StatusForbidden, outcome: stateOutcome(err), err: err,
			page: notConnected("This authorization was not started in this browser, or it took longer than " +
				strconv.Itoa(int(StateTTL.Minutes())) + " minutes, so stravahook did not use it. Nothing was stored."),
		}
	}
	clearStateCookie(w, o.secure)
	if res, spent := p.spendState(r.Context(), state); spent {
		return res
	}

	// Strava reports on the redirect which scopes the athlete left ticked.
	// Checked before the exchange: no token is minted that we would throw
	// away.
	granted := q.Get("scope")
	scopeAttr := slog.String("scope", granted)
	if !grantsActivityRead(granted) {
		return result{
			status: http.StatusForbidden, outcome: "insufficient_scope", attrs: []slog.Attr{scopeAttr},
			page: page{Title: "Not connected: activity access needed", Paragraphs: []string{
				"You authorized stravahook without access to your activities (granted: " + describeScope(granted) + ").",
				"Without it, Strava's webhooks would bring nothing stravahook could read, so nothing was stored.",
				"Connect again and leave the box for viewing your activities ticked. (If Strava does not ask again, revoke stravahook in Strava's settings, under My Apps, first.)",
			}, Retry: "Connect again"},
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), ExchangeTimeout)
	tok, err := p.oauth.ExchangeCode(ctx, code)
	cancel()
	if err != nil {
		return exchangeFailure(err, scopeAttr)
	}
	if tok == nil || tok.Athlete == nil || tok.Athlete.ID <= 0 || tok.RefreshToken == "" {
		return result{
			status: http.StatusBadGateway, outcome: "bad_token_answer", attrs: []slog.Attr{scopeAttr},
			err:  errors.New("strava's token answer lacks the athlete or the refresh token"),
			page: notConnected("Strava's answer did not say which athlete authorized stravahook, so nothing was stored."),
		}
	}

	athlete := store.Athlete{
		ID:           tok.Athlete.ID,
		Name:         tok.Athlete.Name(),
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		ExpiresAt:    tok.ExpiresAt,
		Scope:        granted,
		ConnectedAt:  p.cfg.Now(),
	}
	ctx, cancel = context.WithTimeout(r.Context(), SaveTimeout)
	err = p.athletes.SaveAthlete(ctx, athlete)
	cancel()
	if err != nil {
		return result{
			status: http.StatusServiceUnavailable, outcome: "save_failed", athleteID: athlete.ID,
			attrs: []slog.Attr{scopeAttr}, err: err,
			page: notConnected("Strava authorized stravahook for " + athlete.Name + ", but storing the authorization failed. Please try again in a moment."),
		}
	}
	return result{
		status: http.StatusOK, outcome: "connected", athleteID: athlete.ID, attrs: []slog.Attr{scopeAttr},
		page: page{
			Title: "Connected " + athlete.Name + " (athlete " + strconv.FormatInt(athlete.ID, 10) + ")",
			Paragraphs: []string{
				"stravahook will now keep the new activities you record on Strava (for at most 7 days, as Strava's terms allow).",
				"You can revoke its access at any time in Strava's settings, under My Apps.",
			},
		},
	}
}

// spendState marks state as used; a state used before (a replayed
// callback) or a failure to record it ends the request with the result.
func (p *Pages) spendState(ctx context.Context, state string) (result, bool) {
	if p.cfg.SpendState == nil {
		return result{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, SaveTimeout)
	first, err := p.cfg.SpendState(ctx, state, StateTTL)
	cancel()
	switch {
	case err != nil:
		return result{
			status: http.StatusServiceUnavailable, outcome: "state_not_recorded", err: err,
			page: notConnected("Something went wrong on our side, so nothing was stored. Please try again in a moment."),
		}, true
	case !first:
		return result{
			status: http.StatusForbidden, outcome: "state_replayed", err: errStateReplayed,
			page: notConnected("This authorization was already used once, so stravahook did not use it again. Nothing was stored."),
		}, true
	}
	return result{}, false
}

func exchangeFailure(err error, scopeAttr slog.Attr) result {
	res := result{attrs: []slog.Attr{scopeAttr}, err: err}
	var se *strava.Error
	switch {
	case errors.As(err, &se) && se.StatusCode == http.StatusTooManyRequests:
		res.status, res.outcome = http.StatusServiceUnavailable, "rate_limited"
		res.page = notConnected("Strava is limiting how often stravahook may call it right now. Please start again in a few minutes.")
	case errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode <= 499:
		// Codes are single-use and short-lived: a reload of this page, or a
		// slow one, lands here.
		res.status, res.outcome = http.StatusBadRequest, "code_refused"
		res.page = notConnected("Strava refused the authorization code (it may have been used already, or expired), so nothing was stored.")
	default:
		res.status, res.outcome = http.StatusBadGateway, "exchange_failed"
		res.page = notConnected("stravahook could not reach Strava to complete the authorization, so nothing was stored. Please try again.")
	}
	return res
}

func stateOutcome(err error) string {
	switch {
	case errors.Is(err, errStateNoCookie):
		return "state_without_cookie"
	case errors.Is(err, errStateExpired):
		return "state_expired"
	case errors.Is(err, errStateMismatch):
		return "state_mismatch"
	default:
		return "state_forged"
	}
}

// grantsActivityRead says whether scope (Strava's comma-separated list)
// lets us read the athlete's activities.
func grantsActivityRead(scope string) bool {
	for s := range strings.FieldsFuncSeq(scope, func(r rune) bool { return r == ',' || r == ' ' }) {
		if s == "activity:read" || s == "activity:read_all" {
			return true
		}
	}
	return false
}

func describeScope(scope string) string {
	if strings.TrimSpace(scope) == "" {
		return "none reported"
	}
	return truncate(scope, 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) > n {
		r = r[:n]
	}
	return string(r) + "…"
}

// page is one small HTML answer. Retry, when set, is the text of a link to
// /api/connect.
type page struct {
	Title      string
	Paragraphs []string
	Retry      string
}

// notConnected is the page of a connection that failed, with a link to
// start again.
func notConnected(text string) page {
	return page{Title: "Not connected", Paragraphs: []string{text}, Retry: "Start again at /api/connect"}
}

// pageTemplate escapes everything it is given (html/template): athlete
// names and Strava's error codes are not ours.
var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · stravahook</title>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Paragraphs}}<p>{{.}}</p>
{{end}}{{with .Retry}}<p><a href="/api/connect">{{.}}</a></p>
{{end}}</body>
</html>
`))

func writePage(w http.ResponseWriter, status int, pg page) {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, pg); err != nil {
		// Only a bug in the template gets here; the page data are strings.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
