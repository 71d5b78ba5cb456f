package processor

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// standIn is the processor tests' handle on the Strava double
// (lib/strava/stravatest), on the test's clock. The double rotates refresh
// tokens, answers with Strava's bodies and rate-limit headers and counts
// every call; the fields below are the tests' fault knobs, applied to
// activity GETs through the double's Intercept.
type standIn struct {
	*stravatest.Server
	t testing.TB

	mu sync.Mutex
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
	s := &standIn{t: t, Server: stravatest.NewT(t, stravatest.WithClock(now), stravatest.WithApp("5", "client-secret-for-tests"))}
	s.setLimits(600, 30000)
	s.Intercept(s.intercept)
	return s
}

// athlete connects athlete id at Strava and returns their valid tokens.
func (s *standIn) athlete(id int64) (accessToken, refreshToken string) {
	tok := s.IssueToken(id, "")
	return tok.AccessToken, tok.RefreshToken
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

// activity makes an activity exist at Strava, as activityFor describes it.
func (s *standIn) activity(id, owner int64) {
	s.AddActivity(activityFor(id, owner))
}

// answer is Strava's body for GET /api/v3/activities/{id}, byte for byte.
func (s *standIn) answer(id int64) string {
	body, ok := s.ActivityJSON(id)
	if !ok {
		s.t.Fatalf("no activity %d at Strava", id)
	}
	return string(body)
}

func (s *standIn) calls(id int64) int { return s.ActivityCalls(id) }
func (s *standIn) totalGets() int     { return s.Calls(stravatest.RouteActivity) }
func (s *standIn) refreshCalls() int  { return s.Calls(stravatest.RouteRefresh) }
func (s *standIn) rejected() int      { return s.RateLimited() }

// setLimits sets the overall limits (15-minute, daily); no read limits.
func (s *standIn) setLimits(limit15, limitDaily int) {
	rl := s.RateLimit()
	rl.Limit15, rl.LimitDaily, rl.ReadLimit15, rl.ReadLimitDaily = limit15, limitDaily, 0, 0
	s.SetRateLimit(rl)
}

// newWindow starts a fresh rate-limit window with nobody else using it.
func (s *standIn) newWindow() {
	rl := s.RateLimit()
	rl.Usage15, rl.ReadUsage15 = 0, 0
	s.SetRateLimit(rl)
	s.UseUpWindowAfter(0)
}

func (s *standIn) intercept(call stravatest.Call, w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	refreshStatus, status, delay := s.refreshStatus, s.status, s.delay
	gate, block := s.gate, s.gate != nil && call.N > s.blockAfter
	s.mu.Unlock()
	switch call.Route {
	case stravatest.RouteRefresh:
		if refreshStatus != nil {
			if forced := refreshStatus(); forced != 0 {
				stravatest.WriteStatus(w, forced)
				return true
			}
		}
		return false
	case stravatest.RouteActivity:
	default:
		return false
	}
	if block {
		select {
		case s.blocked <- call.ActivityID:
		default:
		}
		select {
		case <-gate:
		case <-r.Context().Done():
			return true
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return true
		}
	}
	if status != nil {
		switch forced := status(call.N, call.ActivityID); forced {
		case 0:
		case http.StatusServiceUnavailable:
			// The call's number in the message tells which answer a
			// dead event's last error came from.
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(forced)
			fmt.Fprintf(w, `{"message":"Service Unavailable (call %d)","errors":[]}`, call.N)
			return true
		default:
			stravatest.WriteStatus(w, forced)
			return true
		}
	}
	return false
}

// activityStart is the start date the stand-in gives activity id.
func activityStart(id int64) time.Time {
	return time.Date(2030, 1, 6, 7, 0, 0, 0, time.UTC).Add(time.Duration(id%100000) * time.Minute)
}

func activityName(id int64) string { return "Morning Run " + strconv.FormatInt(id, 10) }

// activityFor is the activity the stand-in keeps for id.
func activityFor(id, owner int64) strava.DetailedActivity {
	start := activityStart(id)
	return strava.DetailedActivity{
		ID: id, ExternalID: "garmin_push_" + strconv.FormatInt(id, 10), UploadID: id + 1000,
		Athlete: strava.MetaAthlete{ID: owner}, Name: activityName(id),
		Distance: 28099, MovingTime: 4207, ElapsedTime: 4410, TotalElevationGain: 516,
		Type: "Ride", SportType: "MountainBikeRide", StartDate: start,
		StartDateLocal: start.Add(-8 * time.Hour).Format("2006-01-02T15:04:05Z"),
		Timezone:       "(GMT-08:00) America/Los_Angeles", UTCOffset: -28800,
		StartLatLng: []float64{37.83, -122.26}, EndLatLng: []float64{37.83, -122.26},
		Map:    strava.PolylineMap{ID: "a" + strconv.FormatInt(id, 10), Polyline: "ki{eFvqfiVqAWQIGEEKAYJgBVqDJ{BHa@jAkNJw@Pw@V{APs@^aABQAOEQGKoJ_FuJkFqAo@{A}@sH{DiAs@Q]?WVy@", SummaryPolyline: "ki{eFvqfiVsBmA"},
		GearID: "b12345678987654321", AverageSpeed: 6.679, MaxSpeed: 18.5, Calories: 870.2,
	}
}

// athleteCalls counts GET /api/v3/athlete.
func (s *standIn) athleteCalls() int { return s.Calls(stravatest.RouteAthlete) }
