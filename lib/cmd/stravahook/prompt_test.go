package main

import (
	"context"
	"encoding/json"
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
	if n := fake.Calls(stravatest.RouteActivity); n != 1 {
		t.Fatalf("%d activity GETs, want 1 (the create and delete of %d coalesced)", n, gone.ID)
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
