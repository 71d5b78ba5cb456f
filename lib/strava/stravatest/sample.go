package stravatest

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/twpayne/go-polyline"

	"github.com/stravahook/stravahook/lib/strava"
)

// SampleAthleteID is the id of the athlete AddSampleData adds.
const SampleAthleteID = 134815

// AddSampleData adds an athlete, Jane Doe (SampleAthleteID), with a few
// past activities of different sports, and returns her. She is not yet
// connected to the application.
func (s *Server) AddSampleData() strava.Athlete {
	a := s.AddAthlete(strava.Athlete{ID: SampleAthleteID, Username: "janedoe", FirstName: "Jane", LastName: "Doe",
		City: "San Francisco", Country: "United States"})
	now := s.now()
	for i, sport := range []string{"Hike", "MountainBikeRide", "Run"} {
		s.mu.Lock()
		id := s.nextActivityIDLocked()
		s.mu.Unlock()
		s.AddActivity(sampleActivity(id, a.ID, sport, now.Add(-time.Duration(3-i)*26*time.Hour)))
	}
	return a
}

// sport is what a made-up activity of one sport type looks like.
type sport struct {
	typ, sportType string
	noun           string // in the activity's name, when not typ
	minKm, maxKm   float64
	speed          float64 // m/s, moving
	climbPerKm     float64 // m
	center         [2]float64
	noMap, trainer bool
}

var sports = []sport{
	{typ: "Run", sportType: "Run", minKm: 5, maxKm: 14, speed: 3.1, climbPerKm: 8, center: [2]float64{37.7694, -122.4862}},
	{typ: "Ride", sportType: "Ride", minKm: 25, maxKm: 70, speed: 7.2, climbPerKm: 10, center: [2]float64{37.8324, -122.4795}},
	{typ: "Ride", sportType: "MountainBikeRide", noun: "Mountain Bike Ride", minKm: 15, maxKm: 35, speed: 5.1, climbPerKm: 25, center: [2]float64{37.83, -122.26}},
	{typ: "Walk", sportType: "Walk", minKm: 2, maxKm: 6, speed: 1.4, climbPerKm: 5, center: [2]float64{37.8024, -122.4058}},
	{typ: "Hike", sportType: "Hike", minKm: 6, maxKm: 16, speed: 1.1, climbPerKm: 60, center: [2]float64{37.9235, -122.5965}},
	{typ: "Swim", sportType: "Swim", minKm: 1.5, maxKm: 3.5, speed: 0.8, noMap: true},
	{typ: "VirtualRide", sportType: "VirtualRide", noun: "Zwift Ride", minKm: 20, maxKm: 45, speed: 8.3, climbPerKm: 12, noMap: true, trainer: true},
}

func sportNamed(name string, r *rand.Rand) sport {
	for _, sp := range sports {
		if sp.sportType == name || sp.typ == name {
			return sp
		}
	}
	return sports[r.IntN(len(sports))]
}

// sampleActivity makes up a DetailedActivity that ended at end: distance,
// times and climb plausible for the sport, a loop route with its polylines
// (none for a pool swim or a trainer ride). The same id gives the same
// activity.
func sampleActivity(id, athleteID int64, sportName string, end time.Time) strava.DetailedActivity {
	r := rand.New(rand.NewPCG(uint64(id), uint64(athleteID)))
	sp := sportNamed(sportName, r)
	km := sp.minKm + r.Float64()*(sp.maxKm-sp.minKm)
	distance := math.Round(km*1000*10) / 10
	moving := int(distance / (sp.speed * (0.9 + 0.2*r.Float64())))
	elapsed := moving + int(float64(moving)*0.08*r.Float64())
	start := end.Add(-time.Duration(elapsed) * time.Second).UTC().Truncate(time.Second)
	local := start.Add(-8 * time.Hour) // America/Los_Angeles, winter
	a := strava.DetailedActivity{
		ID:                 id,
		ResourceState:      3,
		ExternalID:         fmt.Sprintf("garmin_push_%d", id),
		UploadID:           id + 987654321,
		Athlete:            strava.MetaAthlete{ID: athleteID, ResourceState: 1},
		Name:               dayPart(local.Hour()) + " " + cmp.Or(sp.noun, sp.typ),
		Distance:           distance,
		MovingTime:         moving,
		ElapsedTime:        elapsed,
		TotalElevationGain: math.Round(km*sp.climbPerKm*(0.6+0.8*r.Float64())*10) / 10,
		Type:               sp.typ,
		SportType:          sp.sportType,
		StartDate:          start,
		StartDateLocal:     local.Format("2006-01-02T15:04:05Z"),
		Timezone:           "(GMT-08:00) America/Los_Angeles",
		UTCOffset:          -28800,
		Trainer:            sp.trainer,
		AverageSpeed:       math.Round(distance/float64(moving)*1000) / 1000,
		MaxSpeed:           math.Round(sp.speed*(1.5+r.Float64())*10) / 10,
		Calories:           math.Round(km * 60 * (0.8 + 0.4*r.Float64())),
		Map:                strava.PolylineMap{ID: fmt.Sprintf("a%d", id)},
	}
	if sp.typ == "Ride" || sp.typ == "VirtualRide" {
		a.GearID = "b12345678987654321"
	}
	if !sp.noMap {
		route := loop(sp.center, distance, r)
		a.Map.Polyline = string(polyline.EncodeCoords(route))
		a.Map.SummaryPolyline = string(polyline.EncodeCoords(everyNth(route, 5)))
		a.StartLatLng = []float64{round2(route[0][0]), round2(route[0][1])}
		last := route[len(route)-1]
		a.EndLatLng = []float64{round2(last[0]), round2(last[1])}
	}
	return a
}

func dayPart(hour int) string {
	switch {
	case hour < 5:
		return "Night"
	case hour < 11:
		return "Morning"
	case hour < 14:
		return "Lunch"
	case hour < 18:
		return "Afternoon"
	default:
		return "Evening"
	}
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// loop is a closed route of about distance meters around center: a wobbly
// circle, one point every ~50 m.
func loop(center [2]float64, distance float64, r *rand.Rand) [][]float64 {
	const metersPerDegLat = 111_320.0
	radius := distance / (2 * math.Pi)
	n := max(int(distance/50), 16)
	phase := r.Float64() * 2 * math.Pi
	wobble := 0.15 + 0.1*r.Float64()
	lobes := float64(2 + r.IntN(3))
	cosLat := math.Cos(center[0] * math.Pi / 180)
	pts := make([][]float64, 0, n+1)
	for i := 0; i <= n; i++ {
		t := 2 * math.Pi * float64(i) / float64(n)
		rad := radius * (1 + wobble*math.Sin(lobes*t+phase))
		dy, dx := rad*math.Sin(t+phase), rad*math.Cos(t+phase)
		pts = append(pts, []float64{
			center[0] + dy/metersPerDegLat,
			center[1] + dx/(metersPerDegLat*cosLat),
		})
	}
	return pts
}

func everyNth(pts [][]float64, n int) [][]float64 {
	var out [][]float64
	for i := 0; i < len(pts); i += n {
		out = append(out, pts[i])
	}
	if last := pts[len(pts)-1]; !slices.Equal(out[len(out)-1], last) {
		out = append(out, last)
	}
	return out
}
