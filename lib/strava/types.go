package strava

import (
	"encoding/json"
	"strconv"
	"time"
)

// Athlete is the part of Strava's SummaryAthlete/DetailedAthlete we use.
type Athlete struct {
	ID            int64  `json:"id"`
	ResourceState int    `json:"resource_state,omitempty"`
	Username      string `json:"username,omitempty"`
	FirstName     string `json:"firstname,omitempty"`
	LastName      string `json:"lastname,omitempty"`
	City          string `json:"city,omitempty"`
	Country       string `json:"country,omitempty"`
}

// Name is how a page greets the athlete: first and last name, else the
// username, else the id.
func (a Athlete) Name() string {
	switch {
	case a.FirstName != "" || a.LastName != "":
		if a.FirstName != "" && a.LastName != "" {
			return a.FirstName + " " + a.LastName
		}
		return a.FirstName + a.LastName
	case a.Username != "":
		return a.Username
	default:
		return "athlete " + itoa(a.ID)
	}
}

// MetaAthlete is the athlete reference embedded in an activity.
type MetaAthlete struct {
	ID            int64 `json:"id"`
	ResourceState int   `json:"resource_state,omitempty"`
}

// PolylineMap is an activity's map.
type PolylineMap struct {
	ID              string `json:"id,omitempty"`
	Polyline        string `json:"polyline,omitempty"`
	SummaryPolyline string `json:"summary_polyline,omitempty"`
}

// DetailedActivity is GET /api/v3/activities/{id}. The large arrays
// (segment_efforts, splits, laps) are not kept: we store what a listing
// needs plus the scalar fields, within Strava's 7-day caching rule.
type DetailedActivity struct {
	ID                 int64       `json:"id"`
	ResourceState      int         `json:"resource_state,omitempty"`
	ExternalID         string      `json:"external_id,omitempty"`
	UploadID           int64       `json:"upload_id,omitempty"`
	Athlete            MetaAthlete `json:"athlete"`
	Name               string      `json:"name"`
	Distance           float64     `json:"distance"`
	MovingTime         int         `json:"moving_time"`
	ElapsedTime        int         `json:"elapsed_time"`
	TotalElevationGain float64     `json:"total_elevation_gain"`
	Type               string      `json:"type"`
	SportType          string      `json:"sport_type,omitempty"`
	StartDate          time.Time   `json:"start_date"`
	StartDateLocal     string      `json:"start_date_local,omitempty"`
	Timezone           string      `json:"timezone,omitempty"`
	UTCOffset          float64     `json:"utc_offset,omitempty"`
	StartLatLng        []float64   `json:"start_latlng,omitempty"`
	EndLatLng          []float64   `json:"end_latlng,omitempty"`
	Map                PolylineMap `json:"map"`
	Trainer            bool        `json:"trainer"`
	Commute            bool        `json:"commute"`
	Manual             bool        `json:"manual"`
	Private            bool        `json:"private"`
	GearID             string      `json:"gear_id,omitempty"`
	AverageSpeed       float64     `json:"average_speed"`
	MaxSpeed           float64     `json:"max_speed"`
	Calories           float64     `json:"calories,omitempty"`
	Description        string      `json:"description,omitempty"`

	// Raw is Strava's answer exactly as GetActivity received it, every
	// field included (notifications carry it whole); never stored.
	Raw json.RawMessage `json:"-"`
}

// Token is an OAuth token pair as Strava issues it. Athlete is set only by
// the authorization-code exchange; Scope only when the caller knows it (Strava
// reports the granted scope on the redirect, not in the token answer).
type Token struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	Scope        string    `json:"scope,omitempty"`
	Athlete      *Athlete  `json:"athlete,omitempty"`
}

// String keeps the tokens out of logs and error messages.
func (t Token) String() string {
	athlete := "nil"
	if t.Athlete != nil {
		athlete = itoa(t.Athlete.ID)
	}
	return "strava.Token{AccessToken: " + redactedIfSet(t.AccessToken) +
		", RefreshToken: " + redactedIfSet(t.RefreshToken) +
		", ExpiresAt: " + t.ExpiresAt.Format(time.RFC3339) +
		", Scope: " + strconv.Quote(t.Scope) +
		", Athlete: " + athlete + "}"
}

// GoString is String, for %#v.
func (t Token) GoString() string { return t.String() }

// Subscription is one push subscription of our application.
type Subscription struct {
	ID            int64     `json:"id"`
	ResourceState int       `json:"resource_state,omitempty"`
	ApplicationID int64     `json:"application_id,omitempty"`
	CallbackURL   string    `json:"callback_url,omitempty"`
	CreatedAt     time.Time `json:"created_at,omitzero"`
	UpdatedAt     time.Time `json:"updated_at,omitzero"`
}
