package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

// With Redis stalled (connections open, nothing answered: a SIGSTOPped
// server, a half-open connection), every POST still gets its answer, a 503,
// and none is acknowledged. The subscription id is read from Redis here
// (no STRAVA_SUBSCRIPTION_ID), so the lookup waits on the stall too. The
// client's 5 s timeout only makes a hang fail fast; how fast the answers
// come is measured by .bench/stall.sh.
func TestStalledRedisAnswers503ToConcurrentPosts(t *testing.T) {
	r := rdbtest.New(t)
	proxy := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	in := newIntakeOn(t, r, proxy.URL(), nil)
	if status, body := in.post(t, `{"aspect_type":"create","event_time":1,"object_id":11,"object_type":"activity","owner_id":5,"subscription_id":1}`); status != 200 {
		t.Fatalf("before the stall: %d %s", status, body)
	}
	proxy.Stall()
	defer proxy.Restore()
	client := &http.Client{Timeout: 5 * time.Second}
	const posts = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	var slowest time.Duration
	for i := range posts {
		wg.Go(func() {
			body := fmt.Sprintf(`{"aspect_type":"create","event_time":2,"object_id":%d,"object_type":"activity","owner_id":5,"subscription_id":1}`, 100+i)
			start := time.Now()
			resp, err := client.Post(in.srv.URL+"/api/activity_update", "application/json", strings.NewReader(body))
			took := time.Since(start)
			status := 0
			if err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			statuses[status]++
			slowest = max(slowest, took)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("%d POSTs with Redis stalled: %v, slowest %s", posts, statuses, slowest)
	if statuses[http.StatusServiceUnavailable] != posts {
		t.Fatalf("answers %v; want all %d 503 (0: no answer before the client gave up)", statuses, posts)
	}
}
