// Package readapi owns the read side of stravahook: GET /api/activities,
// which lists the kept activities to a caller holding READ_TOKEN, and the
// two encodings it answers in (a JSON listing and an RFC 7946 GeoJSON
// FeatureCollection), which `stravahook activities list` shares.
package readapi

import (
	"encoding/json"
	"fmt"
	"slices"
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
	hint := 64
	for _, a := range acts {
		hint += 400 + len(a.Map.SummaryPolyline) + len(a.Name)
	}
	buf = slices.Grow(buf, hint)
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
	// Room for the whole answer up front: growing a multi-megabyte buffer
	// by doubling was a sixth of the encoding's time. A position takes
	// about 21 bytes, and its polyline 3 or more (7 bytes of answer per
	// polyline byte for 100 m steps).
	hint := 64
	for _, a := range acts {
		hint += 512 + 8*len(a.Map.SummaryPolyline)
	}
	buf = slices.Grow(buf, hint)
	buf = append(buf, `{"type":"FeatureCollection","features":[`...)
	var scratch []int
	for i, a := range acts {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"type":"Feature","id":`...)
		buf = strconv.AppendInt(buf, a.ID, 10)
		buf = append(buf, `,"geometry":`...)
		buf, scratch = appendGeometry(buf, a.Map.SummaryPolyline, scratch)
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

// appendGeometry appends the GeoJSON geometry of a summary polyline,
// decoding into scratch (returned for reuse). A polyline that does not
// decode, or decodes to positions off the globe, is drawn as no geometry
// rather than failing the whole listing.
func appendGeometry(buf []byte, summaryPolyline string, scratch []int) ([]byte, []int) {
	latLngs, err := decodePolyline(scratch[:0], summaryPolyline)
	if err != nil || len(latLngs) == 0 {
		return append(buf, "null"...), latLngs
	}
	if len(latLngs) == 2 { // RFC 7946 3.1.4: a LineString has two or more positions
		buf = append(buf, `{"type":"Point","coordinates":`...)
		buf = appendPosition(buf, latLngs[0], latLngs[1])
		return append(buf, '}'), latLngs
	}
	buf = append(buf, `{"type":"LineString","coordinates":[`...)
	for i := 0; i < len(latLngs); i += 2 {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendPosition(buf, latLngs[i], latLngs[i+1])
	}
	return append(buf, "]}"...), latLngs
}

// appendPosition appends an RFC 7946 position, longitude first, from
// coordinates in units of 1e-5 degree.
func appendPosition(buf []byte, lat, lng int) []byte {
	buf = append(buf, '[')
	buf = appendDegrees(buf, lng)
	buf = append(buf, ',')
	buf = appendDegrees(buf, lat)
	return append(buf, ']')
}

// appendDegrees writes v×1e-5 in decimal, without trailing zeros: the
// same text as strconv's shortest float formatting of v/1e5, several times
// faster (coordinates are most of a GeoJSON answer).
func appendDegrees(buf []byte, v int) []byte {
	if v < 0 {
		buf = append(buf, '-')
		v = -v
	}
	buf = strconv.AppendInt(buf, int64(v/polylineScale), 10)
	frac := v % polylineScale
	if frac == 0 {
		return buf
	}
	digits := [5]byte{}
	for i := 4; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 5
	for digits[n-1] == '0' {
		n--
	}
	buf = append(buf, '.')
	return append(buf, digits[:n]...)
}

// polylineScale is the precision of Strava's summary polylines (Google's
// encoding, 5 decimals).
const polylineScale = 100_000

// decodePolyline appends the latitude, longitude pairs of a summary
// polyline to latLngs, in units of 1e-5 degree, checking each is on the
// globe. The varints are go-polyline's; the running sums stay integers so
// that they format exactly.
func decodePolyline(latLngs []int, s string) ([]int, error) {
	buf := []byte(s)
	var lat, lng int
	for len(buf) > 0 {
		dLat, rest, err := polyline.DecodeInt(buf)
		if err != nil {
			return latLngs, fmt.Errorf("decode polyline: %w", err)
		}
		dLng, rest, err := polyline.DecodeInt(rest)
		if err != nil {
			return latLngs, fmt.Errorf("decode polyline: %w", err)
		}
		buf = rest
		lat, lng = lat+dLat, lng+dLng
		if lat < -90*polylineScale || lat > 90*polylineScale || lng < -180*polylineScale || lng > 180*polylineScale {
			return latLngs, fmt.Errorf("decode polyline: position %d (%d, %d)e-5 is off the globe", len(latLngs)/2, lat, lng)
		}
		latLngs = append(latLngs, lat, lng)
	}
	return latLngs, nil
}
