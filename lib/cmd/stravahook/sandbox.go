package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/processor"
	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

// sandboxPath is where `serve -sandbox` also mounts the double's control
// routes, so that `stravahook trigger` finds the sandbox from the serve
// URL alone (elsewhere the path answers 404 and trigger posts directly).
const sandboxPath = "/_sandbox/"

// sandbox is `serve -sandbox`: a Strava double in the same process, with
// Jane Doe and her activities, that stravahook is pointed at.
type sandbox struct {
	strava  *stravatest.Server
	athlete int64
	// madeUpReadToken is the READ_TOKEN made up for this run, which the
	// next steps show; one the user set is theirs and never printed.
	madeUpReadToken string
}

// startSandbox starts the double and points cfg at it: base URL and
// application credentials.
func startSandbox(cfg *app.Config) *sandbox {
	sb := &sandbox{strava: stravatest.NewServer()}
	sb.athlete = sb.strava.AddSampleData().ID
	cfg.StravaBaseURL = sb.strava.URL
	cfg.ClientID, cfg.ClientSecret = sb.strava.ClientID, sb.strava.ClientSecret
	cfg.SubscriptionID = 0 // learnt from Redis once the subscription exists
	if cfg.ReadToken == "" {
		// So that the map page and GET /api/activities show the sandbox.
		cfg.ReadToken = randomSecret()
		sb.madeUpReadToken = cfg.ReadToken
	}
	if cfg.CronSecret == "" {
		// The intake then asks for a drain right after queueing (prompt
		// drains), as a deployment with CRON_SECRET does.
		cfg.CronSecret = randomSecret()
	}
	return sb
}

func (sb *sandbox) Close() { sb.strava.Close() }

// setUp does what a new user does with real Strava, through the same
// routes: subscribe the callback (the double validates it with its GET)
// and connect the athlete through the OAuth pages.
func (sb *sandbox) setUp(ctx context.Context, a *app.App, base, callbackPath string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg := a.Config()
	callback := base + callbackPath
	sub, err := a.Strava.CreateSubscription(ctx, callback, cfg.VerifyToken)
	if err != nil {
		return fmt.Errorf("sandbox: create the subscription: %w", err)
	}
	if err := a.Store.SetSubscriptionID(ctx, sub.ID); err != nil {
		return fmt.Errorf("sandbox: remember the subscription: %w", err)
	}
	if err := connectThroughOAuth(ctx, base, sb.athlete); err != nil {
		return fmt.Errorf("sandbox: connect athlete %d: %w", sb.athlete, err)
	}
	if _, err := a.Store.Athlete(ctx, sb.athlete); err != nil {
		return fmt.Errorf("sandbox: athlete %d not stored after the OAuth flow: %w", sb.athlete, err)
	}
	return nil
}

// connectThroughOAuth is a browser: /api/connect sends it to the double's
// approve page, where it approves as athleteID, and the double sends it
// back to /api/connect_callback.
func connectThroughOAuth(ctx context.Context, base string, athleteID int64) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	page, err := browse(ctx, browser, http.MethodGet, base+"/api/connect", nil)
	if err != nil {
		return err
	}
	approve := page.Request.URL.Query()
	approve.Set("decision", "approve")
	approve.Set("athlete_id", strconv.FormatInt(athleteID, 10))
	form := *page.Request.URL
	form.RawQuery = ""
	done, err := browse(ctx, browser, http.MethodPost, form.String(), approve)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(done.Request.URL.Path, "/api/connect_callback") {
		return fmt.Errorf("the flow ended at %s, not at /api/connect_callback", done.Request.URL.Redacted())
	}
	return nil
}

// browse makes one request, following redirects, and wants a 200 at the end.
func browse(ctx context.Context, browser *http.Client, method, target string, form url.Values) (*http.Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := browser.Do(req)
	if err != nil {
		return nil, err
	}
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s answered %d: %s", method, resp.Request.URL.Path, resp.StatusCode, oneLine(string(text)))
	}
	return resp, nil
}

// printNextSteps tells the user what to try, as commands to paste.
func (sb *sandbox) printNextSteps(w io.Writer, cfg app.Config, base, callbackPath string, drainEvery time.Duration) {
	sub, _ := sb.strava.Subscription()
	fmt.Fprintf(w, "\nsandbox: a Strava double runs at %s (client id %s)\n", sb.strava.URL, sb.strava.ClientID)
	fmt.Fprintf(w, "sandbox: subscription %d sends events to %s%s\n", sub.ID, base, callbackPath)
	fmt.Fprintf(w, "sandbox: athlete Jane Doe (%d) connected through /api/connect; the queue drains every %s\n", sb.athlete, drainEvery)
	fmt.Fprintf(w, "\nTry it, in another terminal:\n")
	if cfg.RedisURLVar == "embedded" {
		fmt.Fprintf(w, "  export REDIS_URL=%s\n", cfg.RedisURL)
	} else {
		// The user's own URL may hold a password: never printed.
		fmt.Fprintf(w, "  # with the %s of this shell (%s)\n", cfg.RedisURLVar, rdb.Redact(cfg.RedisURL))
	}
	urlFlag := ""
	if base+callbackPath != defaultCallbackURL {
		urlFlag = " -url " + base + callbackPath
	}
	fmt.Fprintf(w, "  go run ./lib/cmd/stravahook trigger create%s   # Jane uploads an activity; Strava pushes its event\n", urlFlag)
	fmt.Fprintf(w, "  go run ./lib/cmd/stravahook activities list -athlete %d   # a few seconds later: kept\n", sb.athlete)
	fmt.Fprintf(w, "  go run ./lib/cmd/stravahook trigger delete%s   # or update, deauthorize\n", urlFlag)
	readToken := "your READ_TOKEN"
	if sb.madeUpReadToken != "" {
		readToken = "read token " + sb.madeUpReadToken
	}
	fmt.Fprintf(w, "and in a browser: %s/map.html (%s), %s/api/connect (the OAuth pages)\n", base, readToken, base)
	if cfg.NotifyURL == "" {
		fmt.Fprintf(w, "notifications: set NOTIFY_URL and NOTIFY_SECRET (see `stravahook notify secret`, `stravahook listen`)\n")
	}
	fmt.Fprintln(w)
}

// drainLoop drains the queue every `every`, as a cron would, until ctx
// ends. A drain that did something prints one line; a failure prints once
// until it changes.
func drainLoop(ctx context.Context, a *app.App, every time.Duration, out io.Writer) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// The periodic drain stands in for Vercel Cron: its trigger is cron.
		sum, err := a.Drain(ctx, min(every, processor.DefaultBudget), app.TriggerCron)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if err.Error() != lastErr {
				fmt.Fprintf(out, "drain: %s\n", oneLine(err.Error()))
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		if sum.Claimed > 0 {
			fmt.Fprintf(out, "drain: %s\n", summaryLine(sum.Summary))
		}
	}
}

func summaryLine(s processor.Summary) string {
	parts := []string{fmt.Sprintf("%d events", s.Claimed)}
	for _, p := range []struct {
		n    int
		what string
	}{{s.Kept, "kept"}, {s.Deleted, "deleted"}, {s.Deauthorized, "deauthorized"}, {s.Skipped, "skipped"}, {s.Retried, "retried"}, {s.Dead, "dead"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	if s.RateLimited {
		parts = append(parts, "rate limited")
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" (%d ms)", s.DurationMS)
}

// randomSecret is a secret made up for one run (STRAVA_VERIFY_TOKEN, CRON_SECRET).
func randomSecret() string { return strings.ToLower(rand.Text()) }
