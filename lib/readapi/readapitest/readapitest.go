// Package readapitest makes kept activities for tests and benchmarks of
// the read API and the map page: plausible tracks (Strava-encoded summary
// polylines) of plausible sports, deterministic for a given seed.
package readapitest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/twpayne/go-polyline"

	"github.com/stravahook/stravahook/lib/strava"
)

var sports = []struct{ kind, sport, name string }{
	{"Run", "Run", "Morning Run"},
	{"Ride", "Ride", "Lunch Ride"},
	{"Hike", "Hike", "Afternoon Hike"},
	{"Ride", "MountainBikeRide", "Trail Ride"},
	{"Walk", "Walk", "Evening Walk"},
	{"Swim", "Swim", "Open Water Swim"},
}

// Activities returns n activities of athleteID, the newest starting at
// newest and each an hour before the next, with tracks of points points
// around Berkeley, CA (where Strava's documented sample rides). The i-th
// is the i-th sport of a fixed rotation (run, ride, hike, mountain-bike
// ride, walk, swim).
func Activities(n, points int, athleteID int64, newest time.Time, seed uint64) []strava.DetailedActivity {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	acts := make([]strava.DetailedActivity, n)
	for i := range acts {
		s := sports[i%len(sports)]
		track, metres := randomWalk(rng, 37.87+rng.Float64()*0.1-0.05, -122.27+rng.Float64()*0.1-0.05, points)
		moving := int(metres / 3)
		acts[i] = strava.DetailedActivity{
			ID:                 int64(10_000_000_000 + seed*100_000 + uint64(i)),
			Athlete:            strava.MetaAthlete{ID: athleteID, ResourceState: 1},
			Name:               fmt.Sprintf("%s #%d", s.name, n-i),
			Type:               s.kind,
			SportType:          s.sport,
			StartDate:          newest.Add(-time.Duration(i) * time.Hour).UTC(),
			Distance:           math.Round(metres*10) / 10,
			MovingTime:         moving,
			ElapsedTime:        moving + 60*rng.IntN(10),
			TotalElevationGain: float64(rng.IntN(400)),
			Map:                strava.PolylineMap{ID: fmt.Sprintf("a%d", i), SummaryPolyline: track},
		}
	}
	return acts
}

// randomWalk is a track of points points from (lat, lng), each step a
// random turn from the last, encoded as a summary polyline, and its length
// in metres.
func randomWalk(rng *rand.Rand, lat, lng float64, points int) (string, float64) {
	coords := make([][]float64, points)
	heading, metres := rng.Float64()*2*math.Pi, 0.0
	for i := range coords {
		coords[i] = []float64{lat, lng}
		heading += rng.NormFloat64() * 0.4
		step := 0.0005 + rng.Float64()*0.0005
		dLat, dLng := step*math.Cos(heading), step*math.Sin(heading)/math.Cos(lat*math.Pi/180)
		lat, lng = lat+dLat, lng+dLng
		metres += step * 111_000
	}
	return string(polyline.EncodeCoords(coords)), metres
}
