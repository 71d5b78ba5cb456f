package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stravahook/stravahook/lib/app"
)

// serve -sandbox prints commands to paste. Secrets the user brought (a
// REDIS_URL with a password, their own READ_TOKEN) must not be in them;
// a read token made up for the run must be, or the map cannot be opened.
func TestSandboxNextStepsShowNoSecretOfTheUser(t *testing.T) {
	const password, readToken = "s3cret-redis-password", "users-own-read-token-0123"
	cfg := app.Config{RedisURL: "rediss://default:" + password + "@redis.example:6379", RedisURLVar: "REDIS_URL", ReadToken: readToken}
	sb := startSandbox(&cfg)
	defer sb.Close()
	var out bytes.Buffer
	sb.printNextSteps(&out, cfg, "http://127.0.0.1:3000", callbackPath, time.Second)
	for _, secret := range []string{password, readToken} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the next steps show a secret of the user (%s):\n%s", secret, out.String())
		}
	}
	if !strings.Contains(out.String(), "redis.example") {
		t.Errorf("the next steps do not say which Redis:\n%s", out.String())
	}

	// Without READ_TOKEN the sandbox makes one up: that one is shown.
	cfg = app.Config{RedisURL: "redis://127.0.0.1:6380", RedisURLVar: "embedded"}
	sb2 := startSandbox(&cfg)
	defer sb2.Close()
	out.Reset()
	sb2.printNextSteps(&out, cfg, "http://127.0.0.1:3000", callbackPath, time.Second)
	if cfg.ReadToken == "" || !strings.Contains(out.String(), "read token "+cfg.ReadToken) || !strings.Contains(out.String(), "export REDIS_URL=redis://127.0.0.1:6380") {
		t.Errorf("the made-up read token %q or the embedded Redis URL is not shown:\n%s", cfg.ReadToken, out.String())
	}
}
