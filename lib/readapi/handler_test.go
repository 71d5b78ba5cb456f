package readapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/readapi"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

const readToken = "read-token-0123456789abcdef"

// server is the read API on a test Redis, called in process (serve's
// tests call it over HTTP).
type server struct {
	handler http.Handler
	store   *store.Store
	logs    *bytes.Buffer
}

func newServer(t *testing.T, token string) *server {
	t.Helper()
	r := rdbtest.New(t)
	st := store.New(r.Client, r.Prefix)
	logs := &bytes.Buffer{}
	return &server{handler: readapi.NewHandler(token, st, slog.New(slog.NewJSONHandler(logs, nil))), store: st, logs: logs}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// keep stores activities, connecting their athletes first.
func (s *server) keep(t *testing.T, acts ...strava.DetailedActivity) {
	t.Helper()
	ctx := testCtx(t)
	for _, a := range acts {
		if _, err := s.store.Athlete(ctx, a.Athlete.ID); errors.Is(err, store.ErrNotFound) {
			err := s.store.SaveAthlete(ctx, store.Athlete{ID: a.Athlete.ID, AccessToken: "a", RefreshToken: "r", ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := s.store.KeepActivity(ctx, a, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// get requests /api/activities?query with the given headers ("Authorization"
// is the read token unless set).
func (s *server) get(t *testing.T, query string, headers ...string) answer {
	t.Helper()
	req := httptest.NewRequestWithContext(testCtx(t), http.MethodGet, "/api/activities?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return answer{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

type listing struct {
	Activities []readapi.Activity `json:"activities"`
}

func decodeListing(t *testing.T, a answer) listing {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d (%s); want 200", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q; want application/json", ct)
	}
	var l listing
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
	if l.Activities == nil {
		t.Fatalf("body %s has no activities array", a.body)
	}
	return l
}

func ids(l listing) []int64 {
	var out []int64
	for _, a := range l.Activities {
		out = append(out, a.ID)
	}
	return out
}

func run(id, athleteID int64, start time.Time) strava.DetailedActivity {
	return strava.DetailedActivity{
		ID: id, Athlete: strava.MetaAthlete{ID: athleteID}, Name: "Run", Type: "Run", SportType: "Run",
		StartDate: start, Distance: 5000, MovingTime: 1500, ElapsedTime: 1600,
		Map: strava.PolylineMap{SummaryPolyline: "_p~iF~ps|U_ulLnnqC_mqNvxq`@"}, // Google's documented example
	}
}

// stravaSample is Strava's documented DetailedActivity
// (https://developers.strava.com/docs/reference/#api-Activities-getActivityById).
func stravaSample(t *testing.T) strava.DetailedActivity {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "strava", "testdata", "activity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var a strava.DetailedActivity
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestOffWithoutAToken(t *testing.T) {
	for token, logged := range map[string]string{
		"":                "set READ_TOKEN (at least 16 characters",
		"fifteen-chars-x": "READ_TOKEN has 15 characters, it needs at least 16",
	} {
		s := newServer(t, token)
		s.keep(t, run(1, 1, time.Now()))
		for _, auth := range []string{"Bearer " + token, "Bearer " + readToken, ""} {
			if a := s.get(t, "", "Authorization", auth); a.status != http.StatusNotFound {
				t.Errorf("token %q, Authorization %q: status %d (%s); want 404", token, auth, a.status, a.body)
			}
		}
		if !strings.Contains(s.logs.String(), logged) {
			t.Errorf("token %q: log %q does not say %q", token, s.logs.String(), logged)
		}
		if token != "" && strings.Contains(s.logs.String(), token) {
			t.Errorf("the log shows the token: %s", s.logs.String())
		}
	}
}

func TestAuthorization(t *testing.T) {
	s := newServer(t, readToken)
	s.keep(t, run(1, 1, time.Now()))
	for _, auth := range []string{
		"",
		"Bearer",
		"Bearer ",
		"Bearer " + readToken[:len(readToken)-1],
		"Bearer " + readToken + "x",
		"Bearer " + strings.ToUpper(readToken),
		"Basic " + readToken,
		readToken,
	} {
		a := s.get(t, "", "Authorization", auth)
		if a.status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d; want 401", auth, a.status)
		}
		if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("Authorization %q: WWW-Authenticate %q; want a Bearer challenge", auth, got)
		}
		if bytes.Contains(a.body, []byte(`"id"`)) {
			t.Errorf("Authorization %q: a 401 shows activities: %s", auth, a.body)
		}
	}
	for _, auth := range []string{"Bearer " + readToken, "bearer " + readToken, "Bearer  " + readToken + " "} {
		if l := decodeListing(t, s.get(t, "", "Authorization", auth)); !slices.Equal(ids(l), []int64{1}) {
			t.Errorf("Authorization %q: %v; want activity 1", auth, ids(l))
		}
	}
	if strings.Contains(s.logs.String(), readToken) {
		t.Errorf("the log shows the token: %s", s.logs.String())
	}
}

func TestMethodNotAllowed(t *testing.T) {
	s := newServer(t, readToken)
	req := httptest.NewRequest(http.MethodPost, "/api/activities", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	res := rec.Result()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q; want 405, GET, HEAD", res.StatusCode, res.Header.Get("Allow"))
	}
}

func TestJSONListsTheSampleField(t *testing.T) {
	s := newServer(t, readToken)
	s.keep(t, stravaSample(t))
	a := s.get(t, "")
	var raw map[string][]map[string]any
	if err := json.Unmarshal(a.body, &raw); err != nil {
		t.Fatalf("%s: %v", a.body, err)
	}
	want := map[string]any{
		"id": 12312312312.0, "athlete_id": 134815.0, "name": "Happy Friday", "type": "Ride",
		"sport_type": "MountainBikeRide", "start_date": "2018-02-16T14:52:54Z", "distance_m": 28099.0,
		"moving_time_s": 4207.0, "elapsed_time_s": 4410.0, "total_elevation_gain_m": 516.0,
		"summary_polyline": stravaSample(t).Map.SummaryPolyline,
	}
	if len(raw["activities"]) != 1 {
		t.Fatalf("body %s; want one activity", a.body)
	}
	got := raw["activities"][0]
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v; want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields %v; want exactly %d", got, len(want))
	}
}

func TestParameters(t *testing.T) {
	s := newServer(t, readToken)
	t0 := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	var all []int64
	for i := range int64(105) {
		athlete := 1 + i%2
		s.keep(t, run(1000+i, athlete, t0.Add(time.Duration(i)*time.Minute)))
		all = append([]int64{1000 + i}, all...)
	}
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"", all[:100]},
		{"limit=1000", all},
		{"limit=3", all[:3]},
		{"limit=1", all[:1]},
		{"athlete=2&limit=3", []int64{1103, 1101, 1099}},
		{"athlete=1&limit=2", []int64{1104, 1102}},
		{"athlete=3", nil},
		{"since=2026-03-01T08:42:00Z", []int64{1104, 1103, 1102}},
		{"since=2026-03-01T09:42:00%2B01:00", []int64{1104, 1103, 1102}},
		// An offset's + typed as is in a URL arrives as a space.
		{"since=2026-03-01T09:42:00+01:00", []int64{1104, 1103, 1102}},
		{"since=2026-03-01T08:41:59.5Z", []int64{1104, 1103, 1102}},
		{"since=" + itoa(t0.Add(102*time.Minute).Unix()), []int64{1104, 1103, 1102}},
		{"since=" + itoa(t0.Add(102*time.Minute).Unix()) + "&athlete=2", []int64{1103}},
		{"since=" + itoa(t0.Add(time.Hour).Unix()) + "&limit=2&athlete=1&format=json", []int64{1104, 1102}},
		{"since=0&limit=2", all[:2]},
		{"unknown=ignored&limit=2", all[:2]},
	} {
		l := decodeListing(t, s.get(t, tc.query))
		if got := ids(l); !slices.Equal(got, tc.want) {
			t.Errorf("?%s: %v; want %v", tc.query, got, tc.want)
		}
	}
	for query, reason := range map[string]string{
		"limit=0":                    "limit must be an integer from 1 to 1000",
		"limit=1001":                 "limit must be an integer from 1 to 1000",
		"limit=ten":                  "limit must be an integer from 1 to 1000",
		"limit=-1":                   "limit must be an integer from 1 to 1000",
		"athlete=0":                  "athlete must be an athlete id",
		"athlete=abc":                "athlete must be an athlete id",
		"athlete=-2":                 "athlete must be an athlete id",
		"since=yesterday":            "since must be an RFC 3339 time",
		"since=2026-03-01":           "since must be an RFC 3339 time",
		"since=-5":                   "since must be an RFC 3339 time",
		"since=99999999999999999999": "since must be an RFC 3339 time",
		"format=xml":                 "format must be json or geojson",
		"limit=1&limit=2":            "parameter limit is given 2 times",
	} {
		a := s.get(t, query)
		var e struct{ Error string }
		if err := json.Unmarshal(a.body, &e); a.status != http.StatusBadRequest || err != nil || !strings.Contains(e.Error, reason) {
			t.Errorf("?%s: %d %s; want 400 saying %q", query, a.status, a.body, reason)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestGeoJSON(t *testing.T) {
	s := newServer(t, readToken)
	sample := stravaSample(t)
	indoor := run(7, 134815, sample.StartDate.Add(time.Hour))
	indoor.Name, indoor.Type, indoor.SportType, indoor.Map = "Treadmill", "Run", "VirtualRun", strava.PolylineMap{}
	s.keep(t, sample, indoor)

	byFormat := s.get(t, "format=geojson")
	byAccept := s.get(t, "", "Accept", "text/html, application/geo+json;q=0.9")
	byJSON := s.get(t, "")
	for name, a := range map[string]answer{"format=geojson": byFormat, "Accept": byAccept} {
		if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/geo+json" {
			t.Fatalf("%s: %d, Content-Type %q (%s); want 200 application/geo+json", name, a.status, a.header.Get("Content-Type"), a.body)
		}
	}
	for name, a := range map[string]answer{"GeoJSON": byFormat, "JSON": byJSON} {
		if got := a.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q; want nosniff", name, got)
		}
	}
	if !bytes.Equal(byFormat.body, byAccept.body) {
		t.Errorf("format=geojson and Accept answer differently:\n%s\n%s", byFormat.body, byAccept.body)
	}
	if a := s.get(t, "format=json", "Accept", "application/geo+json"); a.header.Get("Content-Type") != "application/json" {
		t.Errorf("format=json with Accept geo+json: Content-Type %q; want the parameter to win", a.header.Get("Content-Type"))
	}
	for accept, want := range map[string]string{
		"application/geo+json;q=0":                           "application/json",
		"application/geo+json;q=0.5, application/json":       "application/json",
		"application/json;q=0.5, application/geo+json;q=0.8": "application/geo+json",
		"application/geo+json;q=0.5, */*":                    "application/json",
		"application/geo+json, */*;q=0.8":                    "application/geo+json",
		"application/json, application/geo+json":             "application/json",
		"application/geo+json, application/json":             "application/geo+json",
		"*/*":                                                "application/json",
	} {
		if a := s.get(t, "", "Accept", accept); a.header.Get("Content-Type") != want {
			t.Errorf("Accept %s: Content-Type %q; want %s", accept, a.header.Get("Content-Type"), want)
		}
	}

	fc := validateFeatureCollection(t, byFormat.body)
	if len(fc.Features) != 2 {
		t.Fatalf("%d features; want 2", len(fc.Features))
	}
	// Newest first: the indoor run started an hour after the ride.
	treadmill, ride := fc.Features[0], fc.Features[1]
	if string(treadmill.Geometry) != "null" || treadmill.ID != 7 {
		t.Errorf("the indoor activity: id %v, geometry %s; want 7 and null", treadmill.ID, treadmill.Geometry)
	}
	if treadmill.Properties["summary_polyline"] != "" || treadmill.Properties["sport_type"] != "VirtualRun" {
		t.Errorf("the indoor activity's properties: %v", treadmill.Properties)
	}
	var line struct {
		Type        string
		Coordinates [][]float64
	}
	if err := json.Unmarshal(ride.Geometry, &line); err != nil || line.Type != "LineString" {
		t.Fatalf("the ride's geometry %s: %v; want a LineString", ride.Geometry, err)
	}
	// Strava's sample polyline, decoded by hand (Google's algorithm), has
	// 83 points from (37.82822, -122.26348) to (37.85227, -122.21039), in
	// [lon, lat] order; its first point is the sample's start_latlng.
	first, last := line.Coordinates[0], line.Coordinates[len(line.Coordinates)-1]
	if len(line.Coordinates) != 83 || !slices.Equal(first, []float64{-122.26348, 37.82822}) || !slices.Equal(last, []float64{-122.21039, 37.85227}) {
		t.Errorf("the ride's track: %d points from %v to %v; want 83 from [-122.26348 37.82822] to [-122.21039 37.85227]",
			len(line.Coordinates), first, last)
	}
	if d := max(abs(first[0]-sample.StartLatLng[1]), abs(first[1]-sample.StartLatLng[0])); d > 0.005 {
		t.Errorf("the track starts %v, %.4f° from the sample's start_latlng %v", first, d, sample.StartLatLng)
	}
	// The properties are the JSON listing's fields.
	var jsonListing map[string][]map[string]any
	if err := json.Unmarshal(s.get(t, "format=json").body, &jsonListing); err != nil {
		t.Fatal(err)
	}
	for i, f := range fc.Features {
		if got, want := mustJSON(f.Properties), mustJSON(jsonListing["activities"][i]); !bytes.Equal(got, want) {
			t.Errorf("feature %d properties %s; want the JSON listing's %s", i, got, want)
		}
	}
}

func abs(x float64) float64 { return max(x, -x) }

func TestGeometryOfOddPolylines(t *testing.T) {
	s := newServer(t, readToken)
	t0 := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	onePoint := run(1, 1, t0)
	onePoint.Map.SummaryPolyline = "_p~iF~ps|U" // (38.5, -120.2)
	corrupt := run(2, 1, t0.Add(time.Minute))
	corrupt.Map.SummaryPolyline = "_p~iF~ps|U_ulL" // a latitude without its longitude
	offGlobe := run(3, 1, t0.Add(2*time.Minute))
	offGlobe.Map.SummaryPolyline = "_gjaR_p~iF" // latitude 100
	s.keep(t, onePoint, corrupt, offGlobe)
	fc := validateFeatureCollection(t, s.get(t, "format=geojson").body)
	got := map[int64]string{}
	for _, f := range fc.Features {
		got[f.ID] = string(f.Geometry)
	}
	want := map[int64]string{1: `{"type":"Point","coordinates":[-120.2,38.5]}`, 2: "null", 3: "null"}
	for id, g := range want {
		if got[id] != g {
			t.Errorf("activity %d geometry %s; want %s", id, got[id], g)
		}
	}
}

func TestNotModified(t *testing.T) {
	s := newServer(t, readToken)
	t0 := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	s.keep(t, run(1, 1, t0))
	first := s.get(t, "format=geojson")
	etag := first.header.Get("ETag")
	if first.status != http.StatusOK || !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
		t.Fatalf("status %d, ETag %q; want 200 with a strong ETag", first.status, etag)
	}
	if cc := first.header.Get("Cache-Control"); cc != "private, no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		a := s.get(t, "format=geojson", "If-None-Match", inm)
		if a.status != http.StatusNotModified || len(a.body) != 0 || a.header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d, ETag %q, %d bytes; want 304, the same ETag, no body", inm, a.status, a.header.Get("ETag"), len(a.body))
		}
	}
	if a := s.get(t, "format=json", "If-None-Match", etag); a.status != http.StatusOK || a.header.Get("ETag") == etag {
		t.Errorf("JSON with the GeoJSON's ETag: %d, ETag %q; want 200 and another ETag", a.status, a.header.Get("ETag"))
	}
	if a := s.get(t, "format=geojson", "If-None-Match", etag, "Authorization", "Bearer wrong-token-0123456789"); a.status != http.StatusUnauthorized {
		t.Errorf("If-None-Match without the token: %d; want 401", a.status)
	}
	s.keep(t, run(2, 1, t0.Add(time.Hour)))
	if a := s.get(t, "format=geojson", "If-None-Match", etag); a.status != http.StatusOK || a.header.Get("ETag") == etag {
		t.Errorf("after a new activity: %d, ETag %q; want 200 and a new ETag", a.status, a.header.Get("ETag"))
	}
}

type failingLister struct{}

func (failingLister) ListActivities(context.Context, store.ActivityQuery) ([]strava.DetailedActivity, error) {
	return nil, errors.New("dial tcp 127.0.0.1:6379: connection refused")
}

func TestRedisDownIs503(t *testing.T) {
	logs := &bytes.Buffer{}
	s := &server{handler: readapi.NewHandler(readToken, failingLister{}, slog.New(slog.NewJSONHandler(logs, nil))), logs: logs}
	a := s.get(t, "")
	if a.status != http.StatusServiceUnavailable || bytes.Contains(a.body, []byte("6379")) {
		t.Errorf("Redis down: %d %s; want 503 without internals", a.status, a.body)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the log does not say why: %s", logs.String())
	}
}
