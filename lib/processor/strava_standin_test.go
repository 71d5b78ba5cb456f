package processor

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// standIn answers for Strava's GET /api/v3/activities/{id} and POST
// /oauth/token with the JSON bodies and headers Strava documents
// (/work/shared/strava/README.md), and counts every call.
//
// Access tokens are valid only when the stand-in issued them (or a test
// registered them); a refresh rotates both tokens, and the old refresh
// token is refused from then on, as at Strava. Rate limits are counted like
// Strava does: every request counts, also those over the limit, and a
// request that finds usage over a limit gets 429.
type standIn struct {
	t   testing.TB
	srv *httptest.Server
	now func() time.Time

	mu         sync.Mutex
	owners     map[int64]int64  // activity id → athlete id; absent: 404
	access     map[string]int64 // valid access token → athlete
	refresh    map[string]int64 // valid refresh token → athlete
	seq        int
	gets       map[int64]int // calls per activity id
	getTotal   int
	overLimit  int // GETs answered 429
	refreshes  int
	limit15    int
	limitDaily int
	usage15    int
	usageDaily int
	// exhaustAfter > 0: from the GET after that many, other clients are
	// taken to have used up the 15-minute window (usage jumps past it).
	exhaustAfter int
	// status, when set, forces an answer for a GET (call is its 1-based
	// number overall); 0 answers normally.
	status func(call int, id int64) int
	// refreshStatus, when set and non-zero, forces the token endpoint's
	// answer.
	refreshStatus func() int
	// delay is added to every GET.
	delay time.Duration
	// GETs numbered above blockAfter (when gate is set) wait for gate to
	// close or the caller to hang up, and say so on blocked.
	gate       chan struct{}
	blockAfter int
	blocked    chan int64
}

func newStandIn(t testing.TB, now func() time.Time) *standIn {
	s := &standIn{
		t:          t,
		now:        now,
		owners:     map[int64]int64{},
		access:     map[string]int64{},
		refresh:    map[string]int64{},
		gets:       map[int64]int{},
		limit15:    600,
		limitDaily: 30000,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v3/activities/{id}", s.getActivity)
	mux.HandleFunc("POST /oauth/token", s.token)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// athlete registers a connected athlete and returns their valid tokens.
func (s *standIn) athlete(id int64) (accessToken, refreshToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(id)
}

func (s *standIn) issueLocked(athlete int64) (accessToken, refreshToken string) {
	s.seq++
	accessToken = fmt.Sprintf("access-%d-%d", athlete, s.seq)
	refreshToken = fmt.Sprintf("refresh-%d-%d", athlete, s.seq)
	s.access[accessToken] = athlete
	s.refresh[refreshToken] = athlete
	return accessToken, refreshToken
}

// waitBlocked waits until n GETs are held at the gate; a drain that never
// makes them fails the test after a while instead of hanging it.
func (s *standIn) waitBlocked(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for i := range n {
		select {
		case <-s.blocked:
		case <-deadline:
			t.Fatalf("only %d of %d calls reached Strava", i, n)
		}
	}
}

// activity makes an activity exist at Strava.
func (s *standIn) activity(id, owner int64) {
	s.mu.Lock()
	s.owners[id] = owner
	s.mu.Unlock()
}

func (s *standIn) calls(id int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[id]
}

func (s *standIn) totalGets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getTotal
}

func (s *standIn) refreshCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

func (s *standIn) rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overLimit
}

// newWindow starts a fresh rate-limit window with nobody else using it.
func (s *standIn) newWindow() {
	s.mu.Lock()
	s.usage15, s.exhaustAfter = 0, 0
	s.mu.Unlock()
}

func (s *standIn) rateHeaders(w http.ResponseWriter) {
	w.Header().Set("X-RateLimit-Limit", fmt.Sprintf("%d,%d", s.limit15, s.limitDaily))
	w.Header().Set("X-RateLimit-Usage", fmt.Sprintf("%d,%d", s.usage15, s.usageDaily))
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

const (
	bodyUnauthorized = `{"message":"Authorization Error","errors":[{"resource":"Athlete","field":"access_token","code":"invalid"}]}`
	bodyNotFound     = `{"message":"Record Not Found","errors":[{"resource":"Activity","field":"id","code":"not found"}]}`
	bodyRateLimited  = `{"message":"Rate Limit Exceeded","errors":[{"resource":"Application","field":"rate limit","code":"exceeded"}]}`
	bodyBadRefresh   = `{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}`
)

func (s *standIn) getActivity(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		answer(w, http.StatusNotFound, bodyNotFound)
		return
	}
	s.mu.Lock()
	s.gets[id]++
	s.getTotal++
	call := s.getTotal
	s.usage15++
	s.usageDaily++
	if s.exhaustAfter > 0 && call > s.exhaustAfter {
		s.usage15 = max(s.usage15, s.limit15+call-s.exhaustAfter)
	}
	overLimit := s.usage15 > s.limit15 || s.usageDaily > s.limitDaily
	if overLimit {
		s.overLimit++
	}
	gate, block := s.gate, s.gate != nil && call > s.blockAfter
	delay := s.delay
	forced := 0
	if s.status != nil {
		forced = s.status(call, id)
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	_, tokenValid := s.access[token]
	owner, exists := s.owners[id]
	s.rateHeaders(w)
	s.mu.Unlock()

	if block {
		select {
		case s.blocked <- id:
		default:
		}
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}

	switch {
	case overLimit:
		answer(w, http.StatusTooManyRequests, bodyRateLimited)
	case forced == http.StatusUnauthorized:
		answer(w, forced, bodyUnauthorized)
	case forced == http.StatusServiceUnavailable:
		answer(w, forced, fmt.Sprintf(`{"message":"Service Unavailable (call %d)","errors":[]}`, call))
	case forced != 0:
		answer(w, forced, `{"message":"forced","errors":[]}`)
	case !tokenValid:
		answer(w, http.StatusUnauthorized, bodyUnauthorized)
	case !exists:
		answer(w, http.StatusNotFound, bodyNotFound)
	default:
		answer(w, http.StatusOK, activityJSON(id, owner))
	}
}

func (s *standIn) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "refresh_token" {
		answer(w, http.StatusBadRequest, `{"message":"Bad Request","errors":[{"resource":"Application","field":"grant_type","code":"invalid"}]}`)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshes++
	s.rateHeaders(w)
	if s.refreshStatus != nil {
		if status := s.refreshStatus(); status != 0 {
			answer(w, status, `{"message":"forced","errors":[]}`)
			return
		}
	}
	athlete, ok := s.refresh[r.PostForm.Get("refresh_token")]
	if !ok {
		answer(w, http.StatusBadRequest, bodyBadRefresh)
		return
	}
	delete(s.refresh, r.PostForm.Get("refresh_token"))
	accessToken, refreshToken := s.issueLocked(athlete)
	expiresAt := s.now().Add(6 * time.Hour)
	answer(w, http.StatusOK, fmt.Sprintf(`{"token_type":"Bearer","access_token":%q,"expires_at":%d,"expires_in":21600,"refresh_token":%q}`,
		accessToken, expiresAt.Unix(), refreshToken))
}

// activityStart is the start date the stand-in gives activity id.
func activityStart(id int64) time.Time {
	return time.Date(2030, 1, 6, 7, 0, 0, 0, time.UTC).Add(time.Duration(id%100000) * time.Minute)
}

func activityName(id int64) string { return fmt.Sprintf("Morning Run %d", id) }

// activityJSON is a DetailedActivity as Strava sends it, arrays included.
func activityJSON(id, owner int64) string {
	start := activityStart(id)
	return fmt.Sprintf(`{"id":%d,"resource_state":3,"external_id":"garmin_push_%d","upload_id":%d,`+
		`"athlete":{"id":%d,"resource_state":1},"name":%q,"distance":28099.0,"moving_time":4207,"elapsed_time":4410,`+
		`"total_elevation_gain":516.0,"type":"Ride","sport_type":"MountainBikeRide","start_date":%q,"start_date_local":%q,`+
		`"timezone":"(GMT-08:00) America/Los_Angeles","utc_offset":-28800,"start_latlng":[37.83,-122.26],"end_latlng":[37.83,-122.26],`+
		`"map":{"id":"a%d","polyline":"ki{eFvqfiVqAWQIGEEKAYJgBVqDJ{BHa@jAkNJw@Pw@V{APs@^aABQAOEQGKoJ_FuJkFqAo@{A}@sH{DiAs@Q]?WVy@","summary_polyline":"ki{eFvqfiVsBmA"},`+
		`"trainer":false,"commute":false,"manual":false,"private":false,"gear_id":"b12345678987654321",`+
		`"average_speed":6.679,"max_speed":18.5,"calories":870.2,"description":"",`+
		`"segment_efforts":[],"splits_metric":[],"laps":[]}`,
		id, id, id+1000, owner, activityName(id), start.Format(time.RFC3339), start.Add(-8*time.Hour).Format("2006-01-02T15:04:05Z"), id)
}
