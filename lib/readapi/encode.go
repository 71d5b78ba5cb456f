// Package readapi owns the read side of stravahook: GET /api/activities,
// which lists the kept activities to a caller holding READ_TOKEN, and the
// two encodings it answers in (a JSON listing and an RFC 7946 GeoJSON
// FeatureCollection), which `stravahook activities list` shares.
package readapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/twpayne/go-polyline"

	"github.com/stravahook/stravahook/lib/strava"
)

// Activity is one kept activity as the read API lists it: the listing's
// fields of Strava's DetailedActivity, with units in the names.
type Activity struct {
	ID                  int64     `json:"id"`
	AthleteID           int64     `json:"athlete_id"`
	Name                string    `json:"name"`
	Type                string    `json:"type"`
	SportType           string    `json:"sport_type"`
	StartDate           time.Time `json:"start_date"`
	DistanceM           float64   `json:"distance_m"`
	MovingTimeS         int       `json:"moving_time_s"`
	ElapsedTimeS        int       `json:"elapsed_time_s"`
	TotalElevationGainM float64   `json:"total_elevation_gain_m"`
	SummaryPolyline     string    `json:"summary_polyline"` // "" for an activity without a map
}

// Summarize is a's entry in a listing.
func Summarize(a strava.DetailedActivity) Activity {
	return Activity{
		ID:                  a.ID,
		AthleteID:           a.Athlete.ID,
		Name:                a.Name,
		Type:                a.Type,
		SportType:           a.SportType,
		StartDate:           a.StartDate.UTC(),
		DistanceM:           a.Distance,
		MovingTimeS:         a.MovingTime,
		ElapsedTimeS:        a.ElapsedTime,
		TotalElevationGainM: a.TotalElevationGain,
		SummaryPolyline:     a.Map.SummaryPolyline,
	}
}

// AppendJSON appends the JSON listing {"activities":[…]} of acts, in their
// order, and a newline.
func AppendJSON(buf []byte, acts []strava.DetailedActivity) ([]byte, error) {
	buf = append(buf, `{"activities":[`...)
	for i, a := range acts {
		if i > 0 {
			buf = append(buf, ',')
		}
		var err error
		if buf, err = appendActivity(buf, a); err != nil {
			return nil, err
		}
	}
	return append(buf, "]}\n"...), nil
}

// AppendGeoJSON appends acts, in their order, as an RFC 7946
// FeatureCollection and a newline: one Feature per activity, whose id is
// the activity's, whose properties are its JSON listing entry, and whose
// geometry is its summary polyline as a LineString of [longitude,
// latitude] positions (a Point for a one-point track, null without one).
func AppendGeoJSON(buf []byte, acts []strava.DetailedActivity) ([]byte, error) {
	buf = append(buf, `{"type":"FeatureCollection","features":[`...)
	for i, a := range acts {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"type":"Feature","id":`...)
		buf = strconv.AppendInt(buf, a.ID, 10)
		buf = append(buf, `,"geometry":`...)
		buf = appendGeometry(buf, a.Map.SummaryPolyline)
		buf = append(buf, `,"properties":`...)
		var err error
		if buf, err = appendActivity(buf, a); err != nil {
			return nil, err
		}
		buf = append(buf, '}')
	}
	return append(buf, "]}\n"...), nil
}

func appendActivity(buf []byte, a strava.DetailedActivity) ([]byte, error) {
	entry, err := json.Marshal(Summarize(a))
	if err != nil {
		return nil, fmt.Errorf("encode activity %d: %w", a.ID, err)
	}
	return append(buf, entry...), nil
}

// appendGeometry appends the GeoJSON geometry of a summary polyline. A
// polyline that does not decode, or decodes to positions off the globe, is
// drawn as no geometry rather than failing the whole listing.
func appendGeometry(buf []byte, summaryPolyline string) []byte {
	latLngs, err := decodePolyline(summaryPolyline)
	if err != nil || len(latLngs) == 0 {
		return append(buf, "null"...)
	}
	if len(latLngs) == 2 { // RFC 7946 3.1.4: a LineString has two or more positions
		buf = append(buf, `{"type":"Point","coordinates":`...)
		buf = appendPosition(buf, latLngs[0], latLngs[1])
		return append(buf, '}')
	}
	buf = append(buf, `{"type":"LineString","coordinates":[`...)
	for i := 0; i < len(latLngs); i += 2 {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendPosition(buf, latLngs[i], latLngs[i+1])
	}
	return append(buf, "]}"...)
}

// appendPosition appends an RFC 7946 position: longitude first.
func appendPosition(buf []byte, lat, lng float64) []byte {
	buf = append(buf, '[')
	buf = strconv.AppendFloat(buf, lng, 'f', -1, 64)
	buf = append(buf, ',')
	buf = strconv.AppendFloat(buf, lat, 'f', -1, 64)
	return append(buf, ']')
}

// stravaPolyline is the encoding of Strava's maps: Google's, 5 decimals.
var stravaPolyline = polyline.Codec{Dim: 2, Scale: 1e5}

// decodePolyline decodes a summary polyline to flat latitude, longitude
// pairs, checking each is on the globe.
func decodePolyline(s string) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	flat, _, err := stravaPolyline.DecodeFlatCoords(make([]float64, 0, len(s)), []byte(s))
	if err != nil {
		return nil, fmt.Errorf("decode polyline: %w", err)
	}
	for i := 0; i < len(flat); i += 2 {
		if lat, lng := flat[i], flat[i+1]; lat < -90 || lat > 90 || lng < -180 || lng > 180 {
			return nil, fmt.Errorf("decode polyline: position %d (%v, %v) is off the globe", i/2, lat, lng)
		}
	}
	return flat, nil
}
