package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// loseRotatedRefreshes makes the Strava double, while on, rotate a
// refresh as usual and then never answer it, so that a drain can be
// killed after the rotation and before it saved the new pair. hanging()
// counts the refreshes held right now.
type loseRotatedRefreshes struct {
	mu       sync.Mutex
	on       bool
	held     int
	released chan struct{}
}

func loseRotations(t *testing.T, double *stravatest.Server) *loseRotatedRefreshes {
	l := &loseRotatedRefreshes{released: make(chan struct{})}
	double.Wrap(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		l.mu.Lock()
		on := l.on && r.URL.Path == "/oauth/token" && r.FormValue("grant_type") == "refresh_token"
		l.mu.Unlock()
		if !on {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(httptest.NewRecorder(), r) // rotated: the old refresh token is dead...
		l.mu.Lock()
		l.held++
		l.mu.Unlock()
		select { // ...and the new pair never reaches the drain
		case <-r.Context().Done():
		case <-l.released:
		}
		l.mu.Lock()
		l.held--
		l.mu.Unlock()
	})
	t.Cleanup(func() { close(l.released) })
	return l
}

func (l *loseRotatedRefreshes) set(on bool) {
	l.mu.Lock()
	l.on = on
	l.mu.Unlock()
}

func (l *loseRotatedRefreshes) hanging() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
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
	lost := loseRotations(t, c.strava)
	for _, id := range []int64{first, second} {
		c.strava.AddActivity(strava.DetailedActivity{ID: id, Athlete: strava.MetaAthlete{ID: athlete}, Name: "Ride",
			Type: "Ride", SportType: "Ride", Distance: 1000, StartDate: time.Now().Add(-time.Hour)})
	}

	ctx := context.Background()
	st := c.store()
	// The access token expires within the refresh margin (as far as we
	// know): the drain must refresh before fetching.
	tok := c.strava.IssueToken(athlete, "")
	if err := st.SaveAthlete(ctx, store.Athlete{ID: athlete, Name: "Jane Doe", AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
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

	lost.set(true)
	cmd, exited, childOut, childErr := startDrain(t, bin, c.env, "30s")
	waitFor(t, "Strava to rotate the token inside the drain's refresh", func() bool { return lost.hanging() == 1 })
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatalf("the killed drain exited 0\nstdout: %s\nstderr: %s", childOut.String(), childErr.String())
	}
	lost.set(false)
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
	if n := c.strava.Calls(stravatest.RouteRefresh); n != 2 {
		t.Errorf("%d refreshes at Strava, want 2: the one rotated and lost, the one refused", n)
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
	if page := consent(t, web.URL+"/api/connect", "approve"); !strings.Contains(page, "Jane Doe") {
		t.Fatalf("reconnect page: %s", page)
	}
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
