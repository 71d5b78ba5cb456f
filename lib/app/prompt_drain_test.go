package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

// promptCall is one /api/process_events?trigger=prompt the app received,
// with its answer.
type promptCall struct {
	auth   string
	status int
	body   string
}

type capture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *capture) WriteHeader(s int)           { c.status = s; c.ResponseWriter.WriteHeader(s) }
func (c *capture) Write(b []byte) (int, error) { c.body.Write(b); return c.ResponseWriter.Write(b) }

// newWatchedIntake is an intake whose prompt drains are reported on the
// channel once answered.
func newWatchedIntake(t *testing.T, env map[string]string) (*intake, <-chan promptCall) {
	t.Helper()
	calls := make(chan promptCall, 16)
	r := rdbtest.New(t)
	in := newIntakeWrapped(t, r, r.URL, env, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path != "/api/process_events" || req.URL.Query().Get("trigger") != "prompt" {
				next.ServeHTTP(w, req)
				return
			}
			c := &capture{ResponseWriter: w, status: 200}
			next.ServeHTTP(c, req)
			calls <- promptCall{auth: req.Header.Get("Authorization"), status: c.status, body: c.body.String()}
		})
	})
	return in, calls
}

func waitPrompt(t *testing.T, calls <-chan promptCall) promptCall {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no prompt drain ran")
		return promptCall{}
	}
}

type drainAnswer struct {
	Trigger      string `json:"trigger"`
	SteppedAside bool   `json:"stepped_aside"`
	Claimed      int    `json:"claimed"`
	Remaining    int    `json:"remaining"`
}

func decodeAnswer(t *testing.T, body string) drainAnswer {
	t.Helper()
	var a drainAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("answer is not JSON: %q", body)
	}
	return a
}

// Without any cron or CLI call, a queued event is claimed by the drain the
// intake started, and the drain says so in its summary and in Redis.
func TestQueuedEventStartsAPromptDrain(t *testing.T) {
	in, calls := newWatchedIntake(t, drainEnv)
	if status, body := in.post(t, stravaEvent(t, "create.json")); status != 200 {
		t.Fatalf("POST = %d %s", status, body)
	}
	c := waitPrompt(t, calls)
	if c.auth != "Bearer cron-secret-0123456789" || c.status != 200 {
		t.Fatalf("prompt drain: Authorization %q, status %d %s", c.auth, c.status, c.body)
	}
	if a := decodeAnswer(t, c.body); a.Trigger != "prompt" || a.SteppedAside || a.Claimed != 1 || a.Remaining != 0 {
		t.Fatalf("prompt drain answered %s", c.body)
	}
	last, err := in.app.Store.LastDrain(context.Background())
	if err != nil || last == nil || last.Trigger != "prompt" || last.Claimed != 1 || last.Error != "" {
		t.Fatalf("last drain = %+v, %v", last, err)
	}
}

func TestCronDrainSaysItsTrigger(t *testing.T) {
	in := newIntake(t, drainEnv)
	status, _, body := callProcess(t, in, "GET", "Bearer cron-secret-0123456789")
	if a := decodeAnswer(t, body); status != 200 || a.Trigger != "cron" {
		t.Fatalf("%d %s", status, body)
	}
	if last, _ := in.app.Store.LastDrain(context.Background()); last == nil || last.Trigger != "cron" {
		t.Fatalf("last drain = %+v", last)
	}
}

// A prompt drain that finds another one running answers at once and
// leaves that one a note to keep watching the queue.
func TestSecondPromptDrainStepsAside(t *testing.T) {
	in := newIntake(t, drainEnv)
	ctx := context.Background()
	if ok, err := in.app.Store.StartPromptDrain(ctx, "the-running-one", time.Minute, time.Second); err != nil || !ok {
		t.Fatalf("take the turn: %v, %v", ok, err)
	}
	req, _ := http.NewRequest("POST", in.srv.URL+"/api/process_events?trigger=prompt", nil)
	req.Header.Set("Authorization", "Bearer cron-secret-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if a := decodeAnswer(t, buf.String()); resp.StatusCode != 200 || a.Trigger != "prompt" || !a.SteppedAside || a.Claimed != 0 {
		t.Fatalf("%d %s", resp.StatusCode, buf.String())
	}
	if more, err := in.app.Store.FinishPromptDrain(ctx, "the-running-one", time.Minute); err != nil || more <= 0 {
		t.Fatalf("the running drain got no note: %v, %v", more, err)
	}
	if last, _ := in.app.Store.LastDrain(ctx); last != nil {
		t.Fatalf("a drain that stepped aside was recorded: %+v", last)
	}
}

// The intake does not wait for the drain it starts, and under serve or
// `vercel dev` its leaving cancels the request's context: the drain must
// carry on regardless.
func TestPromptDrainOutlivesTheClientThatStartedIt(t *testing.T) {
	env := map[string]string{"STRAVAHOOK_PROMPT_DRAIN": "off"}
	for k, v := range drainEnv {
		env[k] = v
	}
	in := newIntake(t, env)
	if status, _ := in.post(t, stravaEvent(t, "create.json")); status != 200 {
		t.Fatal("not queued")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", in.srv.URL+"/api/process_events?trigger=prompt", nil)
	req.Header.Set("Authorization", "Bearer cron-secret-0123456789")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the drain answered before its settle time; the client was meant to leave first")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		last, err := in.app.Store.LastDrain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if last != nil {
			if last.Trigger != "prompt" || last.Claimed != 1 || last.Error != "" {
				t.Fatalf("the drain whose client left: %+v", last)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain whose client left never finished")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPromptDrainSetting(t *testing.T) {
	for _, v := range []string{"maybe", "disabled"} {
		if _, err := loadConfig(map[string]string{"STRAVAHOOK_PROMPT_DRAIN": v}); err == nil || !strings.Contains(err.Error(), "STRAVAHOOK_PROMPT_DRAIN") {
			t.Errorf("%q: %v", v, err)
		}
	}
	for v, want := range map[string]bool{"": true, "on": true, "OFF": false, "false": false, "0": false} {
		cfg, err := loadConfig(map[string]string{"STRAVAHOOK_PROMPT_DRAIN": v})
		if err != nil || cfg.PromptDrain != want {
			t.Errorf("%q: %v, %v; want %v", v, cfg.PromptDrain, err, want)
		}
	}
}

func TestPromptDrainBase(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PUBLIC_URL": "https://hook.example.com/", "VERCEL_PROJECT_PRODUCTION_URL": "x.vercel.app"}, "https://hook.example.com"},
		{map[string]string{"VERCEL_PROJECT_PRODUCTION_URL": "x.vercel.app", "VERCEL_ENV": "production"}, "https://x.vercel.app"},
		{map[string]string{"VERCEL_PROJECT_PRODUCTION_URL": "x.vercel.app", "VERCEL_ENV": "preview"}, "https://x.vercel.app"},
		// vercel dev serves on localhost: the request tells.
		{map[string]string{"VERCEL_PROJECT_PRODUCTION_URL": "x.vercel.app", "VERCEL_ENV": "development"}, ""},
		// Without a production domain: the deployment's own URL.
		{map[string]string{"VERCEL_URL": "x-git-branch-me.vercel.app", "VERCEL_ENV": "preview"}, "https://x-git-branch-me.vercel.app"},
		{map[string]string{"VERCEL_PROJECT_PRODUCTION_URL": "x.vercel.app", "VERCEL_URL": "x-abc.vercel.app"}, "https://x.vercel.app"},
		// vercel dev sets VERCEL_URL to its own plain-http address.
		{map[string]string{"VERCEL_URL": "localhost:3000"}, "http://localhost:3000"},
		{map[string]string{"VERCEL_URL": "127.0.0.1:3000"}, "http://127.0.0.1:3000"},
		{map[string]string{}, ""},
	} {
		cfg, err := loadConfig(c.env)
		if err != nil || cfg.PromptDrainBase() != c.want {
			t.Errorf("%v: %q, %v; want %q", c.env, cfg.PromptDrainBase(), err, c.want)
		}
	}
}

func loadConfig(env map[string]string) (app.Config, error) {
	return app.LoadConfig(func(k string) string { return env[k] })
}
