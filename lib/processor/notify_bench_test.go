package processor

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDrain1000Notify is BenchmarkDrain1000's drain (1,000 creates of
// 10 athletes, Strava taking 50 ms per GET) without notifications and with
// one endpoint that takes 50 ms per notification. One Drain must keep all
// 1,000 and, with notifications, deliver all 1,000. It reports wall seconds
// per drain and Redis commands per event.
//
//	go test -run '^$' -bench Drain1000Notify -benchtime 3x ./lib/processor
func BenchmarkDrain1000Notify(b *testing.B) {
	for _, withNotify := range []bool{false, true} {
		name := "without"
		if withNotify {
			name = "with-endpoint-50ms"
		}
		b.Run(name, func(b *testing.B) { benchDrainNotify(b, withNotify) })
	}
}

func benchDrainNotify(b *testing.B, withNotify bool) {
	const events = benchEvents
	e := newBenchEnv(b)
	cfg := Config{Now: e.clock.Now}
	var received atomic.Int64
	if withNotify {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			time.Sleep(50 * time.Millisecond) // the endpoint's own work
			received.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}))
		b.Cleanup(srv.Close)
		cfg.Notifier = e.notifier(srv.URL, testNotifySecret, nil)
	}
	p := New(cfg, e.queue, e.store, e.client, nil)

	var (
		wall time.Duration
		cmds int64
	)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		e.queueBenchRound(i)
		receivedBefore, cmdsBefore := received.Load(), e.cmds.count()
		sum, elapsed := timedDrain(b, p)
		if sum.Kept != events || sum.Remaining != 0 {
			b.Fatalf("one drain: %+v; want all %d kept", sum, events)
		}
		if withNotify {
			if got := received.Load() - receivedBefore; sum.Notifications.Delivered != events || got != events {
				b.Fatalf("one drain: %+v, endpoint got %d; want all %d delivered", *sum.Notifications, got, events)
			}
		}
		wall += elapsed
		cmds += e.cmds.count() - cmdsBefore
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(cmds)/float64(b.N*events), "redis-cmds/event")
	b.ReportMetric(wall.Seconds()/float64(b.N), "s/drain")
}
