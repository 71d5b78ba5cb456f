package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/logtest"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// eventually runs check until it returns "" or the deadline passes, then
// fails with check's last complaint.
func eventually(t *testing.T, within time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		complaint := check()
		if complaint == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, complaint)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func keptIDs(t *testing.T, c *cli, athlete string) []int64 {
	t.Helper()
	code, out, stderr := c.run("activities", "list", "-athlete", athlete, "-json")
	if code != 0 {
		t.Fatalf("activities list = %d %q", code, stderr)
	}
	var ids []int64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var a struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, a.ID)
	}
	return ids
}

func TestSandboxFromTriggerToKeptActivityAndBack(t *testing.T) {
	c := newCLI(t)
	for _, k := range []string{"STRAVA_BASE_URL", "STRAVA_CLIENT_ID", "STRAVA_CLIENT_SECRET", "STRAVA_VERIFY_TOKEN"} {
		delete(c.env, k) // the sandbox brings its own
	}
	base := startServe(t, c.env, "-sandbox", "-drain-every", "50ms")
	// serve connected Jane through the OAuth pages before printing more;
	// she is stored once the flow is done.
	eventually(t, 10*time.Second, func() string {
		if _, out, _ := c.run("athlete", "list"); !strings.Contains(out, "Jane Doe") {
			return "Jane not connected: " + out
		}
		return ""
	})
	code, out, stderr := c.run("trigger", "create", "-url", base+"/api/activity_update")
	if code != 0 || !strings.Contains(out, "sandbox Strava: created activity") || !strings.Contains(out, "200 after 1 attempt") {
		t.Fatalf("trigger create = %d %q %q", code, out, stderr)
	}
	var created int64
	eventually(t, 10*time.Second, func() string {
		ids := keptIDs(t, c, "134815")
		if len(ids) != 1 {
			return "kept " + jsonString(ids)
		}
		created = ids[0]
		return ""
	})
	if !strings.Contains(out, jsonString(created)) {
		t.Fatalf("kept %d, trigger said %q", created, out)
	}

	if code, out, stderr := c.run("trigger", "delete", "-url", base+"/api/activity_update"); code != 0 {
		t.Fatalf("trigger delete = %d %q %q", code, out, stderr)
	}
	eventually(t, 10*time.Second, func() string {
		if ids := keptIDs(t, c, "134815"); len(ids) != 0 {
			return "still kept: " + jsonString(ids)
		}
		return ""
	})

	if code, out, stderr := c.run("trigger", "deauthorize", "-url", base+"/api/activity_update"); code != 0 {
		t.Fatalf("trigger deauthorize = %d %q %q", code, out, stderr)
	}
	eventually(t, 10*time.Second, func() string {
		if _, out, _ := c.run("athlete", "list", "-json"); strings.TrimSpace(out) != "" {
			return "athletes: " + out
		}
		return ""
	})
	// With nobody authorized, the sandbox refuses to make up an upload.
	if code, _, stderr := c.run("trigger", "create", "-url", base+"/api/activity_update"); code != 1 || !strings.Contains(stderr, "no athlete has authorized") {
		t.Fatalf("trigger create after deauthorization = %d %q", code, stderr)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestTriggerWithoutSandboxPostsToTheCallback(t *testing.T) {
	c := newCLI(t)
	base := startServe(t, c.env)
	code, out, stderr := c.run("trigger", "create", "-athlete", "42", "-activity", "12312312312", "-url", base+"/api/activity_update")
	if code != 0 || !strings.Contains(out, "posted to "+base+"/api/activity_update") || !strings.Contains(out, "activity create 12312312312") {
		t.Fatalf("trigger = %d %q %q", code, out, stderr)
	}
	stats, err := queue.New(c.redis.Client, c.redis.Prefix+"queue:").Stats(context.Background())
	if err != nil || stats.Ready != 1 {
		t.Fatalf("queue %+v %v, want 1 ready event", stats, err)
	}
	// Delete needs an id when no sandbox can say which activity is newest.
	if code, _, stderr := c.run("trigger", "delete", "-url", base+"/api/activity_update"); code != 2 || !strings.Contains(stderr, "-activity ID") {
		t.Fatalf("trigger delete without -activity = %d %q", code, stderr)
	}
	// Nothing listening: a clear failure after Strava's three attempts.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/api/activity_update"
	ln.Close()
	if code, _, stderr := c.run("trigger", "deauthorize", "-url", dead); code != 1 || !strings.Contains(stderr, "did not accept") {
		t.Fatalf("trigger to nothing = %d %q", code, stderr)
	}
}

func TestServeFailsFirstOnABusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = run(ctx, []string{"serve", "-sandbox", "-addr", ln.Addr().String()}, func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "listen on "+ln.Addr().String()) || stdout.Len() != 0 || stderr.Len() != 0 {
		t.Fatalf("err %v, stdout %q, stderr %q: want only the listen error", err, stdout.String(), stderr.String())
	}
}

func TestServeMakesUpAVerifyTokenAndStravaAcceptsIt(t *testing.T) {
	c := newCLI(t)
	delete(c.env, "STRAVA_VERIFY_TOKEN")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr logtest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0"}, func(k string) string { return c.env[k] }, &stdout, &stderr)
	}()
	var token, base string
	eventually(t, 10*time.Second, func() string {
		_, after, ok := strings.Cut(stderr.String(), "STRAVA_VERIFY_TOKEN is unset: using ")
		_, listen, ok2 := strings.Cut(stdout.String(), "listening on ")
		if !ok || !ok2 {
			return "serve said " + stdout.String() + stderr.String()
		}
		token, base = strings.Fields(after)[0], strings.Fields(listen)[0]
		return ""
	})
	if len(token) < 20 {
		t.Fatalf("token %q is short", token)
	}
	double := stravatest.NewT(t)
	if _, err := double.Client().CreateSubscription(ctx, base+"/api/activity_update", token); err != nil {
		t.Fatalf("Strava's validation with the printed token: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestServeDrainsEveryFewSecondsWithoutTheSandbox(t *testing.T) {
	c := newCLI(t)
	saveJane(t, c)
	base := startServe(t, c.env, "-drain-every", "50ms")
	act := c.strava.NewActivity(134815, "Run")
	if code, out, stderr := c.run("trigger", "create", "-athlete", "134815", "-activity", jsonString(act.ID), "-url", base+"/api/activity_update"); code != 0 {
		t.Fatalf("trigger = %d %q %q", code, out, stderr)
	}
	eventually(t, 10*time.Second, func() string {
		if ids := keptIDs(t, c, "134815"); len(ids) != 1 || ids[0] != act.ID {
			return "kept " + jsonString(ids)
		}
		return ""
	})
}

func TestTriggerPostsToTheSecretCallbackPath(t *testing.T) {
	c := newCLI(t)
	c.env["STRAVA_CALLBACK_SECRET"] = "s3cret-path-0123456789"
	base := startServe(t, c.env)
	code, out, stderr := c.run("trigger", "create", "-athlete", "42", "-url", base+"/api/activity_update")
	if code != 0 || strings.Contains(out, "s3cret-path-0123456789") || strings.Contains(stderr, "s3cret-path-0123456789") {
		t.Fatalf("trigger = %d %q %q: want the event accepted, the secret never shown", code, out, stderr)
	}
}

func TestServeWithAGoneRedisSaysHowToGetAnEmbeddedOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "redis://" + ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"serve", "-addr", "127.0.0.1:0"}, func(k string) string {
		return map[string]string{"REDIS_URL": gone, "STRAVA_VERIFY_TOKEN": "v"}[k]
	}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL is set; unset it for an embedded Redis") {
		t.Fatalf("err %v", err)
	}
}
