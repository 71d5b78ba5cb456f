package strava

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
)

func TestGetAuthenticatedAthlete(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/api/v3/athlete", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		testMethod(t, r, http.MethodGet)
		testHeader(t, r, "Authorization", "Bearer "+testAccessToken)
		testHeader(t, r, "User-Agent", DefaultUserAgent)
		answer(w, http.StatusOK, `{"id":134815,"username":"marianne_t","resource_state":3,"firstname":"Marianne","lastname":"Teutenberg",`+
			`"city":"San Francisco","state":"CA","country":"US","sex":"F","premium":true,"created_at":"2017-11-14T02:30:05Z",`+
			`"updated_at":"2018-02-06T19:32:20Z","badge_type_id":4,"profile_medium":"https://xxxxxx.cloudfront.net/pictures/athletes/123456789/123456789/2/medium.jpg",`+
			`"follower_count":5,"friend_count":5,"measurement_preference":"feet","ftp":null,"weight":0,"clubs":[],"bikes":[],"shoes":[]}`)
	})
	a, resp, err := c.GetAuthenticatedAthlete(context.Background(), testAccessToken)
	if err != nil {
		t.Fatal(err)
	}
	want := Athlete{ID: 134815, ResourceState: 3, Username: "marianne_t", FirstName: "Marianne", LastName: "Teutenberg", City: "San Francisco", Country: "US"}
	if *a != want {
		t.Errorf("athlete = %+v, want %+v", *a, want)
	}
	if resp.RateLimit != documentedRateLimit {
		t.Errorf("RateLimit = %+v", resp.RateLimit)
	}
	if calls.Load() != 1 {
		t.Errorf("calls = %d", calls.Load())
	}
}

func TestGetAuthenticatedAthleteUnauthorized(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/athlete", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusUnauthorized, body401)
	})
	a, resp, err := c.GetAuthenticatedAthlete(context.Background(), testAccessToken)
	if a != nil || !IsUnauthorized(err) || IsTransient(err) {
		t.Fatalf("got %v, %v; want a 401", a, err)
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("response = %+v", resp)
	}
	testNoSecrets(t, err)
}

func TestAthleteNameGreetsByWhatTheAthleteShares(t *testing.T) {
	tests := []struct {
		athlete Athlete
		want    string
	}{
		{Athlete{ID: 134815, Username: "marianne_t", FirstName: "Marianne", LastName: "Teutenberg"}, "Marianne Teutenberg"},
		{Athlete{ID: 134815, Username: "marianne_t", FirstName: "Marianne"}, "Marianne"},
		{Athlete{ID: 134815, Username: "marianne_t", LastName: "Teutenberg"}, "Teutenberg"},
		{Athlete{ID: 134815, Username: "marianne_t"}, "marianne_t"},
		{Athlete{ID: 134815}, "athlete 134815"},
	}
	for _, tt := range tests {
		if got := tt.athlete.Name(); got != tt.want {
			t.Errorf("%+v.Name() = %q, want %q", tt.athlete, got, tt.want)
		}
	}
}
