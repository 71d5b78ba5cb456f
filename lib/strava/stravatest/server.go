// Package stravatest is a Strava double: an HTTP server that speaks
// Strava's documented API closely enough for stravahook's tests, for
// `stravahook serve -sandbox`, and for users' own tests (in the spirit of
// net/http/httptest and miniredis).
//
// It serves OAuth (an approve page at /oauth/authorize that redirects back
// with a code and the state, /oauth/token for the code exchange and for
// refreshes that rotate the refresh token, /oauth/deauthorize),
// GET /api/v3/athlete, GET /api/v3/activities/{id} with realistic
// activities (polylines, several sports), and push subscriptions (create
// validates the callback with Strava's hub.challenge GET). Push sends an
// event to the subscribed callback the way Strava does: a 2 s timeout and
// up to three attempts.
//
// Knobs add latency, fail calls with any status (5xx, 429, 401), set the
// rate limits and their usage (every /api/v3 answer carries Strava's
// X-RateLimit-* and X-ReadRateLimit-* headers, and a call over a limit gets
// 429), and counters say how often each route was called. Revoke ends an
// athlete's grant.
//
// A few routes under /_sandbox/ (not Strava's) let another process drive
// the double: see Handler.
package stravatest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
)

// Defaults for a new Server.
const (
	DefaultClientID     = "12345"
	DefaultClientSecret = "stravatest-client-secret"
	// TokenLifetime is how long an access token lives, as at Strava.
	TokenLifetime = 6 * time.Hour
	// CodeLifetime is how long an authorization code may be exchanged.
	CodeLifetime = 10 * time.Minute
)

// Route names one kind of call, for Calls, FailNext and Call.
type Route string

// The routes the double counts.
const (
	RouteAuthorize          Route = "authorize"           // GET and POST /oauth/authorize
	RouteExchange           Route = "exchange"            // POST /oauth/token, grant_type=authorization_code
	RouteRefresh            Route = "refresh"             // POST /oauth/token, grant_type=refresh_token
	RouteDeauthorize        Route = "deauthorize"         // POST /oauth/deauthorize
	RouteAthlete            Route = "athlete"             // GET /api/v3/athlete
	RouteActivity           Route = "activity"            // GET /api/v3/activities/{id}
	RouteSubscriptionCreate Route = "subscription.create" // POST /api/v3/push_subscriptions
	RouteSubscriptionList   Route = "subscription.list"   // GET /api/v3/push_subscriptions
	RouteSubscriptionDelete Route = "subscription.delete" // DELETE /api/v3/push_subscriptions/{id}
	RoutePush               Route = "push"                // each delivery attempt to the callback
)

// Call describes a request the double is about to answer, for Intercept.
type Call struct {
	Route      Route
	N          int   // 1-based: this is the route's Nth call
	AthleteID  int64 // the token's athlete, 0 when unknown or invalid
	ActivityID int64 // for RouteActivity
}

// Server is a running Strava double. Its methods are safe for concurrent
// use.
type Server struct {
	// URL is the base URL to give as STRAVA_BASE_URL (strava.Options.BaseURL).
	URL          string
	ClientID     string
	ClientSecret string

	srv   *httptest.Server
	now   func() time.Time
	pushC *http.Client
	wg    sync.WaitGroup // pushes started by the double itself

	mu            sync.Mutex
	seq           int64
	athletes      map[int64]*athlete
	athleteOrder  []int64
	activities    map[int64]*strava.DetailedActivity
	access        map[string]grant
	refresh       map[string]grant
	codes         map[string]grant
	sub           *strava.Subscription
	calls         map[Route]int
	activityCalls map[int64]int
	limits        strava.RateLimit
	exhaustAfter  int // 0: off; else API calls allowed before others use up the window
	sinceExhaust  int // API calls since UseUpWindowAfter
	rateLimited   int // calls refused for being over a limit
	window15End   time.Time
	windowDayEnd  time.Time
	latency       time.Duration
	failures      []failure
	intercept     func(Call, http.ResponseWriter, *http.Request) bool
	wrap          func(w http.ResponseWriter, r *http.Request, next http.Handler)
	autoApprove   int64
	pushRetry     time.Duration
	closed        bool
}

type athlete struct {
	profile    strava.Athlete
	authorized bool
	scope      string
}

// grant is what a token or code stands for.
type grant struct {
	athlete   int64
	scope     string
	expiresAt time.Time
}

type failure struct {
	route     Route // "" = any counted route
	status    int
	remaining int
}

// Option configures a Server.
type Option func(*config)

type config struct {
	now          func() time.Time
	clientID     string
	clientSecret string
}

// WithClock makes the double read time from now (token expiry, rate-limit
// windows, event times), so tests can move time without sleeping.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithApp sets the API application's client id and secret the double
// accepts (default DefaultClientID and DefaultClientSecret).
func WithApp(clientID, clientSecret string) Option {
	return func(c *config) { c.clientID, c.clientSecret = clientID, clientSecret }
}

// NewServer starts a double on a free port of 127.0.0.1. Close it when
// done.
func NewServer(opts ...Option) *Server {
	c := config{now: time.Now, clientID: DefaultClientID, clientSecret: DefaultClientSecret}
	for _, o := range opts {
		o(&c)
	}
	s := &Server{
		ClientID:      c.clientID,
		ClientSecret:  c.clientSecret,
		now:           c.now,
		athletes:      map[int64]*athlete{},
		activities:    map[int64]*strava.DetailedActivity{},
		access:        map[string]grant{},
		refresh:       map[string]grant{},
		codes:         map[string]grant{},
		calls:         map[Route]int{},
		activityCalls: map[int64]int{},
		// A new application's limits at Strava.
		limits:    strava.RateLimit{Limit15: 200, LimitDaily: 2000, ReadLimit15: 100, ReadLimitDaily: 1000},
		pushRetry: time.Second,
		// Strava gives a callback 2 s to answer.
		pushC: &http.Client{Timeout: 2 * time.Second},
	}
	s.srv = httptest.NewServer(s.Handler())
	s.URL = s.srv.URL
	return s
}

// TB is the part of testing.TB that NewT needs.
type TB interface {
	Helper()
	Cleanup(func())
}

// NewT is NewServer closed when the test ends.
func NewT(t TB, opts ...Option) *Server {
	t.Helper()
	s := NewServer(opts...)
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and waits for the pushes it started.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	s.srv.Close()
}

// Client returns a strava.Client for this double with its application
// credentials.
func (s *Server) Client() *strava.Client {
	return strava.NewClient(strava.Options{BaseURL: s.URL, ClientID: s.ClientID, ClientSecret: s.ClientSecret})
}

// Handler is the double's routes, Strava's and the /_sandbox/ control
// routes:
//
//	POST /_sandbox/trigger   form kind=create|update|delete|deauthorize, athlete=ID, activity=ID → JSON TriggerResult
//	GET  /_sandbox/state     JSON: athletes, activities, subscription, counters
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oauth/authorize", s.authorizePage)
	mux.HandleFunc("POST /oauth/authorize", s.authorizeDecision)
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("POST /oauth/deauthorize", s.deauthorize)
	mux.HandleFunc("GET /api/v3/athlete", s.getAthlete)
	mux.HandleFunc("GET /api/v3/activities/{id}", s.getActivity)
	mux.HandleFunc("POST /api/v3/push_subscriptions", s.createSubscription)
	mux.HandleFunc("GET /api/v3/push_subscriptions", s.listSubscriptions)
	mux.HandleFunc("DELETE /api/v3/push_subscriptions/{id}", s.deleteSubscription)
	mux.HandleFunc("POST /_sandbox/trigger", s.triggerHandler)
	mux.HandleFunc("GET /_sandbox/state", s.stateHandler)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Record Not Found", "Path", "", "invalid")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		wrap := s.wrap
		s.mu.Unlock()
		if wrap == nil {
			mux.ServeHTTP(w, r)
			return
		}
		wrap(w, r, mux)
	})
}

// --- knobs ---

// SetLatency delays every answer of Strava's routes by d (0: none).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// FailNext answers the next n calls of route (every counted route when
// route is "") with status and Strava's body for it: 401 Authorization
// Error, 404 Record Not Found, 429 Rate Limit Exceeded, 5xx a server error.
// The calls are still counted.
func (s *Server) FailNext(route Route, n int, status int) {
	s.mu.Lock()
	s.failures = append(s.failures, failure{route: route, status: status, remaining: n})
	s.mu.Unlock()
}

// Intercept runs f on every call of Strava's routes after it is counted
// and before it is answered; when f returns true it has answered itself.
// f may block (a test holding a call open) and runs without the double's
// lock, so it may call the double's methods. nil removes it.
func (s *Server) Intercept(f func(c Call, w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.intercept = f
	s.mu.Unlock()
}

// Wrap puts f around every request: f may answer itself, or let the
// double answer by calling next (into w, or into a recorder) and then do
// more — e.g. hold the call open after a refresh rotated the tokens, so
// that the caller never learns the new ones. nil removes it.
func (s *Server) Wrap(f func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	s.mu.Lock()
	s.wrap = f
	s.mu.Unlock()
}

// SetRateLimit sets the limits and the usage of the current windows, as
// Strava reports them: Limit15/LimitDaily and Usage15/UsageDaily for every
// /api/v3 call, the Read pair for GETs. A zero limit is unlimited.
func (s *Server) SetRateLimit(rl strava.RateLimit) {
	s.mu.Lock()
	s.rollWindowsLocked()
	s.limits = rl
	s.mu.Unlock()
}

// UseUpWindowAfter lets n more API calls through, after which other
// clients of the application are taken to have used up the 15-minute
// window: usage jumps past the limit and calls get 429 until the window
// ends (or SetRateLimit lowers the usage). 0 turns it off.
func (s *Server) UseUpWindowAfter(n int) {
	s.mu.Lock()
	s.exhaustAfter, s.sinceExhaust = n, 0
	s.mu.Unlock()
}

// RateLimited is how many calls were refused with 429 for being over a
// limit (FailNext's are not counted).
func (s *Server) RateLimited() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateLimited
}

// RateLimit is the limits and usage the next answer would report.
func (s *Server) RateLimit() strava.RateLimit {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollWindowsLocked()
	return s.limits
}

// SetPushRetryDelay sets the pause between delivery attempts of a push
// (default 1 s).
func (s *Server) SetPushRetryDelay(d time.Duration) {
	s.mu.Lock()
	s.pushRetry = d
	s.mu.Unlock()
}

// AutoApprove makes GET /oauth/authorize approve at once as athleteID
// (Strava skips its page with approval_prompt=auto for an athlete who
// approved before), so a client that only follows redirects completes the
// flow. 0 shows the page again.
func (s *Server) AutoApprove(athleteID int64) {
	s.mu.Lock()
	s.autoApprove = athleteID
	s.mu.Unlock()
}

// Calls is how many calls route has had.
func (s *Server) Calls(route Route) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

// ActivityCalls is how many GET /api/v3/activities/{id} calls asked for id.
func (s *Server) ActivityCalls(id int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.activityCalls[id]
}

// --- request plumbing ---

// begin counts a call of route, applies the rate limits for /api/v3 calls
// (api), the latency, the failures and the intercept. It returns false
// when the call was answered already.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, route Route, api bool, activityID int64) bool {
	s.mu.Lock()
	s.calls[route]++
	call := Call{Route: route, N: s.calls[route], ActivityID: activityID}
	if activityID != 0 {
		s.activityCalls[activityID]++
	}
	if g, ok := s.validAccessLocked(r); ok {
		call.AthleteID = g.athlete
	}
	overLimit := false
	if api {
		s.rollWindowsLocked()
		l := &s.limits
		l.Usage15++
		l.UsageDaily++
		if r.Method == http.MethodGet {
			l.ReadUsage15++
			l.ReadUsageDaily++
		}
		s.sinceExhaust++
		if s.exhaustAfter > 0 && s.sinceExhaust > s.exhaustAfter {
			l.Usage15 = max(l.Usage15, l.Limit15+s.sinceExhaust-s.exhaustAfter)
		}
		// Requests over a limit still count, as at Strava.
		overLimit = over(l.Usage15, l.Limit15) || over(l.UsageDaily, l.LimitDaily) ||
			(r.Method == http.MethodGet && (over(l.ReadUsage15, l.ReadLimit15) || over(l.ReadUsageDaily, l.ReadLimitDaily)))
		setRateHeaders(w.Header(), *l)
		if overLimit {
			s.rateLimited++
		}
	}
	forced := 0
	for i := range s.failures {
		f := &s.failures[i]
		if f.remaining > 0 && (f.route == "" || f.route == route) {
			f.remaining--
			forced = f.status
			break
		}
	}
	latency, intercept := s.latency, s.intercept
	s.mu.Unlock()

	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return false
		}
	}
	if intercept != nil && intercept(call, w, r) {
		return false
	}
	switch {
	case forced != 0:
		WriteStatus(w, forced)
		return false
	case overLimit:
		WriteStatus(w, http.StatusTooManyRequests)
		return false
	}
	return true
}

func over(usage, limit int) bool { return limit > 0 && usage > limit }

// rollWindowsLocked starts new rate-limit windows when the clock passed a
// quarter hour or midnight UTC.
func (s *Server) rollWindowsLocked() {
	now := s.now()
	if s.window15End.IsZero() {
		s.window15End, s.windowDayEnd = strava.NextQuarterHour(now), strava.NextUTCMidnight(now)
		return
	}
	if !now.Before(s.window15End) {
		s.limits.Usage15, s.limits.ReadUsage15 = 0, 0
		s.window15End = strava.NextQuarterHour(now)
		s.exhaustAfter = 0
	}
	if !now.Before(s.windowDayEnd) {
		s.limits.UsageDaily, s.limits.ReadUsageDaily = 0, 0
		s.windowDayEnd = strava.NextUTCMidnight(now)
	}
}

func setRateHeaders(h http.Header, l strava.RateLimit) {
	h.Set("X-RateLimit-Limit", fmt.Sprintf("%d,%d", l.Limit15, l.LimitDaily))
	h.Set("X-RateLimit-Usage", fmt.Sprintf("%d,%d", l.Usage15, l.UsageDaily))
	h.Set("X-ReadRateLimit-Limit", fmt.Sprintf("%d,%d", l.ReadLimit15, l.ReadLimitDaily))
	h.Set("X-ReadRateLimit-Usage", fmt.Sprintf("%d,%d", l.ReadUsage15, l.ReadUsageDaily))
}

// accessToken is the request's token: the bearer's, else the
// access_token parameter.
func accessToken(r *http.Request) string {
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return token
	}
	return r.FormValue("access_token")
}

// validAccessLocked is the grant of the request's access token, if valid
// now and its athlete still authorized.
func (s *Server) validAccessLocked(r *http.Request) (grant, bool) {
	token := accessToken(r)
	g, ok := s.access[token]
	if !ok || token == "" || !s.now().Before(g.expiresAt) {
		return grant{}, false
	}
	if a := s.athletes[g.athlete]; a == nil || !a.authorized {
		return grant{}, false
	}
	return g, true
}

func (s *Server) appCredentialsOK(r *http.Request) bool {
	return r.FormValue("client_id") == s.ClientID && r.FormValue("client_secret") == s.ClientSecret
}

// WriteStatus answers status with Strava's documented body for it: 401
// Authorization Error, 404 Record Not Found, 429 Rate Limit Exceeded,
// others the status text with no details (for an Intercept's own answers).
func WriteStatus(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusUnauthorized:
		writeError(w, status, "Authorization Error", "Athlete", "access_token", "invalid")
	case http.StatusNotFound:
		writeError(w, status, "Record Not Found", "Activity", "id", "not found")
	case http.StatusTooManyRequests:
		writeError(w, status, "Rate Limit Exceeded", "Application", "rate limit", "exceeded")
	default:
		writeJSON(w, status, errorBody{Message: http.StatusText(status), Errors: []strava.ErrorDetail{}})
	}
}

type errorBody struct {
	Message string               `json:"message"`
	Errors  []strava.ErrorDetail `json:"errors"`
}

func writeError(w http.ResponseWriter, status int, message, resource, field, code string) {
	writeJSON(w, status, errorBody{Message: message, Errors: []strava.ErrorDetail{{Resource: resource, Field: field, Code: code}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// randomToken is a token in Strava's shape: 40 hex digits.
func randomToken() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
