package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

const readToken = "read-token-for-the-cli-tests"

// keepForTest stores activities, connecting their athletes first.
func keepForTest(t testing.TB, st *store.Store, acts ...strava.DetailedActivity) {
	t.Helper()
	ctx := t.Context()
	for _, a := range acts {
		if _, err := st.Athlete(ctx, a.Athlete.ID); err != nil {
			if err := st.SaveAthlete(ctx, store.Athlete{ID: a.Athlete.ID, AccessToken: "a", RefreshToken: "r", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.KeepActivity(ctx, a, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
}

// `activities list -geojson` prints what GET /api/activities?format=geojson
// answers for the same athlete, byte for byte.
func TestActivitiesListGeoJSONIsTheAPIsAnswer(t *testing.T) {
	c := newCLI(t)
	t0 := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	keepForTest(t, c.store(),
		strava.DetailedActivity{ID: 11, Athlete: strava.MetaAthlete{ID: 5}, Name: "Ride", Type: "Ride", SportType: "GravelRide", StartDate: t0,
			Distance: 42000, MovingTime: 5400, Map: strava.PolylineMap{SummaryPolyline: "_p~iF~ps|U_ulLnnqC_mqNvxq`@"}},
		strava.DetailedActivity{ID: 12, Athlete: strava.MetaAthlete{ID: 5}, Name: "Treadmill", Type: "Run", SportType: "VirtualRun", StartDate: t0.Add(time.Hour)},
		strava.DetailedActivity{ID: 21, Athlete: strava.MetaAthlete{ID: 6}, Name: "Not theirs", Type: "Run", StartDate: t0},
	)
	code, out, errOut := c.run("activities", "list", "-athlete", "5", "-geojson")
	if code != 0 {
		t.Fatalf("activities list -geojson: exit %d, %s", code, errOut)
	}
	var fc struct {
		Type     string
		Features []struct {
			ID       int64
			Geometry json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(out), &fc); err != nil || fc.Type != "FeatureCollection" || len(fc.Features) != 2 ||
		fc.Features[0].ID != 12 || string(fc.Features[0].Geometry) != "null" ||
		string(fc.Features[1].Geometry) != `{"type":"LineString","coordinates":[[-120.2,38.5],[-120.95,40.7],[-126.453,43.252]]}` {
		t.Fatalf("activities list -geojson printed %s (%v)", out, err)
	}

	c.env["READ_TOKEN"] = readToken
	base := startServe(t, c.env)
	req, _ := http.NewRequest("GET", base+"/api/activities?athlete=5&format=geojson&limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != out {
		t.Errorf("the API answered %d:\n%s\nthe CLI printed:\n%s", res.StatusCode, body, out)
	}

	if code, _, errOut := c.run("activities", "list", "-athlete", "5", "-geojson", "-json"); code != 2 || !strings.Contains(errOut, "cannot be combined") {
		t.Errorf("-geojson -json: exit %d, %q; want 2 and why", code, errOut)
	}
}

// serve answers like Vercel: the static pages at / and /map.html, the
// functions under /api/.
func TestServeServesTheStaticPages(t *testing.T) {
	c := newCLI(t)
	base := startServe(t, c.env)
	for path, want := range map[string]string{
		"/":                              "<h1>stravahook</h1>",
		"/map.html":                      `<script src="map.js"></script>`,
		"/map.js":                        "/api/activities?format=geojson",
		"/vendor/leaflet/leaflet.js":     `t.version="1.9.4"`,
		"/vendor/leaflet/leaflet.css":    ".leaflet-pane",
		"/api/activities":                `"error":"not found"`, // READ_TOKEN unset
		"/api/activity_update?hub.mode=": `"error"`,
	} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, %.200q; want it to contain %q", path, res.StatusCode, body, want)
		}
	}
	if res, err := http.Get(base + "/go.mod"); err != nil || res.StatusCode != 404 {
		t.Errorf("GET /go.mod: %v %v; want 404 (only .static is served)", res.StatusCode, err)
	}
}
