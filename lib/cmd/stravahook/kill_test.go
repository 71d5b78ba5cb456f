package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// hangs holds the double's GET /api/v3/activities/{id} for the ids in
// hangIDs, once a first GET was answered (the drain makes one call until
// the first answer tells it the rate limit), while hanging is on: the
// drain is then caught in the middle of its calls.
type hangs struct {
	strava *stravatest.Server

	mu       sync.Mutex
	hanging  bool
	hangIDs  map[int64]bool
	answered int           // GETs let through
	hung     int           // GETs held right now
	released chan struct{} // closed when the test ends: no call outlives it
}

func hangAt(t *testing.T, double *stravatest.Server, hangIDs map[int64]bool) *hangs {
	h := &hangs{strava: double, hanging: true, hangIDs: hangIDs, released: make(chan struct{})}
	double.Intercept(func(call stravatest.Call, w http.ResponseWriter, r *http.Request) bool {
		if call.Route != stravatest.RouteActivity {
			return false
		}
		h.mu.Lock()
		hang := h.hanging && h.hangIDs[call.ActivityID] && h.answered > 0
		if hang {
			h.hung++
		} else {
			h.answered++
		}
		h.mu.Unlock()
		if !hang {
			return false
		}
		select {
		case <-r.Context().Done(): // the drain died or gave up
		case <-h.released:
		}
		h.mu.Lock()
		h.hung--
		h.mu.Unlock()
		return true
	})
	t.Cleanup(func() { close(h.released) })
	return h
}

func (h *hangs) state() (answered, hung int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.answered, h.hung
}

func (h *hangs) totalGets() int { return h.strava.Calls(stravatest.RouteActivity) }

func (h *hangs) stopHanging() {
	h.mu.Lock()
	h.hanging = false
	h.mu.Unlock()
}

// buildCLI builds the stravahook binary from this package.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stravahook")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startDrain runs `process -budget budget` as a child process with env
// added to the test's environment; exited receives its end. The test's
// cleanup kills it if the test did not.
func startDrain(t *testing.T, bin string, env map[string]string, budget string) (cmd *exec.Cmd, exited chan error, stdout, stderr *bytes.Buffer) {
	t.Helper()
	cmd = exec.Command(bin, "process", "-budget", budget)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return cmd, exited, stdout, stderr
}

// waitFor polls cond until it holds; giving up after a generous bound is a
// failure of the scenario, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A drain killed halfway (SIGKILL: no deferred code, no acks) loses
// nothing, and the next drain finishes the work: every activity kept
// exactly once, the queue empty, no activity fetched more than twice.
func TestDrainKilledHalfwayLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it as a child process")
	}
	const (
		n       = 30
		athlete = 134815
		firstID = 17000000000 // above 32 bits, as Strava's ids are
	)
	bin := buildCLI(t)
	c := newCLI(t)
	hangIDs := map[int64]bool{}
	for i := range n {
		if i%3 == 2 {
			hangIDs[firstID+int64(i)] = true
		}
	}
	fake := hangAt(t, c.strava, hangIDs)
	for i := range n {
		c.strava.AddActivity(strava.DetailedActivity{ID: firstID + int64(i), Athlete: strava.MetaAthlete{ID: athlete},
			Name: fmt.Sprintf("Ride %d", i), Type: "Ride", SportType: "Ride", StartDate: time.Now().Add(-time.Hour)})
	}

	ctx := context.Background()
	st := c.store()
	saveJane(t, c)
	q := queue.New(c.redis.Client, c.redis.Prefix+"queue:")
	events := make([]strava.Event, n)
	for i := range events {
		// As the intake queues them (lib/webhook): id = Key(), payload =
		// Payload(), which for a create is nil (the key is the whole event).
		ev := strava.Event{ObjectType: strava.ObjectActivity, ObjectID: firstID + int64(i), AspectType: strava.AspectCreate,
			OwnerID: athlete, SubscriptionID: 120475, EventTime: time.Now().Unix()}
		if added, err := q.Enqueue(ctx, ev.Key(), ev.Payload()); err != nil || !added {
			t.Fatalf("Enqueue(%s) = %v, %v", ev.Key(), added, err)
		}
		events[i] = ev
	}

	// The first drain, as its own process.
	cmd, exited, childOut, childErr := startDrain(t, bin, c.env, "30s")

	// Halfway: every call made, those answered kept, the others hanging.
	keptCount := func() int {
		acts, err := st.Activities(ctx, athlete, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(acts)
	}
	waitFor(t, "the drain to be halfway", func() bool {
		answered, hung := fake.state()
		return hung > 0 && answered+hung == n && keptCount() == answered
	})
	keptBeforeKill := keptCount()
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatalf("the killed drain exited 0\nstdout: %s\nstderr: %s", childOut.String(), childErr.String())
	}
	if childOut.Len() != 0 {
		t.Fatalf("the killed drain printed a summary: %s", childOut.String())
	}
	t.Logf("killed with %d kept, %d hanging", keptBeforeKill, n-keptBeforeKill)

	// Nothing lost: every event is still queued, or its activity is kept.
	// (Acks are sent per claimed batch, once all of it is worked off, so
	// here every event should still be queued, its lease running.)
	stats, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Dead != 0 {
		t.Fatalf("after the kill: %+v, want nothing dead", stats)
	}
	pendingKey := c.redis.Prefix + "queue:pending"
	queued := map[string]bool{}
	members, err := c.redis.Client.Do(ctx, c.redis.Client.B().Zrange().Key(pendingKey).Min("0").Max("-1").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		queued[m] = true
	}
	if int64(len(queued)) != stats.Ready+stats.Delayed {
		t.Fatalf("pending holds %d, stats say %+v", len(queued), stats)
	}
	for _, ev := range events {
		if queued[ev.Key()] {
			continue
		}
		if _, err := st.Activity(ctx, ev.ObjectID); err != nil {
			t.Errorf("event %s left the queue, yet activity %d is not kept: %v", ev.Key(), ev.ObjectID, err)
		}
	}
	t.Logf("after the kill: %d queued (%d ready, %d delayed, %d leased), %d kept",
		len(queued), stats.Ready, stats.Delayed, stats.Leased, keptBeforeKill)

	// While the dead drain's lease runs, another drain leaves its events
	// alone and calls Strava for nothing.
	getsBefore := fake.totalGets()
	code, out, stderr := c.run("process", "-budget", "2s")
	if code != 0 || !bytes.Contains([]byte(out), []byte(`"claimed":0`)) || fake.totalGets() != getsBefore {
		t.Fatalf("drain during the lease: exit %d, %s %s; %d Strava calls", code, out, stderr, fake.totalGets()-getsBefore)
	}

	// The lease (processor.DefaultLease, 2 min) is scored with the drain's
	// wall clock, so neither waiting nor miniredis's FastForward ends it in
	// a test: score the leased events 0, which is what the lease ending
	// amounts to (their score falls into the past and they are ready).
	for _, m := range members {
		if err := c.redis.Client.Do(ctx, c.redis.Client.B().Zadd().Key(pendingKey).Xx().ScoreMember().ScoreMember(0, m).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}

	// The next drain, in process, with Strava answering everything.
	fake.stopHanging()
	code, out, stderr = c.run("process", "-budget", "30s")
	if code != 0 {
		t.Fatalf("second drain: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	var sum struct{ Claimed, Kept, Retried, Dead, Remaining int }
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if sum.Claimed != len(queued) || sum.Retried != 0 || sum.Dead != 0 || sum.Remaining != 0 {
		t.Errorf("second drain summary = %s; want %d claimed, none retried or dead, 0 remaining", out, len(queued))
	}

	acts, err := st.Activities(ctx, athlete, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int64]int{}
	for _, a := range acts {
		ids[a.ID]++
	}
	for _, ev := range events {
		if ids[ev.ObjectID] != 1 {
			t.Errorf("activity %d kept %d times, want 1", ev.ObjectID, ids[ev.ObjectID])
		}
	}
	if len(acts) != n || len(ids) != n {
		t.Errorf("%d activities kept (%d distinct), want %d", len(acts), len(ids), n)
	}
	if s, err := q.Stats(ctx); err != nil || s.Ready != 0 || s.Delayed != 0 || s.Dead != 0 || s.Leased != 0 {
		t.Errorf("queue after the second drain = %+v, %v; want empty", s, err)
	}
	for _, ev := range events {
		if got := c.strava.ActivityCalls(ev.ObjectID); got < 1 || got > 2 {
			t.Errorf("activity %d fetched %d times, want 1 or 2", ev.ObjectID, got)
		}
	}
}
