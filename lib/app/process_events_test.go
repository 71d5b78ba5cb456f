package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func callProcess(t *testing.T, in *intake, method, auth string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, in.srv.URL+"/api/process_events", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

var drainEnv = map[string]string{"CRON_SECRET": "cron-secret-0123456789", "STRAVA_CLIENT_ID": "5", "STRAVA_CLIENT_SECRET": "s", "STRAVA_BASE_URL": "http://127.0.0.1:1"}

func TestProcessEventsNeedsTheCronSecret(t *testing.T) {
	in := newIntake(t, drainEnv)
	for _, auth := range []string{"", "Bearer wrong", "cron-secret-0123456789", "Basic Y3Jvbi1zZWNyZXQ=", "Bearer cron-secret-0123456789x"} {
		status, h, body := callProcess(t, in, "GET", auth)
		if status != 401 || h.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %d %s, want 401", auth, status, body)
		}
	}
	if strings.Contains(in.logs.String(), "cron-secret-0123456789") {
		t.Fatal("the secret was logged")
	}
}

func TestProcessEventsGETAndPOSTAnswerASummary(t *testing.T) {
	in := newIntake(t, drainEnv)
	for _, m := range []string{"GET", "POST"} {
		status, _, body := callProcess(t, in, m, "Bearer cron-secret-0123456789")
		if status != 200 {
			t.Fatalf("%s: %d %s", m, status, body)
		}
		var sum map[string]any
		if err := json.Unmarshal([]byte(body), &sum); err != nil {
			t.Fatalf("%s: not JSON: %s", m, body)
		}
		for _, k := range []string{"claimed", "fetched", "kept", "deleted", "skipped", "retried", "dead", "rate_limited", "remaining", "duration_ms"} {
			if _, ok := sum[k]; !ok {
				t.Errorf("summary lacks %s: %s", k, body)
			}
		}
	}
	status, h, _ := callProcess(t, in, "DELETE", "Bearer cron-secret-0123456789")
	if status != 405 || h.Get("Allow") != "GET, POST" {
		t.Fatalf("DELETE: %d Allow %q", status, h.Get("Allow"))
	}
}

func TestProcessEventsWithoutCronSecretIs500AndLogged(t *testing.T) {
	in := newIntake(t, map[string]string{"STRAVA_CLIENT_ID": "5", "STRAVA_CLIENT_SECRET": "s"})
	status, _, _ := callProcess(t, in, "GET", "Bearer ")
	if status != 500 || !strings.Contains(in.logs.String(), "CRON_SECRET is not set") {
		t.Fatalf("status %d, logs %s", status, in.logs.String())
	}
}

func TestProcessEventsWithoutStravaCredentialsIs500(t *testing.T) {
	in := newIntake(t, map[string]string{"CRON_SECRET": "c"})
	status, _, _ := callProcess(t, in, "GET", "Bearer c")
	if status != 500 || !strings.Contains(in.logs.String(), "STRAVA_CLIENT_ID and STRAVA_CLIENT_SECRET not set") {
		t.Fatalf("status %d, logs %s", status, in.logs.String())
	}
}
