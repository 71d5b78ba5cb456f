package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// Anyone can post events for any athlete id. 2,000 creates and deletes
// (STRAVAHOOK_TEST_UNKNOWN_OWNERS=10000 for the figure) for
// athletes who are not connected, through serve's intake: the drains
// that follow make no Strava call, bury nothing, and leave nothing of them
// in Redis. On a real Redis the test logs the server's memory before,
// after the intake and after the drains (used_memory; other tests running
// on the same server blur it).
func TestEventsOfUnknownOwnersCostNothing(t *testing.T) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("STRAVAHOOK_TEST_UNKNOWN_OWNERS")); err == nil && v > 0 {
		n = v
	}
	c := newCLI(t)
	base := startServe(t, c.env)
	memory := func() string {
		if c.redis.Mini != nil {
			return "n/a (embedded)"
		}
		info, err := c.redis.Client.Do(t.Context(), c.redis.Client.B().Info().Section("memory").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				b, _ := strconv.ParseFloat(v, 64)
				return fmt.Sprintf("%.2f MB", b/1e6)
			}
		}
		return "?"
	}
	before := memory()

	var wg sync.WaitGroup
	posts := make(chan int)
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 32 {
		wg.Go(func() {
			for i := range posts {
				aspect := "create"
				if i%5 == 4 {
					aspect = "delete"
				}
				body := fmt.Sprintf(`{"aspect_type":%q,"event_time":1764500000,"object_id":%d,"object_type":"activity","owner_id":%d,"subscription_id":120475,"updates":{}}`,
					aspect, 18000000000+i, 900000+i%2500)
				resp, err := http.Post(base+"/api/activity_update", "application/json", strings.NewReader(body))
				status := 0
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	for i := range n {
		posts <- i
	}
	close(posts)
	wg.Wait()
	if statuses[200] != n {
		t.Fatalf("intake answers %v, want %d × 200", statuses, n)
	}
	afterIntake := memory()

	drained, drainMS := 0, 0
	for drained < n {
		code, out, stderr := c.run("process", "-budget", "30s")
		var sum struct {
			Claimed, Dropped, Dead, Fetched int
			DurationMS                      int `json:"duration_ms"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &sum) != nil {
			t.Fatalf("process = %d %q %q", code, out, stderr)
		}
		if sum.Claimed == 0 {
			break
		}
		if sum.Dropped != sum.Claimed || sum.Dead != 0 || sum.Fetched != 0 {
			t.Fatalf("drain %s: want every claimed event dropped", out)
		}
		drained += sum.Dropped
		drainMS += sum.DurationMS
	}
	calls := c.strava.Calls(stravatest.RouteActivity) + c.strava.Calls(stravatest.RouteRefresh)
	code, out, _ := c.run("queue", "status", "-json")
	if code != 0 || !strings.Contains(out, `"ready":0,`) || !strings.Contains(out, `"dead":0,`) {
		t.Errorf("queue after the drains: %s; want empty, nothing dead", out)
	}
	if keys := c.redis.KeysHolding(t, "queue:"); len(keys) != 0 {
		t.Errorf("queue keys left: %v", keys)
	}
	if drained != n || calls != 0 {
		t.Errorf("%d of %d events dropped, %d Strava calls; want all dropped, no call", drained, n, calls)
	}
	t.Logf("%d events of unknown owners: %d Strava calls, 0 dead, drained in %d ms; Redis used_memory %s before, %s after the intake, %s after the drains",
		n, calls, drainMS, before, afterIntake, memory())
}
