package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/logtest"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
)

// loggedProcessor is e.processor with its log lines kept for the test.
func loggedProcessor(e *env, cfg Config) (*Processor, *logtest.Buffer) {
	logs := &logtest.Buffer{}
	cfg.Now = e.clock.Now
	return New(cfg, e.queue, e.store, e.client, slog.New(slog.NewJSONHandler(logs, nil))), logs
}

// warnings are the lines above info: what an operator is paged about.
func warnings(t *testing.T, logs *logtest.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range logs.Lines(t) {
		if l["level"] != "INFO" && l["level"] != "DEBUG" {
			out = append(out, l)
		}
	}
	return out
}

// heldThenReconnected is a drain that held Jane's 3 events (Strava refused
// her refresh), and Jane connected again since (new tokens stored).
func heldThenReconnected(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.save(stored(jane, "access-revoked", "refresh-revoked", e.clock.Now().Add(time.Hour)))
	e.queueCreates(jane, 12, 3)
	if sum := e.drain(e.processor(Config{})); sum.Held != 3 {
		t.Fatalf("summary %+v, want Jane's 3 events held", sum)
	}
	access, refresh := e.strava.athlete(jane)
	e.save(stored(jane, access, refresh, e.clock.Now().Add(time.Hour)))
	return e
}

// When a drain releases the events held for an athlete who connected again
// (the connect callback's own release was lost), the operator reads which
// athlete and how many events, at info, and no warning.
func TestReleasingMissedHeldEventsIsLoggedOnce(t *testing.T) {
	e := heldThenReconnected(t)

	p, logs := loggedProcessor(e, Config{})
	if sum := e.drain(p); sum.Kept != 3 {
		t.Fatalf("summary %+v, want Jane's 3 events kept", sum)
	}
	released := 0
	for _, l := range logs.Lines(t) {
		if strings.Contains(fmt.Sprint(l["msg"]), "held events released") {
			released++
			if l["level"] != "INFO" || l["athlete"] != float64(jane) || l["events"] != float64(3) {
				t.Errorf("release line %v, want info, athlete %d, 3 events", l, jane)
			}
		}
	}
	if released != 1 {
		t.Errorf("%d lines saying held events were released, want 1", released)
	}
	if w := warnings(t, logs); len(w) != 0 {
		t.Errorf("a release that worked logged %v", w)
	}
}

// When the connect callback releases an athlete's held events while a drain
// is looking at them (between its list of held groups and its own release),
// the drain released nothing and says nothing about it: the events are the
// callback's to report.
func TestHeldEventsReleasedMeanwhileAreNotLoggedAsTheDrains(t *testing.T) {
	e := heldThenReconnected(t)

	// The drain reads the athlete it found a held group for: the callback
	// releases the group just before that read.
	callback := &beforeFirstRead{Client: e.cmds, command: "HGETALL", do: func() {
		if n, err := e.queue.Unhold(context.Background(), HoldGroup(jane)); err != nil || n != 3 {
			t.Errorf("the callback's release: %d events, %v; want 3", n, err)
		}
	}}
	st := store.New(callback, e.redis.Prefix)
	st.Now = e.clock.Now
	logs := &logtest.Buffer{}
	p := New(Config{Now: e.clock.Now}, e.queue, st, e.client, slog.New(slog.NewJSONHandler(logs, nil)))
	if sum := e.drain(p); sum.Kept != 3 {
		t.Fatalf("summary %+v, want Jane's 3 events kept", sum)
	}
	if !callback.done.Load() {
		t.Fatal("the drain read no athlete: the race was not staged")
	}
	for _, l := range logs.Lines(t) {
		if strings.Contains(fmt.Sprint(l["msg"]), "held events released") {
			t.Errorf("the drain logged %v for a release it did not make", l)
		}
	}
}

// beforeFirstRead runs do once, before the first command named command
// goes to Redis.
type beforeFirstRead struct {
	rueidis.Client
	command string
	do      func()
	done    atomic.Bool
}

func (c *beforeFirstRead) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if cmd.Commands()[0] == c.command && c.done.CompareAndSwap(false, true) {
		c.do()
	}
	return c.Client.Do(ctx, cmd)
}

// A confirmed deauthorization is logged once at info (athlete, what was
// deleted) and nothing above: releasing their (absent) held events worked.
func TestDeauthorizationIsLoggedWithoutWarnings(t *testing.T) {
	e := newEnv(t)
	e.connect(jane)
	e.keepBefore(10, jane)
	e.strava.Revoke(jane)
	e.enqueue(deauthorization(jane, 10))
	p, logs := loggedProcessor(e, Config{})
	if sum := e.drain(p); sum.Deauthorized != 1 {
		t.Fatalf("summary %+v, want 1 deauthorized", sum)
	}
	found := false
	for _, l := range logs.Lines(t) {
		if strings.Contains(fmt.Sprint(l["msg"]), "deauthorized us") && l["athlete"] == float64(jane) && l["activities_deleted"] == float64(1) {
			found = true
		}
	}
	if !found {
		t.Errorf("no line saying Jane deauthorized us with 1 activity deleted in %s", logs)
	}
	if w := warnings(t, logs); len(w) != 0 {
		t.Errorf("a deauthorization that worked logged %v", w)
	}
}

// The drain's summary line names why notifications are not sent, and only
// then.
func TestDrainLineNamesTheNotificationError(t *testing.T) {
	e, rcv := oneCreateAndReceiver(t)
	p, logs := loggedProcessor(e, Config{Notifier: e.notifier(rcv.srv.URL, "", nil)})
	e.drain(p)
	lines := logs.Lines(t)
	last := lines[len(lines)-1]
	if last["msg"] != "drain" || !strings.Contains(fmt.Sprint(last["notifications_error"]), "NOTIFY_SECRET is not set") {
		t.Errorf("summary line %v, want notifications_error saying NOTIFY_SECRET is not set", last)
	}

	e, rcv = oneCreateAndReceiver(t)
	p, logs = loggedProcessor(e, Config{Notifier: e.notifier(rcv.srv.URL, testNotifySecret, nil)})
	e.drain(p)
	lines = logs.Lines(t)
	last = lines[len(lines)-1]
	if _, ok := last["notifications_error"]; last["msg"] != "drain" || ok {
		t.Errorf("summary line %v, want no notifications_error when they are delivered", last)
	}
}

// A notification carries the activity as Strava answered it; a client
// answer without the raw bytes (a double) still gives the activity's JSON,
// never an empty body.
func TestNotifiedActivityWithoutRawBytesIsItsJSON(t *testing.T) {
	raw := rawActivity(&strava.DetailedActivity{ID: 7, Name: "Morning Run"})
	var got struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &got); err != nil || got.ID != 7 || got.Name != "Morning Run" {
		t.Errorf("body %q (%v), want the activity's JSON with id 7", raw, err)
	}
	answer := []byte(`{"id":7,"name":"as Strava said it"}`)
	if raw := rawActivity(&strava.DetailedActivity{ID: 7, Raw: answer}); string(raw) != string(answer) {
		t.Errorf("body %q, want Strava's answer byte for byte", raw)
	}
}
