package stravatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
)

// DefaultSubscriptionID is the id the double gives its push subscription.
const DefaultSubscriptionID = 120475

// pushAttempts is how often Strava tries to deliver one event.
const pushAttempts = 3

// --- subscriptions ---

// beginApp is begin for a subscription call, which authenticates with the
// application's client id and secret: it answers 401 itself without them.
func (s *Server) beginApp(w http.ResponseWriter, r *http.Request, route Route) bool {
	if !s.begin(w, r, route, true, 0) {
		return false
	}
	if !s.appCredentialsOK(r) {
		writeError(w, http.StatusUnauthorized, "Authorization Error", "Application", "client_id", "invalid")
		return false
	}
	return true
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) {
	if !s.beginApp(w, r, RouteSubscriptionCreate) {
		return
	}
	callback := r.FormValue("callback_url")
	s.mu.Lock()
	exists := s.sub != nil
	s.mu.Unlock()
	if exists {
		writeError(w, http.StatusBadRequest, "Bad Request", "PushSubscription", "", "already exists")
		return
	}
	if err := s.validateCallback(r.Context(), callback, r.FormValue("verify_token")); err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request", "PushSubscription", "callback url", err.Error())
		return
	}
	now := s.now().UTC()
	s.mu.Lock()
	if s.sub != nil { // created meanwhile
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "Bad Request", "PushSubscription", "", "already exists")
		return
	}
	s.sub = &strava.Subscription{ID: DefaultSubscriptionID, ResourceState: 2, ApplicationID: appID(s.ClientID),
		CallbackURL: callback, CreatedAt: now, UpdatedAt: now}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]int64{"id": DefaultSubscriptionID})
}

func appID(clientID string) int64 {
	id, _ := strconv.ParseInt(clientID, 10, 64)
	return id
}

// validateCallback is Strava's check before it creates a subscription: a
// GET with hub.mode, hub.challenge and hub.verify_token, answered within
// 2 s with 200 and {"hub.challenge": <the challenge>}. The error is
// Strava's code for the failure.
func (s *Server) validateCallback(ctx context.Context, callback, verifyToken string) error {
	u, err := url.Parse(callback)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not verifiable")
	}
	challenge := randomToken()[:16]
	q := u.Query()
	q.Set("hub.mode", "subscribe")
	q.Set("hub.challenge", challenge)
	q.Set("hub.verify_token", verifyToken)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return errors.New("not verifiable")
	}
	resp, err := s.pushC.Do(req)
	if err != nil {
		return errors.New("not verifiable")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("GET to callback URL does not return 200")
	}
	var body map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body); err != nil || body["hub.challenge"] != challenge {
		return errors.New("not verifiable")
	}
	return nil
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	if !s.beginApp(w, r, RouteSubscriptionList) {
		return
	}
	subs := []strava.Subscription{}
	if sub, ok := s.Subscription(); ok {
		subs = append(subs, sub)
	}
	writeJSON(w, http.StatusOK, subs)
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	if !s.beginApp(w, r, RouteSubscriptionDelete) {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	found := s.sub != nil && s.sub.ID == id
	if found {
		s.sub = nil
	}
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "Resource Not Found", "PushSubscription", "id", "not found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Subscription is the application's push subscription, if one exists.
func (s *Server) Subscription() (strava.Subscription, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub == nil {
		return strava.Subscription{}, false
	}
	return *s.sub, true
}

// --- push ---

// PushResult is what came of delivering one event.
type PushResult struct {
	Event     strava.Event `json:"event"`
	Attempts  int          `json:"attempts"`
	Status    int          `json:"status"`          // the last attempt's status, 0 when it got no answer
	Error     string       `json:"error,omitempty"` // the last attempt's failure
	Delivered bool         `json:"delivered"`
}

// ErrNoSubscription is Push's error when nobody subscribed.
var ErrNoSubscription = errors.New("stravatest: no push subscription: create one first (POST /api/v3/push_subscriptions)")

// Push delivers ev to the subscription's callback as Strava does (see
// Deliver). A zero SubscriptionID or EventTime is filled in.
func (s *Server) Push(ctx context.Context, ev strava.Event) (PushResult, error) {
	s.mu.Lock()
	sub := s.sub
	retry := s.pushRetry
	now := s.now()
	s.mu.Unlock()
	if sub == nil {
		return PushResult{Event: ev}, ErrNoSubscription
	}
	if ev.SubscriptionID == 0 {
		ev.SubscriptionID = sub.ID
	}
	if ev.EventTime == 0 {
		ev.EventTime = now.Unix()
	}
	res := deliver(ctx, s.pushC, sub.CallbackURL, ev, retry, func() {
		s.mu.Lock()
		s.calls[RoutePush]++
		s.mu.Unlock()
	})
	return res, ctx.Err()
}

// Deliver POSTs ev to callback the way Strava pushes an event: its JSON
// body, 2 s for an answer, 200 to succeed, up to three attempts retryDelay
// apart. It returns when the event was delivered, the attempts ran out or
// ctx ended.
func Deliver(ctx context.Context, callback string, ev strava.Event, retryDelay time.Duration) PushResult {
	return deliver(ctx, &http.Client{Timeout: 2 * time.Second}, callback, ev, retryDelay, func() {})
}

func deliver(ctx context.Context, hc *http.Client, callback string, ev strava.Event, retry time.Duration, count func()) PushResult {
	body := eventJSON(ev)
	res := PushResult{Event: ev}
	for attempt := 1; attempt <= pushAttempts; attempt++ {
		if attempt > 1 {
			select {
			case <-time.After(retry):
			case <-ctx.Done():
				return res
			}
		}
		count()
		res.Attempts = attempt
		res.Status, res.Error = post(ctx, hc, callback, body)
		if res.Status == http.StatusOK {
			res.Delivered = true
			break
		}
	}
	return res
}

func post(ctx context.Context, hc *http.Client, callback string, body []byte) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callback, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Sprintf("callback answered %d", resp.StatusCode)
	}
	return resp.StatusCode, ""
}

// pushInBackground pushes ev without waiting, when a subscription exists
// (Strava sends a deauthorization after /oauth/deauthorize).
func (s *Server) pushInBackground(ev strava.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sub == nil || s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = s.Push(ctx, ev)
	}()
}

// eventJSON is an event as Strava posts it: updates always present.
func eventJSON(ev strava.Event) []byte {
	updates := ev.Updates
	if updates == nil {
		updates = map[string]string{}
	}
	b, _ := json.Marshal(struct {
		AspectType     string            `json:"aspect_type"`
		EventTime      int64             `json:"event_time"`
		ObjectID       int64             `json:"object_id"`
		ObjectType     string            `json:"object_type"`
		OwnerID        int64             `json:"owner_id"`
		SubscriptionID int64             `json:"subscription_id"`
		Updates        map[string]string `json:"updates"`
	}{ev.AspectType, ev.EventTime, ev.ObjectID, ev.ObjectType, ev.OwnerID, ev.SubscriptionID, updates})
	return b
}

// ActivityEvent is the event Strava sends when athleteID's activity
// changes (aspect strava.AspectCreate, AspectUpdate or AspectDelete).
func ActivityEvent(aspect string, athleteID, activityID int64, updates map[string]string) strava.Event {
	return strava.Event{ObjectType: strava.ObjectActivity, ObjectID: activityID, AspectType: aspect, OwnerID: athleteID, Updates: updates}
}

// DeauthorizationEvent is the event Strava sends when athleteID revokes
// the application.
func DeauthorizationEvent(athleteID int64) strava.Event {
	return strava.Event{ObjectType: strava.ObjectAthlete, ObjectID: athleteID, AspectType: strava.AspectUpdate,
		OwnerID: athleteID, Updates: map[string]string{"authorized": "false"}}
}
