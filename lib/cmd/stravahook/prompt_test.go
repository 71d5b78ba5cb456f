package main

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// Under serve, with neither a cron nor a `process`, an uploaded activity
// is kept: the intake started a drain of its own. A create with its delete
// right behind is claimed with it and costs no Strava call.
func TestServeKeepsAnActivityWithoutCronOrProcess(t *testing.T) {
	c := newCLI(t)
	fake := c.strava
	c.env["CRON_SECRET"] = "cron-secret-prompt"
	base := startServe(t, c.env)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	athlete := int64(stravatest.SampleAthleteID)
	tok := fake.IssueToken(athlete, stravatest.FullScope)
	st := c.store()
	if err := st.SaveAthlete(ctx, store.Athlete{ID: athlete, Name: "Jane Doe", AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		ExpiresAt: tok.ExpiresAt, Scope: tok.Scope}); err != nil {
		t.Fatal(err)
	}
	kept := fake.NewActivity(athlete, "Ride")
	gone := fake.NewActivity(athlete, "Run")
	callback := base + "/api/activity_update"
	for _, ev := range []struct {
		aspect string
		id     int64
	}{{"create", kept.ID}, {"create", gone.ID}, {"delete", gone.ID}} {
		e := stravatest.ActivityEvent(ev.aspect, athlete, ev.id, nil)
		e.SubscriptionID, e.EventTime = stravatest.DefaultSubscriptionID, time.Now().Unix()
		if res := stravatest.Deliver(ctx, callback, e, 0); res.Status != 200 {
			t.Fatalf("%s %d: %+v", ev.aspect, ev.id, res)
		}
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := st.Activity(ctx, kept.ID)
		var qs struct {
			Ready, Delayed int64
			LastDrain      *store.LastDrain `json:"last_drain"`
		}
		if err := json.Unmarshal([]byte(stdoutOf(t, c, "queue", "status", "-json")), &qs); err != nil {
			t.Fatal(err)
		}
		if err == nil && qs.Ready == 0 && qs.Delayed == 0 && qs.LastDrain != nil {
			if qs.LastDrain.Trigger != "prompt" {
				t.Fatalf("last drain %+v, want trigger prompt", qs.LastDrain)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained without a cron: activity error %v, queue %+v", err, qs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := st.Activity(ctx, gone.ID); err == nil {
		t.Fatal("the deleted activity is kept")
	}
	// The create and delete of gone were posted within milliseconds, so
	// they are claimed together (one GET in all) unless this machine
	// stalled for the whole settle time between the two POSTs.
	switch n := fake.Calls(stravatest.RouteActivity); n {
	case 1:
	case 2:
		t.Logf("2 activity GETs: the create and delete of %d were not claimed together (a stall between the POSTs?)", gone.ID)
	default:
		t.Fatalf("%d activity GETs, want 1", n)
	}
	if out := stdoutOf(t, c, "queue", "status"); !regexp.MustCompile(`(?m)^last drain: \d{4}-\d\d-\d\dT\S+ \(.* ago\), trigger prompt: claimed \d+, kept \d+, deleted \d+`).MatchString(out) {
		t.Fatalf("queue status does not show the last drain:\n%s", out)
	}
}

// A drain run by `stravahook process` says so, in its summary and for
// queue status.
func TestProcessSaysItsTriggerIsTheCLI(t *testing.T) {
	c := newCLI(t)
	var sum struct{ Trigger string }
	if err := json.Unmarshal([]byte(stdoutOf(t, c, "process", "-budget", "2s")), &sum); err != nil || sum.Trigger != "cli" {
		t.Fatalf("process summary trigger %q, %v", sum.Trigger, err)
	}
	var qs struct {
		LastDrain *store.LastDrain `json:"last_drain"`
	}
	if err := json.Unmarshal([]byte(stdoutOf(t, c, "queue", "status", "-json")), &qs); err != nil || qs.LastDrain == nil || qs.LastDrain.Trigger != "cli" {
		t.Fatalf("queue status last_drain %+v, %v", qs.LastDrain, err)
	}
}

func stdoutOf(t *testing.T, c *cli, args ...string) string {
	t.Helper()
	code, out, stderr := c.run(args...)
	if code != 0 {
		t.Fatalf("%v = %d %s", args, code, stderr)
	}
	return out
}
