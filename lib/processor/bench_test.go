package processor

import (
	"context"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/strava"
)

// BenchmarkDrain1000 drains 1,000 queued creates of 10 athletes with the
// default Config while the stand-in takes 50 ms per GetActivity. One Drain
// (one budget) must do them all with exactly one GET each. It reports
// Strava calls per drain, Redis commands per event and wall seconds per
// drain.
//
//	go test -run '^$' -bench Drain1000 -benchtime 3x ./lib/processor
func BenchmarkDrain1000(b *testing.B) {
	const events = benchEvents
	e := newBenchEnv(b)
	p := New(Config{Now: e.clock.Now}, e.queue, e.store, e.client, nil)

	var (
		wall  time.Duration
		calls int
		cmds  int64
	)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		e.queueBenchRound(i)
		getsBefore, cmdsBefore := e.strava.totalGets(), e.cmds.count()
		sum, elapsed := timedDrain(b, p)
		gets := e.strava.totalGets() - getsBefore
		if sum.Kept != events || sum.Remaining != 0 || gets != events {
			b.Fatalf("one drain: %+v with %d GETs; want all %d kept with one GET each (budget %s)", sum, gets, events, DefaultBudget)
		}
		wall += elapsed
		calls += gets
		cmds += e.cmds.count() - cmdsBefore
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
	b.ReportMetric(float64(cmds)/float64(b.N*events), "redis-cmds/event")
	b.ReportMetric(wall.Seconds()/float64(b.N), "s/drain")
}

// Each benchmark drain is benchEvents creates of benchAthletes athletes.
const benchEvents, benchAthletes = 1000, 10

// newBenchEnv is an env with benchAthletes connected and a Strava stand-in
// taking 50 ms per GetActivity under a quota no benchmark reaches.
func newBenchEnv(b *testing.B) *env {
	e := newEnv(b)
	for a := range int64(benchAthletes) {
		e.connect(1_000_000 + a)
	}
	e.strava.delay = 50 * time.Millisecond
	e.strava.setLimits(1_000_000, 1_000_000) // a quota this benchmark never reaches
	return e
}

// queueBenchRound queues round i's benchEvents creates: new activities,
// spread over the athletes, each known to the stand-in.
func (e *env) queueBenchRound(i int) {
	for j := range int64(benchEvents) {
		owner := 1_000_000 + j%benchAthletes
		id := int64(10_000_000 + i*benchEvents + int(j))
		e.strava.activity(id, owner)
		e.enqueue(event(strava.AspectCreate, owner, id, 1_700_000_000+j))
	}
}

// timedDrain runs one drain with the benchmark's timer on for the drain
// alone; it fails the benchmark on an error and returns the drain's
// summary and wall time.
func timedDrain(b *testing.B, p *Processor) (Summary, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	b.StartTimer()

	start := time.Now()
	sum, err := p.Drain(ctx)
	elapsed := time.Since(start)

	b.StopTimer()
	cancel()
	if err != nil {
		b.Fatalf("Drain: %v", err)
	}
	return sum, elapsed
}
