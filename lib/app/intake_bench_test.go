package app_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

// BenchmarkActivityUpdatePOST is the intake's hot path in process: decode,
// validate, subscription check, one enqueue round trip, JSON answer, log line.
// Each iteration is a distinct event, so dedupe never short-circuits.
// Against the real server: STRAVAHOOK_TEST_REDIS_URL=redis://127.0.0.1:6379/15 go test -run '^$' -bench POST ./lib/app
func BenchmarkActivityUpdatePOST(b *testing.B) {
	r := rdbtest.New(b)
	env := map[string]string{"STRAVA_VERIFY_TOKEN": "t", "STRAVAHOOK_REDIS_PREFIX": r.Prefix, "REDIS_URL": r.URL, "STRAVA_SUBSCRIPTION_ID": "122449"}
	cfg, err := app.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	h := app.New(cfg, r.Client, slog.New(slog.NewJSONHandler(io.Discard, nil))).Routes()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := fmt.Sprintf(`{"aspect_type":"create","event_time":%d,"object_id":%d,"object_type":"activity","owner_id":28004310,"subscription_id":122449,"updates":{}}`, 1522986611+i, 1491968222+i)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/activity_update", strings.NewReader(body)))
			if rec.Code != http.StatusOK {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
}
