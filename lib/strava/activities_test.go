package strava

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestGetActivity(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	activityJSON := readTestdata(t, "activity.json")
	mux.HandleFunc("/api/v3/activities/12312312312", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		testMethod(t, r, http.MethodGet)
		testHeader(t, r, "Authorization", "Bearer "+testAccessToken)
		testHeader(t, r, "User-Agent", DefaultUserAgent)
		testHeader(t, r, "Accept", "application/json")
		if r.RequestURI != "/api/v3/activities/12312312312" {
			t.Errorf("request URI = %q, want the path alone, without a query or a bare '?'", r.RequestURI)
		}
		answer(w, http.StatusOK, activityJSON)
	})

	a, resp, err := c.GetActivity(context.Background(), testAccessToken, 12312312312)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("calls = %d, want 1", calls.Load())
	}
	if resp.RateLimit != documentedRateLimit {
		t.Errorf("RateLimit = %+v", resp.RateLimit)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"id", a.ID, int64(12312312312)},
		{"resource_state", a.ResourceState, 3},
		{"external_id", a.ExternalID, "garmin_push_12345678987654321"},
		{"upload_id", a.UploadID, int64(98765432123)},
		{"athlete", a.Athlete, MetaAthlete{ID: 134815, ResourceState: 1}},
		{"name", a.Name, "Happy Friday"},
		{"distance", a.Distance, 28099.0},
		{"moving_time", a.MovingTime, 4207},
		{"elapsed_time", a.ElapsedTime, 4410},
		{"total_elevation_gain", a.TotalElevationGain, 516.0},
		{"type", a.Type, "Ride"},
		{"sport_type", a.SportType, "MountainBikeRide"},
		{"start_date", a.StartDate, time.Date(2018, 2, 16, 14, 52, 54, 0, time.UTC)},
		{"start_date_local", a.StartDateLocal, "2018-02-16T06:52:54Z"},
		{"timezone", a.Timezone, "(GMT-08:00) America/Los_Angeles"},
		{"utc_offset", a.UTCOffset, -28800.0},
		{"start_latlng", len(a.StartLatLng), 2},
		{"map.id", a.Map.ID, "a1410355832"},
		{"gear_id", a.GearID, "b12345678987654321"},
		{"average_speed", a.AverageSpeed, 6.679},
		{"max_speed", a.MaxSpeed, 18.5},
		{"calories", a.Calories, 870.2},
		{"private", a.Private, false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if a.Map.SummaryPolyline == "" || a.Map.Polyline == "" {
		t.Error("map polylines not decoded")
	}
	// Notifications carry the answer whole, fields we do not decode
	// (segment_efforts, laps, …) included.
	if string(a.Raw) != strings.TrimSpace(activityJSON) {
		t.Errorf("Raw is not Strava's answer byte for byte:\n got %.200s\nwant %.200s", a.Raw, activityJSON)
	}
}

func TestGetActivityNotFound(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/activities/12312312312", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusNotFound, body404)
	})
	a, resp, err := c.GetActivity(context.Background(), testAccessToken, 12312312312)
	if a != nil || !IsNotFound(err) {
		t.Fatalf("got %v, %v; want nil and a 404", a, err)
	}
	if err.Error() != "strava: 404 Record Not Found (Activity id not found)" {
		t.Errorf("err = %q", err)
	}
	if resp == nil || resp.StatusCode != http.StatusNotFound || resp.RateLimit != documentedRateLimit {
		t.Errorf("response = %+v, want the 404 with its rate limits", resp)
	}
}

func TestGetActivityRateLimited(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/activities/12312312312", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Limit", "200,2000")
		w.Header().Set("X-RateLimit-Usage", "201,2000")
		w.Header().Set("X-ReadRateLimit-Limit", "100,1000")
		w.Header().Set("X-ReadRateLimit-Usage", "101,1000")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(body429))
	})
	_, resp, err := c.GetActivity(context.Background(), testAccessToken, 12312312312)
	if !IsRateLimited(err) || IsTransient(err) {
		t.Fatalf("err = %v, want a 429 that is not transient", err)
	}
	var se *Error
	errors.As(err, &se)
	if !se.RateLimit.Exhausted() || !resp.RateLimit.Exhausted() {
		t.Errorf("RateLimit = %+v, want exhausted", se.RateLimit)
	}
	now := time.Date(2024, 3, 9, 23, 50, 0, 0, time.UTC)
	if got, want := se.RateLimit.ResetAt(now), time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("ResetAt = %s, want %s (the daily limit is used up)", got, want)
	}
}

func TestGetActivityUsageAtLimitOnSuccess(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/activities/1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RateLimit-Limit", "200,2000")
		w.Header().Set("X-RateLimit-Usage", "200,340")
		w.Write([]byte(`{"id":1,"name":"Morning Run","type":"Run","start_date":"2024-03-09T07:00:00Z"}`))
	})
	a, resp, err := c.GetActivity(context.Background(), testAccessToken, 1)
	if err != nil || a.Name != "Morning Run" {
		t.Fatalf("got %+v, %v", a, err)
	}
	if !resp.RateLimit.Exhausted() {
		t.Error("usage at the limit on a 200 must read as exhausted, so the caller stops before a 429")
	}
	now := time.Date(2024, 3, 9, 12, 7, 0, 0, time.UTC)
	if got := resp.RateLimit.ResetAt(now); !got.Equal(time.Date(2024, 3, 9, 12, 15, 0, 0, time.UTC)) {
		t.Errorf("ResetAt = %s, want 12:15", got)
	}
}

func TestGetActivityInvalidID(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	for _, id := range []int64{0, -1} {
		if _, _, err := c.GetActivity(context.Background(), testAccessToken, id); err == nil {
			t.Errorf("GetActivity(%d): want an error", id)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("Strava called %d times for invalid ids", calls.Load())
	}
}
