package stravatest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
)

// FullScope is the scope an athlete grants when the authorize request asks
// for none, and what IssueToken grants.
const FullScope = "read,activity:read_all"

// AddAthlete makes an athlete exist at Strava (not yet connected to the
// application: use the OAuth flow or IssueToken). A zero ID gets a fresh
// one. It returns the athlete as stored.
func (s *Server) AddAthlete(a strava.Athlete) strava.Athlete {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.ID == 0 {
		s.seq++
		a.ID = 134815 + s.seq*1000
	}
	a.ResourceState = 3
	*s.athleteLocked(a.ID) = athlete{profile: a}
	return a
}

// athleteLocked is athleteID's record, added (unauthorized) when unknown.
func (s *Server) athleteLocked(athleteID int64) *athlete {
	a := s.athletes[athleteID]
	if a == nil {
		a = &athlete{profile: strava.Athlete{ID: athleteID, ResourceState: 3}}
		s.athletes[athleteID] = a
		s.athleteOrder = append(s.athleteOrder, athleteID)
	}
	return a
}

// IssueToken connects athleteID to the application as if they had
// approved scope (FullScope when empty) and returns fresh tokens, valid
// for TokenLifetime. The athlete is added when unknown.
func (s *Server) IssueToken(athleteID int64, scope string) strava.Token {
	if scope == "" {
		scope = FullScope
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.athleteLocked(athleteID)
	a.authorized, a.scope = true, scope
	return s.issueLocked(athleteID, scope)
}

func (s *Server) issueLocked(athleteID int64, scope string) strava.Token {
	expires := s.now().Add(TokenLifetime).Truncate(time.Second)
	g := grant{athlete: athleteID, scope: scope, expiresAt: expires}
	tok := strava.Token{AccessToken: randomToken(), RefreshToken: randomToken(), ExpiresAt: expires.UTC(), Scope: scope}
	s.access[tok.AccessToken] = g
	s.refresh[tok.RefreshToken] = g
	return tok
}

// Revoke ends athleteID's grant as if they removed the application in
// their Strava settings: every token stops working (API calls answer 401,
// refreshes 400). It sends no event; Trigger's TriggerDeauthorize does both.
func (s *Server) Revoke(athleteID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revokeLocked(athleteID)
}

func (s *Server) revokeLocked(athleteID int64) {
	if a := s.athletes[athleteID]; a != nil {
		a.authorized = false
	}
	for tok, g := range s.access {
		if g.athlete == athleteID {
			delete(s.access, tok)
		}
	}
	for tok, g := range s.refresh {
		if g.athlete == athleteID {
			delete(s.refresh, tok)
		}
	}
}

// Athletes are the athletes that exist at the double, in the order added.
func (s *Server) Athletes() []strava.Athlete {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]strava.Athlete, 0, len(s.athleteOrder))
	for _, id := range s.athleteOrder {
		out = append(out, s.athletes[id].profile)
	}
	return out
}

// Authorized reports whether athleteID has a grant to the application.
func (s *Server) Authorized(athleteID int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.athletes[athleteID]
	return a != nil && a.authorized
}

// AddActivity stores a as an activity at Strava; a zero ID gets a fresh
// one (above 2^32, like Strava's). It returns the activity as stored.
func (s *Server) AddActivity(a strava.DetailedActivity) strava.DetailedActivity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.ID == 0 {
		a.ID = s.nextActivityIDLocked()
	}
	a.ResourceState = 3
	a.Athlete.ResourceState = 1
	stored := a
	s.activities[a.ID] = &stored
	return a
}

func (s *Server) nextActivityIDLocked() int64 {
	s.seq++
	return 12_312_312_312 + s.seq*7
}

// NewActivity makes up a realistic activity of sport (Run, Ride,
// MountainBikeRide, Walk, Hike, Swim, VirtualRide; "" picks one) for
// athleteID that ended a moment ago, stores it and returns it.
func (s *Server) NewActivity(athleteID int64, sport string) strava.DetailedActivity {
	s.mu.Lock()
	id := s.nextActivityIDLocked()
	now := s.now()
	s.mu.Unlock()
	return s.AddActivity(sampleActivity(id, athleteID, sport, now))
}

// Activity is the stored activity id.
func (s *Server) Activity(id int64) (strava.DetailedActivity, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.activities[id]
	if !ok {
		return strava.DetailedActivity{}, false
	}
	return *a, true
}

// Activities are athleteID's activities, newest first.
func (s *Server) Activities(athleteID int64) []strava.DetailedActivity {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []strava.DetailedActivity
	for _, a := range s.activities {
		if a.Athlete.ID == athleteID {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b strava.DetailedActivity) int {
		if c := b.StartDate.Compare(a.StartDate); c != 0 {
			return c
		}
		return int(b.ID - a.ID)
	})
	return out
}

// UpdateActivity changes the stored activity id with change; false when
// there is none.
func (s *Server) UpdateActivity(id int64, change func(*strava.DetailedActivity)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.activities[id]
	if ok {
		change(a)
		a.ID = id
	}
	return ok
}

// DeleteActivity removes activity id: GETs answer 404 from then on.
func (s *Server) DeleteActivity(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.activities[id]
	delete(s.activities, id)
	return ok
}

// --- handlers ---

func (s *Server) getAthlete(w http.ResponseWriter, r *http.Request) {
	if !s.begin(w, r, RouteAthlete, true, 0) {
		return
	}
	s.mu.Lock()
	g, ok := s.validAccessLocked(r)
	var profile strava.Athlete
	if ok {
		profile = s.athletes[g.athlete].profile
	}
	s.mu.Unlock()
	if !ok {
		WriteStatus(w, http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, profile)
}

// wireActivity is a DetailedActivity as Strava sends it, with the arrays
// and counters stravahook does not keep.
type wireActivity struct {
	strava.DetailedActivity
	AchievementCount int   `json:"achievement_count"`
	KudosCount       int   `json:"kudos_count"`
	CommentCount     int   `json:"comment_count"`
	AthleteCount     int   `json:"athlete_count"`
	PhotoCount       int   `json:"photo_count"`
	Flagged          bool  `json:"flagged"`
	SegmentEfforts   []any `json:"segment_efforts"`
	SplitsMetric     []any `json:"splits_metric"`
	Laps             []any `json:"laps"`
}

func (s *Server) getActivity(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		if s.begin(w, r, RouteActivity, true, 0) {
			WriteStatus(w, http.StatusNotFound)
		}
		return
	}
	if !s.begin(w, r, RouteActivity, true, id) {
		return
	}
	s.mu.Lock()
	g, tokenOK := s.validAccessLocked(r)
	var act *strava.DetailedActivity
	if a, ok := s.activities[id]; ok {
		copied := *a
		act = &copied
	}
	s.mu.Unlock()
	switch {
	case !tokenOK:
		WriteStatus(w, http.StatusUnauthorized)
	case act == nil, act.Athlete.ID != g.athlete,
		// Without activity:read_all an "Only You" activity does not exist.
		act.Private && !hasScope(g.scope, "activity:read_all"):
		WriteStatus(w, http.StatusNotFound)
	default:
		body, err := activityJSON(*act)
		if err != nil {
			WriteStatus(w, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
	}
}

// ActivityJSON is the body GET /api/v3/activities/{id} answers for the
// activity's owner, byte for byte.
func (s *Server) ActivityJSON(id int64) ([]byte, bool) {
	a, ok := s.Activity(id)
	if !ok {
		return nil, false
	}
	body, err := activityJSON(a)
	return body, err == nil
}

func activityJSON(a strava.DetailedActivity) ([]byte, error) {
	return json.Marshal(wireActivity{
		DetailedActivity: a, AthleteCount: 1, KudosCount: int(a.ID % 7),
		SegmentEfforts: []any{}, SplitsMetric: []any{}, Laps: []any{},
	})
}

func hasScope(scope, want string) bool {
	return slices.Contains(strings.Split(scope, ","), want)
}
