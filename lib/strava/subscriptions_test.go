package strava

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

const testCallbackURL = "https://stravahook.example/api/activity_update"

func TestCreateSubscription(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		testMethod(t, r, http.MethodPost)
		testHeader(t, r, "Authorization", "")
		testHeader(t, r, "User-Agent", DefaultUserAgent)
		testForm(t, r, map[string]string{
			"client_id":     testClientID,
			"client_secret": testClientSecret,
			"callback_url":  testCallbackURL,
			"verify_token":  "STRAVA",
		})
		if r.URL.RawQuery != "" {
			t.Errorf("query = %q, want the credentials in the body only", r.URL.RawQuery)
		}
		answer(w, http.StatusCreated, `{"id":120475}`)
	})
	sub, err := c.CreateSubscription(context.Background(), testCallbackURL, "STRAVA")
	if err != nil {
		t.Fatal(err)
	}
	if sub.ID != 120475 || sub.CallbackURL != testCallbackURL {
		t.Errorf("subscription = %+v", sub)
	}
	if calls.Load() != 1 {
		t.Errorf("calls = %d", calls.Load())
	}
}

func TestCreateSubscriptionRefused(t *testing.T) {
	tests := []struct {
		name, body, wantMsg string
	}{
		{
			name:    "callback not verifiable",
			body:    `{"message":"Bad Request","errors":[{"resource":"PushSubscription","field":"callback url","code":"not verifiable"}]}`,
			wantMsg: "strava: 400 Bad Request (PushSubscription callback url not verifiable)",
		},
		{
			name:    "callback GET not 200",
			body:    `{"message":"Bad Request","errors":[{"resource":"PushSubscription","field":"callback url","code":"GET to callback URL does not return 200"}]}`,
			wantMsg: "strava: 400 Bad Request (PushSubscription callback url GET to callback URL does not return 200)",
		},
		{
			name:    "already exists",
			body:    `{"message":"Bad Request","errors":[{"resource":"PushSubscription","field":"","code":"already exists"}]}`,
			wantMsg: "strava: 400 Bad Request (PushSubscription already exists)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux := setup(t)
			mux.HandleFunc("/api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
				answer(w, http.StatusBadRequest, tt.body)
			})
			sub, err := c.CreateSubscription(context.Background(), testCallbackURL, "STRAVA")
			if sub != nil || err == nil || err.Error() != tt.wantMsg {
				t.Fatalf("got %v, %v; want %q", sub, err, tt.wantMsg)
			}
			if IsTransient(err) {
				t.Error("a refusal is not transient")
			}
			testNoSecrets(t, err)
		})
	}
}

func TestCreateSubscriptionAnswerWithoutID(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusCreated, `{}`)
	})
	if sub, err := c.CreateSubscription(context.Background(), testCallbackURL, "STRAVA"); err == nil {
		t.Fatalf("got %+v, want an error", sub)
	}
}

func TestListSubscriptions(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		testMethod(t, r, http.MethodGet)
		testHeader(t, r, "Authorization", "")
		testValues(t, "query", r.URL.Query(), map[string]string{"client_id": testClientID, "client_secret": testClientSecret})
		answer(w, http.StatusOK, `[{"id":120475,"resource_state":2,"application_id":5,"callback_url":"`+testCallbackURL+`",`+
			`"created_at":"2018-05-26T13:04:57.827954368Z","updated_at":"2018-05-26T13:04:57.827954368Z"}]`)
	})
	subs, err := c.ListSubscriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2018, 5, 26, 13, 4, 57, 827954368, time.UTC)
	want := Subscription{ID: 120475, ResourceState: 2, ApplicationID: 5, CallbackURL: testCallbackURL, CreatedAt: created, UpdatedAt: created}
	if len(subs) != 1 || subs[0] != want {
		t.Errorf("subscriptions = %+v, want [%+v]", subs, want)
	}
	if calls.Load() != 1 {
		t.Errorf("calls = %d", calls.Load())
	}
}

func TestListSubscriptionsNone(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusOK, `[]`)
	})
	subs, err := c.ListSubscriptions(context.Background())
	if err != nil || len(subs) != 0 {
		t.Fatalf("got %+v, %v; want none", subs, err)
	}
}

func TestListSubscriptionsBadCredentials(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/push_subscriptions", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusUnauthorized, `{"message":"Authorization Error","errors":[{"resource":"Application","field":"client_secret","code":"invalid"}]}`)
	})
	_, err := c.ListSubscriptions(context.Background())
	if !IsUnauthorized(err) {
		t.Fatalf("err = %v, want 401", err)
	}
	testNoSecrets(t, err)
}

func TestDeleteSubscription(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/api/v3/push_subscriptions/120475", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		testMethod(t, r, http.MethodDelete)
		testHeader(t, r, "User-Agent", DefaultUserAgent)
		testValues(t, "query", r.URL.Query(), map[string]string{"client_id": testClientID, "client_secret": testClientSecret})
		w.Header().Set("X-RateLimit-Limit", "200,2000")
		w.Header().Set("X-RateLimit-Usage", "13,341")
		w.WriteHeader(http.StatusNoContent)
	})
	if err := c.DeleteSubscription(context.Background(), 120475); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("calls = %d", calls.Load())
	}
}

func TestDeleteSubscriptionNotFound(t *testing.T) {
	c, mux := setup(t)
	mux.HandleFunc("/api/v3/push_subscriptions/120475", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusNotFound, `{"message":"Resource Not Found","errors":[{"resource":"PushSubscription","field":"id","code":"not found"}]}`)
	})
	err := c.DeleteSubscription(context.Background(), 120475)
	if !IsNotFound(err) {
		t.Fatalf("err = %v, want 404", err)
	}
	testNoSecrets(t, err)
}

func TestDeleteSubscriptionInvalidID(t *testing.T) {
	c, mux := setup(t)
	var calls atomic.Int32
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	if err := c.DeleteSubscription(context.Background(), 0); err == nil {
		t.Error("want an error")
	}
	if calls.Load() != 0 {
		t.Errorf("Strava called %d times", calls.Load())
	}
}
