package app_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

const callbackSecret = "cb-8d0c1f6e2a9b4f73a5e1"

func request(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// forgedPaths are where a forger would post without the secret: the bare
// path, near misses of the secret, and other guesses.
func forgedPaths() []string {
	return []string{
		"/api/activity_update",
		"/api/activity_update/",
		"/api/activity_update/" + callbackSecret[:len(callbackSecret)-1],
		"/api/activity_update/" + callbackSecret + "x",
		"/api/activity_update/" + strings.ToUpper(callbackSecret),
		"/api/activity_update/wrong-secret-0000000000",
		"/api/activity_update?callback_secret=wrong-secret-0000000000",
		"/api/activity_update/" + callbackSecret + "/extra",
	}
}

// With STRAVA_CALLBACK_SECRET set, 1,000 forged POSTs to the bare path and
// to wrong secrets answer 404 and store nothing; Strava's calls at the
// secret path are served as ever; the secret is in no log line.
func TestCallbackSecretPathOnly(t *testing.T) {
	in := newIntake(t, map[string]string{"STRAVA_CALLBACK_SECRET": callbackSecret})
	create := stravaEvent(t, "create.json")
	paths := forgedPaths()
	for i := range 1000 {
		path := paths[i%len(paths)]
		body := strings.Replace(create, "1360128428", fmt.Sprint(1360128428+i), 1)
		if code, answer := request(t, "POST", in.srv.URL+path, body); code != http.StatusNotFound {
			t.Fatalf("forged POST %d to %s: %d %s, want 404", i, path, code, answer)
		}
	}
	for _, path := range paths {
		if code, _ := request(t, "GET", in.srv.URL+path+"?hub.mode=subscribe&hub.verify_token="+verifyToken+"&hub.challenge=c", ""); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	if keys := in.redis.Keys(t); len(keys) != 0 {
		t.Fatalf("forged POSTs stored %v, want nothing", keys)
	}

	secretURL := in.srv.URL + "/api/activity_update/" + callbackSecret
	code, body := request(t, "GET", secretURL+"?hub.mode=subscribe&hub.verify_token="+verifyToken+"&hub.challenge=c42", "")
	if code != 200 || strings.TrimSpace(body) != `{"hub.challenge":"c42"}` {
		t.Errorf("validation GET at the secret path: %d %s", code, body)
	}
	if code, body := request(t, "POST", secretURL, create); code != 200 || !strings.Contains(body, "queued") {
		t.Errorf("POST at the secret path: %d %s, want queued", code, body)
	}
	if s := in.stats(t); s.Ready != 1 {
		t.Errorf("queue after one real POST: %+v, want 1 ready", s)
	}
	if strings.Contains(in.logs.String(), callbackSecret[4:]) {
		t.Error("a log line holds the callback secret")
	}
}

// Without a secret configured, only the bare path is served.
func TestNoCallbackSecretServesOnlyTheBarePath(t *testing.T) {
	in := newIntake(t, nil)
	create := stravaEvent(t, "create.json")
	if code, _ := request(t, "POST", in.srv.URL+"/api/activity_update/anything-at-all-123456", create); code != http.StatusNotFound {
		t.Errorf("POST to a secret path with no secret configured: %d, want 404", code)
	}
	if code, _ := request(t, "POST", in.srv.URL+"/api/activity_update", create); code != 200 {
		t.Errorf("POST to the bare path: %d, want 200", code)
	}
}

// On Vercel, vercel.json rewrites /api/activity_update/<secret> to the
// activity_update function; whether the function then sees the original
// path (as `vercel dev` shows) or the rewritten one with the secret as a
// query parameter, the secret is what opens it.
func TestVercelFunctionChecksTheCallbackSecret(t *testing.T) {
	r := rdbtest.New(t)
	env := map[string]string{"STRAVA_VERIFY_TOKEN": "t", "REDIS_URL": r.URL, "STRAVAHOOK_REDIS_PREFIX": r.Prefix,
		"STRAVA_CALLBACK_SECRET": callbackSecret}
	inst := app.NewInstance(func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	const query = "hub.mode=subscribe&hub.verify_token=t&hub.challenge=c1"
	for path, want := range map[string]int{
		"/api/activity_update/" + callbackSecret + "?" + query:                                         200,
		"/api/activity_update/" + callbackSecret + "?" + query + "&callback_secret=" + callbackSecret:  200,
		"/api/activity_update?" + query + "&callback_secret=" + callbackSecret:                         200,
		"/api/activity_update?" + query:                                                                404,
		"/api/activity_update/wrong-secret-000000000?" + query + "&callback_secret=" + callbackSecret:  404,
		"/api/activity_update?" + query + "&callback_secret=" + callbackSecret[:len(callbackSecret)-1]: 404,
	} {
		rec := httptest.NewRecorder()
		inst.Serve(rec, httptest.NewRequest("GET", path, nil), "/api/activity_update")
		if rec.Code != want {
			t.Errorf("GET %s: %d %q, want %d", path, rec.Code, rec.Body, want)
		}
	}
}

func TestCallbackSecretSettings(t *testing.T) {
	for _, bad := range []string{"short-secret", "has a space in it!!", "slash/in/the/secret/value"} {
		_, err := app.LoadConfig(func(k string) string {
			if k == "STRAVA_CALLBACK_SECRET" {
				return bad
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), "STRAVA_CALLBACK_SECRET") || strings.Contains(err.Error(), bad) {
			t.Errorf("STRAVA_CALLBACK_SECRET=%q: error %v; want one naming the variable, not the value", bad, err)
		}
	}
}

// A secret pasted with a trailing newline is trimmed, and the log names the
// variable (never the value).
func TestSecretsAreTrimmedAndTheLogSaysWhich(t *testing.T) {
	env := map[string]string{"CRON_SECRET": "cron-secret-value\n", "STRAVA_VERIFY_TOKEN": " verify-value ",
		"STRAVA_CLIENT_SECRET": "client-secret-value", "STRAVA_CALLBACK_SECRET": callbackSecret + "\r\n"}
	cfg, err := app.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CronSecret != "cron-secret-value" || cfg.VerifyToken != "verify-value" || cfg.CallbackSecret != callbackSecret {
		t.Errorf("values not trimmed: %q %q", cfg.CronSecret, cfg.VerifyToken)
	}
	var logs strings.Builder
	cfg.LogTrimmed(slog.New(slog.NewTextHandler(&logs, nil)))
	for _, name := range []string{"CRON_SECRET", "STRAVA_VERIFY_TOKEN", "STRAVA_CALLBACK_SECRET"} {
		if !strings.Contains(logs.String(), name) {
			t.Errorf("log does not name %s: %s", name, logs.String())
		}
	}
	if strings.Contains(logs.String(), "STRAVA_CLIENT_SECRET") {
		t.Error("log names a variable that needed no trimming")
	}
	for _, v := range env {
		if strings.Contains(logs.String(), strings.TrimSpace(v)) {
			t.Errorf("log holds a secret's value: %s", logs.String())
		}
	}
}
