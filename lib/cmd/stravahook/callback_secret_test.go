package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// Under serve, with STRAVA_CALLBACK_SECRET set: `subscription create`
// registers the secret path (Strava validates it), 1,000 forged POSTs to
// the bare path and to wrong secrets store nothing, Strava's own push
// through the registered callback is queued, and the secret appears in no
// output.
func TestCallbackSecretUnderServe(t *testing.T) {
	const secret = "cb-5f1e0d9c8b7a6f5e4d3c"
	c := newCLI(t)
	fake := c.strava
	c.env["STRAVA_CALLBACK_SECRET"] = secret
	base := startServe(t, c.env)

	var outputs []string
	code, out, stderr := c.run("subscription", "create", "-callback-url", base+"/api/activity_update")
	outputs = append(outputs, out, stderr)
	if code != 0 || !strings.Contains(out, "created subscription 120475") {
		t.Fatalf("subscription create = %d %q %q", code, out, stderr)
	}
	sub, _ := fake.Subscription()
	if sub.CallbackURL != base+"/api/activity_update/"+secret {
		t.Fatalf("registered callback %q, want the secret path", sub.CallbackURL)
	}
	code, out, stderr = c.run("subscription", "view")
	outputs = append(outputs, out, stderr)
	if code != 0 || !strings.Contains(out, "/api/activity_update/<STRAVA_CALLBACK_SECRET>") {
		t.Errorf("subscription view = %d %q %q; want the secret masked", code, out, stderr)
	}

	paths := []string{"/api/activity_update", "/api/activity_update/" + secret[:len(secret)-1],
		"/api/activity_update/" + secret + "0", "/api/activity_update/not-the-secret-at-all"}
	for i := range 1000 {
		body := fmt.Sprintf(`{"aspect_type":"create","event_time":%d,"object_id":%d,"object_type":"activity","owner_id":134815,"subscription_id":120475,"updates":{}}`, 1764500000+i, 17000000000+i)
		resp, err := http.Post(base+paths[i%len(paths)], "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("forged POST to %s: %d, want 404", paths[i%len(paths)], resp.StatusCode)
		}
	}
	code, out, _ = c.run("queue", "status", "-json")
	if code != 0 || !strings.Contains(out, `"ready":0,`) || !strings.Contains(out, `"dead":0,`) {
		t.Fatalf("queue after 1,000 forged POSTs: %s; want empty", out)
	}

	if res, err := fake.Push(context.Background(), stravatest.ActivityEvent(strava.AspectCreate, 134815, 17999999999, nil)); err != nil || res.Status != http.StatusOK {
		t.Fatalf("Strava's push through the registered callback: %+v, %v", res, err)
	}
	code, out, _ = c.run("queue", "status", "-json")
	outputs = append(outputs, out)
	if code != 0 || !strings.Contains(out, `"ready":1,`) {
		t.Errorf("queue after Strava's push: %s; want 1 ready", out)
	}
	// `trigger` posting straight to serve finds the secret path too.
	code, out, stderr = c.run("trigger", "create", "-url", base+"/api/activity_update")
	outputs = append(outputs, out, stderr)
	if code != 0 || !strings.Contains(out, "<STRAVA_CALLBACK_SECRET>") {
		t.Errorf("trigger create = %d %q %q; want it posted to the masked secret path", code, out, stderr)
	}
	code, out, _ = c.run("queue", "status", "-json")
	if code != 0 || !strings.Contains(out, `"ready":2,`) {
		t.Errorf("queue after trigger: %s; want 2 ready", out)
	}
	for _, o := range outputs {
		if strings.Contains(o, secret) {
			t.Errorf("an output holds the callback secret: %q", o)
		}
	}
}

func TestCallbackURLHelpers(t *testing.T) {
	const secret = "cb-5f1e0d9c8b7a6f5e4d3c"
	for raw, want := range map[string]string{
		"https://x.vercel.app/api/activity_update":            "https://x.vercel.app/api/activity_update/" + secret,
		"https://x.vercel.app/api/activity_update/":           "https://x.vercel.app/api/activity_update/" + secret,
		"https://x.vercel.app/api/activity_update/" + secret:  "https://x.vercel.app/api/activity_update/" + secret,
		"http://127.0.0.1:3000/api/activity_update?keep=this": "http://127.0.0.1:3000/api/activity_update/" + secret + "?keep=this",
	} {
		if got, err := withCallbackSecret(raw, secret); got != want || err != nil {
			t.Errorf("withCallbackSecret(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	if _, err := withCallbackSecret("https://x.vercel.app/elsewhere", secret); err == nil {
		t.Error("a callback URL not ending in /api/activity_update was accepted")
	}
	if got := maskCallback("https://x.vercel.app/api/activity_update/" + secret + "?a=b"); got != "https://x.vercel.app/api/activity_update/<STRAVA_CALLBACK_SECRET>?a=b" {
		t.Errorf("maskCallback = %q", got)
	}
	if got := maskCallback("https://x.vercel.app/api/activity_update"); got != "https://x.vercel.app/api/activity_update" {
		t.Errorf("maskCallback of the bare path = %q", got)
	}
}
