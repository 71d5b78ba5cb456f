package stravatest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/clocktest"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// noRedirects is a browser that stops at each redirect, so the test sees
// where Strava sends it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestOAuthFlowFromApprovePageToTokens(t *testing.T) {
	s := stravatest.NewT(t)
	jane := s.AddSampleData()
	client := s.Client()
	const redirect = "https://app.example/api/connect_callback"

	authURL := client.AuthCodeURL("state-123", redirect, "read,activity:read_all")
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `name="decision" value="approve"`) || !strings.Contains(string(page), "Jane Doe") {
		t.Fatalf("authorize page: %d %s", resp.StatusCode, page)
	}

	form := url.Values{"client_id": {s.ClientID}, "redirect_uri": {redirect}, "scope": {"read,activity:read_all"},
		"state": {"state-123"}, "athlete_id": {"134815"}, "decision": {"approve"}}
	resp, err = noRedirects.PostForm(s.URL+"/oauth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || back.Host != "app.example" || back.Query().Get("state") != "state-123" ||
		back.Query().Get("scope") != "read,activity:read_all" || back.Query().Get("code") == "" {
		t.Fatalf("approve: %d to %s", resp.StatusCode, back)
	}
	code := back.Query().Get("code")

	tok, err := client.ExchangeCode(ctx(t), code)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Athlete == nil || tok.Athlete.ID != jane.ID || tok.Athlete.FirstName != "Jane" || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("exchange: %+v", tok)
	}
	if _, err := client.ExchangeCode(ctx(t), code); !strava.IsRefreshRefused(err) {
		t.Fatalf("second use of a code: %v, want Strava's 400", err)
	}
	who, _, err := client.GetAuthenticatedAthlete(ctx(t), tok.AccessToken)
	if err != nil || who.ID != jane.ID || who.Name() != "Jane Doe" {
		t.Fatalf("athlete: %+v %v", who, err)
	}
	if !s.Authorized(jane.ID) || s.Calls(stravatest.RouteExchange) != 2 || s.Calls(stravatest.RouteAuthorize) != 2 {
		t.Fatalf("authorized %v, exchanges %d, authorize calls %d", s.Authorized(jane.ID),
			s.Calls(stravatest.RouteExchange), s.Calls(stravatest.RouteAuthorize))
	}

	// Cancel sends the athlete back with Strava's error.
	form.Set("decision", "deny")
	resp, err = noRedirects.PostForm(s.URL+"/oauth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ = url.Parse(resp.Header.Get("Location"))
	if back.Query().Get("error") != "access_denied" || back.Query().Get("code") != "" || back.Query().Get("state") != "state-123" {
		t.Fatalf("deny: to %s", back)
	}
}

func TestAuthorizeRefusesAnotherApplication(t *testing.T) {
	s := stravatest.NewT(t)
	other := strava.NewClient(strava.Options{BaseURL: s.URL, ClientID: "999", ClientSecret: "x"})
	resp, err := http.Get(other.AuthCodeURL("s", "https://app.example/cb", "read"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"field":"client_id"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if _, err := other.RefreshToken(ctx(t), "anything"); !strava.IsAppCredentialsRejected(err) {
		t.Fatalf("refresh with wrong app credentials: %v", err)
	}
}

func TestAutoApproveCompletesTheFlowForAClientThatFollowsRedirects(t *testing.T) {
	s := stravatest.NewT(t)
	s.AddSampleData()
	s.AutoApprove(stravatest.SampleAthleteID)
	var landed *url.URL
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { landed = r.URL }))
	defer app.Close()
	resp, err := http.Get(s.Client().AuthCodeURL("st", app.URL+"/cb", ""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if landed == nil || landed.Query().Get("code") == "" || landed.Query().Get("scope") != "read" {
		t.Fatalf("landed at %v", landed)
	}
}

func TestRefreshRotatesAndRefusesTheOldToken(t *testing.T) {
	s := stravatest.NewT(t)
	first := s.IssueToken(42, "")
	client := s.Client()

	second, err := client.RefreshToken(ctx(t), first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken || second.ExpiresAt.IsZero() {
		t.Fatalf("no rotation: %v after %v", second, first)
	}
	_, err = client.RefreshToken(ctx(t), first.RefreshToken)
	var se *strava.Error
	if !strava.IsRefreshRefused(err) || !errors.As(err, &se) || se.StatusCode != 400 || se.Message != "Bad Request" ||
		len(se.Errors) != 1 || se.Errors[0] != (strava.ErrorDetail{Resource: "RefreshToken", Field: "refresh_token", Code: "invalid"}) {
		t.Fatalf("old refresh token: %v, want Strava's documented 400", err)
	}
	if _, err := client.RefreshToken(ctx(t), second.RefreshToken); err != nil {
		t.Fatalf("the rotated token: %v", err)
	}
	if n := s.Calls(stravatest.RouteRefresh); n != 3 {
		t.Fatalf("refresh calls %d, want 3", n)
	}
}

func TestActivitiesAreRealisticAndGuarded(t *testing.T) {
	c := clocktest.New(time.Date(2030, 1, 7, 10, 5, 0, 0, time.UTC))
	s := stravatest.NewT(t, stravatest.WithClock(c.Now))
	tok := s.IssueToken(7, "read")
	client := s.Client()

	seen := map[string]bool{}
	for _, sport := range []string{"Run", "Ride", "MountainBikeRide", "Walk", "Hike", "Swim", "VirtualRide"} {
		want := s.NewActivity(7, sport)
		got, resp, err := client.GetActivity(ctx(t), tok.AccessToken, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		seen[got.Type] = true
		if got.ID != want.ID || got.ID < 1<<32 || got.Athlete.ID != 7 || got.SportType != sport || got.Distance <= 0 ||
			got.MovingTime <= 0 || got.ElapsedTime < got.MovingTime || !got.StartDate.Before(c.Now()) || got.Name == "" {
			t.Fatalf("%s: %+v", sport, got)
		}
		hasMap := got.Map.SummaryPolyline != "" && got.Map.Polyline != "" && len(got.StartLatLng) == 2
		if hasMap == (sport == "Swim" || sport == "VirtualRide") {
			t.Fatalf("%s: map %+v", sport, got.Map)
		}
		if !resp.RateLimit.Known() || resp.RateLimit.ReadLimit15 != 100 {
			t.Fatalf("rate limit headers: %+v", resp.RateLimit)
		}
	}
	if len(seen) < 5 {
		t.Fatalf("types %v", seen)
	}

	// Someone else's activity, a deleted one, and a private one without
	// activity:read_all are all 404; a bad token is 401.
	other := s.NewActivity(8, "Run")
	gone := s.NewActivity(7, "Run")
	s.DeleteActivity(gone.ID)
	private := s.NewActivity(7, "Run")
	s.UpdateActivity(private.ID, func(a *strava.DetailedActivity) { a.Private = true })
	for _, id := range []int64{other.ID, gone.ID, private.ID} {
		if _, _, err := client.GetActivity(ctx(t), tok.AccessToken, id); !strava.IsNotFound(err) {
			t.Fatalf("activity %d: %v, want 404", id, err)
		}
	}
	if _, _, err := client.GetActivity(ctx(t), "not-a-token", private.ID); !strava.IsUnauthorized(err) {
		t.Fatalf("bad token: %v", err)
	}
	c.Advance(stravatest.TokenLifetime)
	if _, _, err := client.GetActivity(ctx(t), tok.AccessToken, other.ID); !strava.IsUnauthorized(err) {
		t.Fatalf("expired token: %v", err)
	}
	if s.ActivityCalls(private.ID) != 2 {
		t.Fatalf("calls for %d: %d", private.ID, s.ActivityCalls(private.ID))
	}
}

func TestTheSamplePolylineDecodes(t *testing.T) {
	s := stravatest.NewT(t)
	s.AddSampleData()
	for _, a := range s.Activities(stravatest.SampleAthleteID) {
		pts := decode(t, a.Map.SummaryPolyline)
		if len(pts) < 5 {
			t.Fatalf("%s: %d points", a.Name, len(pts))
		}
		if d := abs(pts[0][0]-a.StartLatLng[0]) + abs(pts[0][1]-a.StartLatLng[1]); d > 0.02 {
			t.Fatalf("%s starts at %v, polyline at %v", a.Name, a.StartLatLng, pts[0])
		}
	}
}

func abs(f float64) float64 { return max(f, -f) }

// decode is the reference decoder of Google's polyline format.
func decode(t *testing.T, s string) [][2]float64 {
	var pts [][2]float64
	var lat, lng int64
	i := 0
	next := func() int64 {
		var result, shift uint
		for {
			if i >= len(s) {
				t.Fatalf("truncated polyline %q", s)
			}
			b := uint(s[i]) - 63
			i++
			result |= (b & 0x1f) << shift
			shift += 5
			if b < 0x20 {
				break
			}
		}
		if result&1 != 0 {
			return ^int64(result >> 1)
		}
		return int64(result >> 1)
	}
	for i < len(s) {
		lat += next()
		lng += next()
		pts = append(pts, [2]float64{float64(lat) / 1e5, float64(lng) / 1e5})
	}
	return pts
}

// callback is a subscriber's endpoint: it answers the validation GET with
// verifyToken, and POSTs with the statuses in answers (then 200).
type callback struct {
	verifyToken string
	mu          sync.Mutex
	answers     []int
	events      []string
	srv         *httptest.Server
}

func newCallback(t *testing.T, verifyToken string, answers ...int) *callback {
	c := &callback{verifyToken: verifyToken, answers: answers}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			q := r.URL.Query()
			if q.Get("hub.mode") != "subscribe" || q.Get("hub.verify_token") != c.verifyToken {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"hub.challenge": q.Get("hub.challenge")})
			return
		}
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		status := 200
		if len(c.answers) > 0 {
			status, c.answers = c.answers[0], c.answers[1:]
		}
		c.events = append(c.events, string(body))
		c.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *callback) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.events...)
}

func TestSubscriptionLifecycleValidatesTheCallback(t *testing.T) {
	s := stravatest.NewT(t)
	client := s.Client()
	cb := newCallback(t, "verify-me")

	if _, err := client.CreateSubscription(ctx(t), cb.srv.URL, "wrong-token"); err == nil || !strings.Contains(err.Error(), "callback url") {
		t.Fatalf("create with a callback that refuses the token: %v", err)
	}
	sub, err := client.CreateSubscription(ctx(t), cb.srv.URL, "verify-me")
	if err != nil || sub.ID != stravatest.DefaultSubscriptionID {
		t.Fatalf("create: %+v %v", sub, err)
	}
	if _, err := client.CreateSubscription(ctx(t), cb.srv.URL, "verify-me"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create: %v", err)
	}
	subs, err := client.ListSubscriptions(ctx(t))
	if err != nil || len(subs) != 1 || subs[0].CallbackURL != cb.srv.URL || subs[0].ApplicationID != 12345 {
		t.Fatalf("list: %+v %v", subs, err)
	}
	if err := client.DeleteSubscription(ctx(t), 999); !strava.IsNotFound(err) {
		t.Fatalf("delete another id: %v", err)
	}
	if err := client.DeleteSubscription(ctx(t), sub.ID); err != nil {
		t.Fatal(err)
	}
	if subs, _ := client.ListSubscriptions(ctx(t)); len(subs) != 0 {
		t.Fatalf("after delete: %+v", subs)
	}
	if _, err := s.Push(ctx(t), stravatest.ActivityEvent(strava.AspectCreate, 1, 2, nil)); !errors.Is(err, stravatest.ErrNoSubscription) {
		t.Fatalf("push without a subscription: %v", err)
	}
}

func subscribe(t *testing.T, s *stravatest.Server, cb *callback) {
	t.Helper()
	if _, err := s.Client().CreateSubscription(ctx(t), cb.srv.URL, cb.verifyToken); err != nil {
		t.Fatal(err)
	}
}

func TestPushRetriesLikeStrava(t *testing.T) {
	s := stravatest.NewT(t)
	s.SetPushRetryDelay(0)
	cb := newCallback(t, "v", 503, 500, 200, 500, 500, 500)
	subscribe(t, s, cb)

	res, err := s.Push(ctx(t), stravatest.ActivityEvent(strava.AspectCreate, 134815, 12312312312, nil))
	if err != nil || !res.Delivered || res.Attempts != 3 || res.Status != 200 {
		t.Fatalf("push: %+v %v", res, err)
	}
	got := cb.received()
	if len(got) != 3 || got[0] != got[2] {
		t.Fatalf("deliveries %q", got)
	}
	ev, err := strava.DecodeEvent([]byte(got[0]))
	if err != nil || ev.SubscriptionID != stravatest.DefaultSubscriptionID || ev.ObjectID != 12312312312 || ev.EventTime == 0 {
		t.Fatalf("event %+v %v", ev, err)
	}
	if !strings.Contains(got[0], `"updates":{}`) {
		t.Fatalf("body %s", got[0])
	}

	res, err = s.Push(ctx(t), stravatest.DeauthorizationEvent(134815))
	if err != nil || res.Delivered || res.Attempts != 3 || res.Status != 500 || s.Calls(stravatest.RoutePush) != 6 {
		t.Fatalf("undeliverable push: %+v %v, %d attempts in all", res, err, s.Calls(stravatest.RoutePush))
	}
}

func TestPushGivesUpOnACallbackSlowerThanTwoSeconds(t *testing.T) {
	s := stravatest.NewT(t)
	s.SetPushRetryDelay(0)
	release := make(chan struct{})
	var posts sync.WaitGroup
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"hub.challenge": r.URL.Query().Get("hub.challenge")})
			return
		}
		posts.Add(1)
		defer posts.Done()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	if _, err := s.Client().CreateSubscription(ctx(t), slow.URL, "v"); err != nil {
		t.Fatal(err)
	}
	res, err := s.Push(ctx(t), stravatest.ActivityEvent(strava.AspectDelete, 1, 2, nil))
	if err != nil || res.Delivered || res.Attempts != 3 || res.Status != 0 || res.Error == "" {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestFaultKnobs(t *testing.T) {
	c := clocktest.New(time.Date(2030, 1, 7, 10, 5, 0, 0, time.UTC))
	s := stravatest.NewT(t, stravatest.WithClock(c.Now))
	tok := s.IssueToken(7, "")
	act := s.NewActivity(7, "Run")
	client := s.Client()
	get := func() (*strava.Response, error) {
		_, resp, err := client.GetActivity(ctx(t), tok.AccessToken, act.ID)
		return resp, err
	}

	s.FailNext(stravatest.RouteActivity, 2, 503)
	for range 2 {
		if _, err := get(); !strava.IsTransient(err) {
			t.Fatalf("forced 503: %v", err)
		}
	}
	if _, err := get(); err != nil {
		t.Fatalf("after the failures: %v", err)
	}

	// A call over the limit is refused and still counted.
	s.SetRateLimit(strava.RateLimit{Limit15: 600, LimitDaily: 30000, ReadLimit15: 5, ReadLimitDaily: 1000, ReadUsage15: 4})
	resp, err := get()
	if err != nil || resp.RateLimit.ReadUsage15 != 5 || !resp.RateLimit.Exhausted() {
		t.Fatalf("at the limit: %+v %v", resp, err)
	}
	resp, err = get()
	if !strava.IsRateLimited(err) || resp.RateLimit.ReadUsage15 != 6 {
		t.Fatalf("over the limit: %v %+v", err, resp)
	}
	c.Advance(15 * time.Minute) // a new window
	if resp, err := get(); err != nil || resp.RateLimit.ReadUsage15 != 1 || resp.RateLimit.ReadUsageDaily != 3 {
		t.Fatalf("next window: %+v %v", resp, err)
	}

	// Intercept sees the call with its number and may answer instead.
	var seen []stravatest.Call
	s.Intercept(func(call stravatest.Call, w http.ResponseWriter, r *http.Request) bool {
		seen = append(seen, call)
		http.Error(w, "upstream hiccup", http.StatusBadGateway)
		return true
	})
	if _, err := get(); !strava.IsTransient(err) {
		t.Fatalf("intercepted: %v", err)
	}
	s.Intercept(nil)
	want := stravatest.Call{Route: stravatest.RouteActivity, N: 7, AthleteID: 7, ActivityID: act.ID}
	if len(seen) != 1 || seen[0] != want {
		t.Fatalf("intercepted %+v, want %+v", seen, want)
	}
	if s.Calls(stravatest.RouteActivity) != 7 || s.ActivityCalls(act.ID) != 7 {
		t.Fatalf("calls %d", s.Calls(stravatest.RouteActivity))
	}
}

func TestLatencyHoldsTheAnswerUntilTheCallerGivesUp(t *testing.T) {
	s := stravatest.NewT(t)
	tok := s.IssueToken(7, "")
	act := s.NewActivity(7, "Ride")
	s.SetLatency(time.Hour)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := s.Client().GetActivity(short, tok.AccessToken, act.ID); !strava.IsTransient(err) {
		t.Fatalf("%v, want a timeout", err)
	}
	s.SetLatency(0)
}

func TestDeauthorizationRevokesAndPushesTheEvent(t *testing.T) {
	s := stravatest.NewT(t)
	s.SetPushRetryDelay(0)
	cb := newCallback(t, "v")
	subscribe(t, s, cb)
	tok := s.IssueToken(55, "")
	client := s.Client()

	if err := client.Deauthorize(ctx(t), tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	if s.Authorized(55) {
		t.Fatal("still authorized")
	}
	if _, _, err := client.GetAuthenticatedAthlete(ctx(t), tok.AccessToken); !strava.IsUnauthorized(err) {
		t.Fatalf("after deauthorize: %v", err)
	}
	if _, err := client.RefreshToken(ctx(t), tok.RefreshToken); !strava.IsRefreshRefused(err) {
		t.Fatalf("refresh after deauthorize: %v", err)
	}
	s.Close() // waits for the background push
	got := cb.received()
	if len(got) != 1 {
		t.Fatalf("events %q", got)
	}
	ev, err := strava.DecodeEvent([]byte(got[0]))
	if err != nil || !ev.IsDeauthorization() || ev.OwnerID != 55 {
		t.Fatalf("%+v %v", ev, err)
	}
}

func TestTriggerOverHTTP(t *testing.T) {
	s := stravatest.NewT(t)
	s.SetPushRetryDelay(0)
	cb := newCallback(t, "v")
	subscribe(t, s, cb)
	s.AddSampleData()
	s.IssueToken(stravatest.SampleAthleteID, "")
	before := len(s.Activities(stravatest.SampleAthleteID))

	trigger := func(form url.Values) (int, stravatest.TriggerResult) {
		resp, err := http.PostForm(s.URL+"/_sandbox/trigger", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res stravatest.TriggerResult
		json.NewDecoder(resp.Body).Decode(&res)
		return resp.StatusCode, res
	}
	status, created := trigger(url.Values{"kind": {"create"}})
	if status != 200 || !created.Push.Delivered || created.Activity == nil || created.AthleteID != stravatest.SampleAthleteID {
		t.Fatalf("create: %d %+v", status, created)
	}
	if got := len(s.Activities(stravatest.SampleAthleteID)); got != before+1 {
		t.Fatalf("activities %d, want %d", got, before+1)
	}
	status, updated := trigger(url.Values{"kind": {"update"}})
	if status != 200 || updated.Activity.ID != created.Activity.ID || updated.Push.Event.Updates["title"] == "" {
		t.Fatalf("update: %d %+v", status, updated)
	}
	status, deleted := trigger(url.Values{"kind": {"delete"}, "activity": {"99"}})
	if status != 400 {
		t.Fatalf("delete of an unknown activity: %d %+v", status, deleted)
	}
	status, deleted = trigger(url.Values{"kind": {"delete"}})
	if _, ok := s.Activity(created.Activity.ID); status != 200 || ok || deleted.Push.Event.AspectType != "delete" {
		t.Fatalf("delete: %d %+v", status, deleted)
	}
	status, _ = trigger(url.Values{"kind": {"deauthorize"}})
	if status != 200 || s.Authorized(stravatest.SampleAthleteID) {
		t.Fatalf("deauthorize: %d", status)
	}
	if status, _ := trigger(url.Values{"kind": {"create"}}); status != 400 {
		t.Fatalf("create with nobody authorized: %d", status)
	}
	if n := len(cb.received()); n != 4 {
		t.Fatalf("%d events delivered, want 4", n)
	}
}

func TestWrapCanLoseTheAnswerOfARefreshThatRotated(t *testing.T) {
	s := stravatest.NewT(t)
	tok := s.IssueToken(9, "")
	s.Wrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Path != "/oauth/token" {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(httptest.NewRecorder(), r)    // Strava rotates...
		http.Error(w, "lost", http.StatusBadGateway) // ...and the answer is lost
	})
	if _, err := s.Client().RefreshToken(ctx(t), tok.RefreshToken); err == nil {
		t.Fatal("the lost answer reached the client")
	}
	s.Wrap(nil)
	if _, err := s.Client().RefreshToken(ctx(t), tok.RefreshToken); !strava.IsRefreshRefused(err) {
		t.Fatalf("the rotated-away token: %v, want refused", err)
	}
}
