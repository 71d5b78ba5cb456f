package processor

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/logtest"
	"github.com/stravahook/stravahook/lib/strava"
)

// A healthy drain logs its summary at info and nothing above; a drain that
// fails logs it at error, with the cause, and does not claim to know how
// many events remain.
func TestDrainSummaryLogAndRemaining(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.queueCreates(jane, 1, 1)
	logs := &logtest.Buffer{}
	p := New(Config{Now: e.clock.Now}, e.queue, e.store, e.client, slog.New(slog.NewJSONHandler(logs, nil)))

	sum := e.drain(p)
	if sum.Kept != 1 || sum.Remaining != 0 {
		t.Fatalf("summary %+v, want 1 kept, 0 remaining", sum)
	}
	lines := logs.Lines(t)
	last := lines[len(lines)-1]
	if last["msg"] != "drain" || last["level"] != "INFO" || last["kept"] != float64(1) || last["error"] != nil {
		t.Errorf("summary line %v, want an info line with kept=1", last)
	}
	for _, l := range lines {
		if l["level"] != "INFO" && l["level"] != "DEBUG" {
			t.Errorf("a healthy drain logged %v", l)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.enqueue(event(strava.AspectCreate, jane, 2, 10))
	sum, err := p.Drain(ctx)
	if err == nil || sum.Remaining != -1 {
		t.Fatalf("interrupted drain: %+v, %v; want an error and Remaining -1 (not counted)", sum, err)
	}
	lines = logs.Lines(t)
	last = lines[len(lines)-1]
	if last["msg"] != "drain" || last["level"] != "ERROR" || last["remaining"] != float64(-1) || !strings.Contains(fmt.Sprint(last["error"]), "interrupted") {
		t.Errorf("summary line %v, want an error line with the cause", last)
	}
}

// MinLease is the budget plus the longest piece of work that may start at
// its very end: a token wait (20 s), a Strava call (10 s), the settling
// round trips (2 × 5 s) and a 30 s margin.
func TestMinLease(t *testing.T) {
	for budget, want := range map[time.Duration]time.Duration{8 * time.Second: 78 * time.Second, time.Minute: 130 * time.Second} {
		if got := MinLease(budget); got != want {
			t.Errorf("MinLease(%s) = %s, want %s", budget, got, want)
		}
	}
}

// An athlete whose refresh Strava refuses is named once per drain in a
// warning (the operator's cue to ask them to reconnect), however many of
// their events the drain holds.
func TestReconnectNeededIsWarnedOncePerDrain(t *testing.T) {
	e := newEnv(t)
	e.save(stored(jane, "access-revoked", "refresh-revoked", e.clock.Now().Add(time.Hour)))
	e.queueCreates(jane, 12, 3)
	logs := &logtest.Buffer{}
	sum := e.drain(New(Config{Now: e.clock.Now, Concurrency: 4}, e.queue, e.store, e.client, slog.New(slog.NewJSONHandler(logs, nil))))
	if sum.Held != 3 {
		t.Fatalf("summary %+v, want Jane's 3 events held", sum)
	}
	warnings := 0
	for _, l := range logs.Lines(t) {
		if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "must reconnect") && l["athlete"] == float64(jane) {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings that Jane must reconnect, want 1", warnings)
	}
}

// A drain stopped mid-claim still stores the notifications of the work it
// finished (with a short context of its own), so that work is acked and
// not redone after the lease.
func TestStoppedDrainStoresTheNotificationsOfFinishedWork(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.queueCreates(jane, 8000, 12)
	e.strava.holdAfter(t, 4, 100)
	rcv := newReceiver(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Summary, 1)
	go func() {
		sum, _ := e.processor(Config{Concurrency: 4, Notifier: e.notifier(rcv.srv.URL, testNotifySecret, nil)}).Drain(ctx)
		done <- sum
	}()
	e.strava.waitBlocked(t, 4) // 4 kept, every worker stuck in a call
	cancel()
	var sum Summary
	select {
	case sum = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Drain did not return after its context was cancelled")
	}
	if sum.Kept != 4 || sum.Notifications == nil || sum.Notifications.Stored != 4 {
		t.Fatalf("stopped drain: %+v (notifications %+v), want 4 kept and their 4 notifications stored", sum, sum.Notifications)
	}
	if s := e.stats(); s.Ready+s.Delayed != 8 {
		t.Errorf("queue %+v after the stop, want only the 8 unfinished events (the 4 done ones acked)", s)
	}
}
