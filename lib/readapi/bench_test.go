package readapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
	"github.com/stravahook/stravahook/lib/readapi"
	"github.com/stravahook/stravahook/lib/readapi/readapitest"
	"github.com/stravahook/stravahook/lib/store"
)

// benchActivities is the read API's largest page: 1,000 kept activities
// with 200-point summary polylines (a 10-20 km track at Strava's summary
// resolution), spread over two athletes.
func benchActivities(b *testing.B) (*store.Store, int) {
	b.Helper()
	r := rdbtest.New(b)
	st := store.New(r.Client, r.Prefix)
	newest := time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC)
	for athlete := range int64(2) {
		if err := st.SaveAthlete(b.Context(), store.Athlete{ID: 100 + athlete, AccessToken: "a", RefreshToken: "r", ExpiresAt: newest}); err != nil {
			b.Fatal(err)
		}
		for _, a := range readapitest.Activities(500, 200, 100+athlete, newest.Add(-time.Duration(athlete)*time.Minute), uint64(athlete)) {
			if err := st.KeepActivity(b.Context(), a, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	}
	return st, 1000
}

// BenchmarkAnswer1000 is the server side of GET /api/activities for 1,000
// kept activities: the Redis reads (SMEMBERS, the pipelined ZRANGEs, one
// MGET), decoding, encoding and the ETag, through real HTTP on loopback.
// Redis is the embedded one unless STRAVAHOOK_TEST_REDIS_URL names one.
func BenchmarkAnswer1000(b *testing.B) {
	st, n := benchActivities(b)
	srv := httptest.NewServer(readapi.NewHandler(readToken, st, slog.New(slog.NewJSONHandler(io.Discard, nil))))
	defer srv.Close()
	for _, format := range []string{"geojson", "json"} {
		b.Run(format, func(b *testing.B) {
			var size int64
			cpu0, _ := processCPUTime()
			for range b.N {
				req, _ := http.NewRequest("GET", srv.URL+"/api/activities?limit=1000&format="+format, nil)
				req.Header.Set("Authorization", "Bearer "+readToken)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				size, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
			reportCPU(b, cpu0)
			b.ReportMetric(float64(size)/1e6, "MB/answer")
			b.ReportMetric(float64(n), "activities")
		})
	}
}

// BenchmarkEncodeGeoJSON1000 is the encoding alone (polyline decoding and
// JSON), to tell it from the Redis reads.
func BenchmarkEncodeGeoJSON1000(b *testing.B) {
	st, _ := benchActivities(b)
	acts, err := st.ListActivities(b.Context(), store.ActivityQuery{Limit: 1000})
	if err != nil || len(acts) != 1000 {
		b.Fatalf("%d activities, %v", len(acts), err)
	}
	b.ResetTimer()
	var buf []byte
	cpu0, _ := processCPUTime()
	for range b.N {
		if buf, err = readapi.AppendGeoJSON(nil, acts); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
	b.ReportMetric(float64(len(buf))/1e6, "MB/answer")
}

// reportCPU adds the process's CPU time per op since cpu0 (this process
// only: a real Redis's own CPU is not in it; the embedded one's is).
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if cpu1, ok := processCPUTime(); ok {
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}
