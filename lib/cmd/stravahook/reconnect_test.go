package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// rotatingStrava rotates refresh tokens as Strava does: once it has issued
// a new pair, the old refresh token is refused. While hangAfterRotate is
// set, it rotates and then never answers, so that the drain can be killed
// after the rotation and before it saved the new pair. It also serves the
// OAuth code exchange of /api/connect_callback and activities for whoever
// holds the latest access token.
type rotatingStrava struct {
	srv *httptest.Server

	mu              sync.Mutex
	athlete         int64
	refreshToken    string // the one valid refresh token
	accessToken     string // the one valid access token
	issued          int
	hangAfterRotate bool
	hanging         int // refreshes rotated and held right now
	refused         int
	released        chan struct{}
}

func newRotatingStrava(t *testing.T, athlete int64, refreshToken string) *rotatingStrava {
	s := &rotatingStrava{athlete: athlete, refreshToken: refreshToken, accessToken: "access-0",
		released: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		s.mu.Lock()
		switch r.Form.Get("grant_type") {
		case "refresh_token":
			if r.Form.Get("refresh_token") != s.refreshToken {
				s.refused++
				s.mu.Unlock()
				stravaError(w, 400, `{"message":"Bad Request","errors":[{"resource":"RefreshToken","field":"refresh_token","code":"invalid"}]}`)
				return
			}
		case "authorization_code":
			if r.Form.Get("code") != "code-from-strava" {
				s.mu.Unlock()
				stravaError(w, 400, `{"message":"Bad Request","errors":[{"resource":"AuthorizationCode","field":"code","code":"invalid"}]}`)
				return
			}
		default:
			s.mu.Unlock()
			stravaError(w, 400, `{"message":"Bad Request","errors":[{"resource":"Application","field":"grant_type","code":"invalid"}]}`)
			return
		}
		s.issued++
		s.accessToken = fmt.Sprintf("access-%d", s.issued)
		s.refreshToken = fmt.Sprintf("refresh-%d", s.issued)
		body := fmt.Sprintf(`{"token_type":"Bearer","access_token":%q,"expires_at":%d,"expires_in":21600,"refresh_token":%q,"athlete":{"id":%d,"firstname":"Jane","lastname":"Doe"}}`,
			s.accessToken, time.Now().Add(6*time.Hour).Unix(), s.refreshToken, s.athlete)
		hang := s.hangAfterRotate && r.Form.Get("grant_type") == "refresh_token"
		if hang {
			s.hanging++
		}
		s.mu.Unlock()
		if hang {
			// Rotated: the old refresh token is dead, and the new pair never
			// reaches the drain.
			select {
			case <-r.Context().Done():
			case <-s.released:
			}
			s.mu.Lock()
			s.hanging--
			s.mu.Unlock()
			return
		}
		writeJSONBody(w, 200, body)
	})
	mux.HandleFunc("GET /api/v3/activities/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		s.mu.Lock()
		ok := r.Header.Get("Authorization") == "Bearer "+s.accessToken
		s.mu.Unlock()
		if !ok {
			stravaError(w, 401, `{"message":"Authorization Error","errors":[{"resource":"Athlete","field":"access_token","code":"invalid"}]}`)
			return
		}
		writeJSONBody(w, 200, fmt.Sprintf(`{"id":%d,"resource_state":3,"athlete":{"id":%d,"resource_state":1},"name":"Ride %d","distance":1000,"moving_time":60,"elapsed_time":60,"type":"Ride","sport_type":"Ride","start_date":"2026-11-26T12:00:00Z"}`, id, s.athlete, id))
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(s.released)
		s.srv.Close()
	})
	return s
}

func (s *rotatingStrava) snapshot() (hanging, refused, issued int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hanging, s.refused, s.issued
}

// Kill a drain (SIGKILL) while Strava is inside a refresh it has already
// rotated: the new pair is lost, and the stored refresh token is dead. The
// next drain's refresh is refused. That must not read as a
// deauthorization: the athlete and every kept activity stay, a new event
// is held (no attempt spent, not dead, counted by `queue status`), `athlete
// list` says the athlete must reconnect, and once they connect again
// through /api/connect the held event is fetched and kept.
func TestDrainKilledMidRefreshKeepsTheAthleteUntilReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it as a child process")
	}
	const (
		athlete = int64(134815)
		kept1   = int64(17000000001)
		kept2   = int64(17000000002)
		first   = int64(17000000010) // queued before the kill
		second  = int64(17000000011) // arrives after it
	)
	bin := buildCLI(t)
	c := newCLI(t)
	fake := newRotatingStrava(t, athlete, "refresh-0")
	c.env["STRAVA_BASE_URL"] = fake.srv.URL

	ctx := context.Background()
	st := c.store()
	// The access token expires within the refresh margin: the drain must
	// refresh before fetching.
	if err := st.SaveAthlete(ctx, store.Athlete{ID: athlete, Name: "Jane Doe", AccessToken: "access-0", RefreshToken: "refresh-0",
		ExpiresAt: time.Now().Add(time.Minute), Scope: "read,activity:read_all"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{kept1, kept2} {
		if err := st.KeepActivity(ctx, strava.DetailedActivity{ID: id, Athlete: strava.MetaAthlete{ID: athlete}, Name: "kept earlier",
			StartDate: time.Now().Add(-time.Hour)}, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	q := queue.New(c.redis.Client, c.redis.Prefix+"queue:")
	enqueue := func(id int64) string {
		t.Helper()
		ev := strava.Event{ObjectType: strava.ObjectActivity, ObjectID: id, AspectType: strava.AspectCreate,
			OwnerID: athlete, SubscriptionID: 120475, EventTime: time.Now().Unix()}
		if added, err := q.Enqueue(ctx, ev.Key(), ev.Payload()); err != nil || !added {
			t.Fatalf("Enqueue(%s) = %v, %v", ev.Key(), added, err)
		}
		return ev.Key()
	}
	firstKey := enqueue(first)

	fake.mu.Lock()
	fake.hangAfterRotate = true
	fake.mu.Unlock()
	cmd, exited, childOut, childErr := startDrain(t, bin, c.env, "30s")
	waitFor(t, "Strava to rotate the token inside the drain's refresh", func() bool {
		hanging, _, _ := fake.snapshot()
		return hanging == 1
	})
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatalf("the killed drain exited 0\nstdout: %s\nstderr: %s", childOut.String(), childErr.String())
	}
	fake.mu.Lock()
	fake.hangAfterRotate = false
	fake.mu.Unlock()
	// The killed drain held the athlete's refresh lock (15 s TTL): delete
	// it, which is what its expiry amounts to, rather than wait.
	if err := c.redis.Client.Do(ctx, c.redis.Client.B().Del().Key(c.redis.Prefix+fmt.Sprintf("athlete:%d:refresh_lock", athlete)).Build()).Error(); err != nil {
		t.Fatal(err)
	}

	// A new event arrives, and a drain runs.
	enqueue(second)
	code, out, stderr := c.run("process", "-budget", "5s")
	if code != 0 {
		t.Fatalf("drain after the kill: exit %d\n%s\n%s", code, out, stderr)
	}
	var sum struct{ Claimed, Held, Dead, Deauthorized, Kept int }
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if sum.Claimed != 1 || sum.Held != 1 || sum.Dead != 0 || sum.Deauthorized != 0 {
		t.Errorf("drain after the kill: %s; want the new event claimed and held", out)
	}
	if _, refused, _ := fake.snapshot(); refused != 1 {
		t.Errorf("Strava refused %d refreshes, want 1", refused)
	}
	a, err := st.Athlete(ctx, athlete)
	if err != nil || !a.NeedsReconnect() {
		t.Fatalf("athlete after a refused refresh = %+v, %v; want stored, marked as needing to reconnect", a, err)
	}
	for _, id := range []int64{kept1, kept2} {
		if _, err := st.Activity(ctx, id); err != nil {
			t.Errorf("kept activity %d: %v; want it still kept", id, err)
		}
	}
	stats, err := q.Stats(ctx)
	if err != nil || stats.Held != 1 || stats.Dead != 0 || stats.Delayed != 1 {
		t.Errorf("queue = %+v, %v; want the new event held, the killed drain's still leased", stats, err)
	}
	code, out, _ = c.run("queue", "status")
	if code != 0 || !strings.Contains(out, "held:    1") {
		t.Errorf("queue status = %d %q; want 1 held", code, out)
	}
	code, out, _ = c.run("athlete", "list")
	if code != 0 || !strings.Contains(out, "RECONNECT NEEDED") {
		t.Errorf("athlete list = %d %q; want the athlete marked RECONNECT NEEDED", code, out)
	}

	// The athlete connects again through /api/connect.
	cfg, err := app.LoadConfig(func(k string) string { return c.env[k] })
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(app.New(cfg, c.redis.Client, slog.New(slog.DiscardHandler)).Routes())
	t.Cleanup(web.Close)
	connectAgain(t, web.URL)
	if a, err := st.Athlete(ctx, athlete); err != nil || a.NeedsReconnect() {
		t.Fatalf("athlete after reconnecting = %+v, %v; want connected", a, err)
	}
	if s, _ := q.Stats(ctx); s.Held != 0 || s.Ready != 1 {
		t.Errorf("queue after reconnecting = %+v; want the held event ready", s)
	}

	// The killed drain's lease ends (scored with its wall clock: score it
	// 0, which is what its end amounts to), and a drain fetches both.
	pendingKey := c.redis.Prefix + "queue:pending"
	if err := c.redis.Client.Do(ctx, c.redis.Client.B().Zadd().Key(pendingKey).Xx().ScoreMember().ScoreMember(0, firstKey).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = c.run("process", "-budget", "5s")
	if code != 0 {
		t.Fatalf("drain after reconnecting: exit %d\n%s\n%s", code, out, stderr)
	}
	sum = struct{ Claimed, Held, Dead, Deauthorized, Kept int }{}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if sum.Kept != 2 || sum.Held != 0 || sum.Dead != 0 {
		t.Errorf("drain after reconnecting: %s; want both events kept", out)
	}
	for _, id := range []int64{first, second, kept1, kept2} {
		if _, err := st.Activity(ctx, id); err != nil {
			t.Errorf("activity %d: %v; want it kept", id, err)
		}
	}
	if s, err := q.Stats(ctx); err != nil || s.Ready+s.Delayed+s.Held+s.Dead != 0 {
		t.Errorf("queue at the end = %+v, %v; want empty", s, err)
	}
}

// connectAgain runs the browser's side of /api/connect: the redirect to
// Strava, the athlete's consent (Strava's redirect back with a code), the
// callback.
func connectAgain(t *testing.T, base string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(base + "/api/connect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authorize, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("/api/connect = %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	back := base + "/api/connect_callback?" + url.Values{
		"state": {authorize.Query().Get("state")}, "code": {"code-from-strava"}, "scope": {"read,activity:read_all"},
	}.Encode()
	resp, err = browser.Get(back)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/api/connect_callback = %d: %s", resp.StatusCode, body)
	}
}
