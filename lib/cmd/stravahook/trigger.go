package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/strava/stravatest"
)

const defaultCallbackURL = "http://127.0.0.1:3000/api/activity_update"

func triggerCommand() command {
	return command{
		path:    "trigger",
		args:    "EVENT",
		summary: "send a Strava-shaped event (create, update, delete, deauthorize): through serve -sandbox's Strava, else to the callback",
		flags: func(fs *flag.FlagSet) action {
			athleteID := fs.Int64("athlete", 0, "the athlete `ID` (default: the sandbox's connected athlete, else 134815)")
			activityID := fs.Int64("activity", 0, "the activity `ID` (default: a new one for create, the newest for update and delete)")
			callback := fs.String("url", defaultCallbackURL, "the callback `URL` (serve's or a deployment's /api/activity_update)")
			return func(ctx context.Context, e env, args []string) error {
				if len(args) != 1 {
					return &usageError{msg: "say which event: create, update, delete or deauthorize"}
				}
				kind := args[0]
				switch kind {
				case stravatest.TriggerCreate, stravatest.TriggerUpdate, stravatest.TriggerDelete, stravatest.TriggerDeauthorize:
				default:
					return &usageError{msg: fmt.Sprintf("unknown event %q: want create, update, delete or deauthorize", kind)}
				}
				if *athleteID < 0 || *activityID < 0 {
					return &usageError{msg: "-athlete and -activity must be positive"}
				}
				u, err := url.Parse(*callback)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return &usageError{msg: "-url must be an http(s) URL, e.g. " + defaultCallbackURL}
				}
				t := trigger{kind: kind, athleteID: *athleteID, activityID: *activityID, callback: u, e: e}
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				done, err := t.throughSandbox(ctx)
				if done || err != nil {
					return err
				}
				return t.direct(ctx)
			}
		},
	}
}

type trigger struct {
	kind                  string
	athleteID, activityID int64
	callback              *url.URL
	e                     env
}

// throughSandbox asks the sandbox's Strava, if it runs at the callback's
// host, to play the athlete's action and push the event. It reports false
// (and no error) when no sandbox answers there.
func (t trigger) throughSandbox(ctx context.Context) (bool, error) {
	base := url.URL{Scheme: t.callback.Scheme, Host: t.callback.Host, Path: sandboxPath + "trigger"}
	form := url.Values{"kind": {t.kind}}
	if t.athleteID > 0 {
		form.Set("athlete", strconv.FormatInt(t.athleteID, 10))
	}
	if t.activityID > 0 {
		form.Set("activity", strconv.FormatInt(t.activityID, 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, nil // nothing there: the direct POST will say why
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return false, nil
	}
	if resp.StatusCode != http.StatusOK {
		var fail struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &fail)
		return true, fmt.Errorf("sandbox: %s", orDash(fail.Error, resp.Status))
	}
	var res stravatest.TriggerResult
	if err := json.Unmarshal(body, &res); err != nil {
		return true, fmt.Errorf("sandbox: unreadable answer: %w", err)
	}
	what := fmt.Sprintf("athlete %d", res.AthleteID)
	if res.Activity != nil {
		what = fmt.Sprintf("activity %d %q (%s, %.1f km) of athlete %d", res.Activity.ID, res.Activity.Name,
			orDash(res.Activity.SportType, res.Activity.Type), res.Activity.Distance/1000, res.AthleteID)
	}
	fmt.Fprintf(t.e.stdout, "sandbox Strava: %s %s; pushed %s\n", pastTense[t.kind], what, pushOutcome(res.Push))
	if !res.Push.Delivered {
		return true, errors.New("the callback did not accept the event")
	}
	return true, nil
}

var pastTense = map[string]string{
	stravatest.TriggerCreate:      "created",
	stravatest.TriggerUpdate:      "renamed",
	stravatest.TriggerDelete:      "deleted",
	stravatest.TriggerDeauthorize: "deauthorized",
}

func pushOutcome(p stravatest.PushResult) string {
	ev := fmt.Sprintf("%s %s %d", p.Event.ObjectType, p.Event.AspectType, p.Event.ObjectID)
	if p.Delivered {
		return fmt.Sprintf("the %s event: 200 after %d attempt(s)", ev, p.Attempts)
	}
	return fmt.Sprintf("the %s event: not accepted after %d attempts (%s)", ev, p.Attempts, p.Error)
}

// direct POSTs the event to the callback itself, as Strava would.
func (t trigger) direct(ctx context.Context) error {
	athlete := t.athleteID
	if athlete == 0 {
		athlete = stravatest.SampleAthleteID
	}
	activity := t.activityID
	switch {
	case activity == 0 && t.kind == stravatest.TriggerCreate:
		activity = 1<<32 + rand.Int64N(1<<40) // Strava's ids are past 32 bits
	case activity == 0 && t.kind != stravatest.TriggerDeauthorize:
		return &usageError{msg: "no sandbox answers at " + t.callback.Host + ": say which activity with -activity ID"}
	}
	var ev strava.Event
	switch t.kind {
	case stravatest.TriggerCreate:
		ev = stravatest.ActivityEvent(strava.AspectCreate, athlete, activity, nil)
	case stravatest.TriggerUpdate:
		ev = stravatest.ActivityEvent(strava.AspectUpdate, athlete, activity, map[string]string{"title": "Renamed by stravahook trigger"})
	case stravatest.TriggerDelete:
		ev = stravatest.ActivityEvent(strava.AspectDelete, athlete, activity, nil)
	default:
		ev = stravatest.DeauthorizationEvent(athlete)
	}
	ev.SubscriptionID = t.subscriptionID(ctx)
	ev.EventTime = time.Now().Unix()
	// With STRAVA_CALLBACK_SECRET, serve takes events only at the secret
	// path: post there, and print it masked.
	target, shown := t.callback.String(), t.callback.Redacted()
	if cfg, err := app.LoadConfig(t.e.getenv); err == nil && cfg.CallbackSecret != "" && strings.HasSuffix(strings.TrimSuffix(t.callback.Path, "/"), callbackPath) {
		if withSecret, err := withCallbackSecret(shown, cfg.CallbackSecret); err == nil {
			target, _ = withCallbackSecret(target, cfg.CallbackSecret)
			shown = maskCallback(withSecret)
		}
	}
	res := stravatest.Deliver(ctx, target, ev, time.Second)
	fmt.Fprintf(t.e.stdout, "posted to %s: %s\n", shown, pushOutcome(res))
	if !res.Delivered {
		return fmt.Errorf("the callback did not accept the event (is serve running there? a 403 means another subscription id: set STRAVA_SUBSCRIPTION_ID)")
	}
	return nil
}

// subscriptionID is the id the callback expects: STRAVA_SUBSCRIPTION_ID,
// else the one stored in Redis, else 1 (accepted while none is known).
func (t trigger) subscriptionID(ctx context.Context) int64 {
	if cfg, err := app.LoadConfig(t.e.getenv); err == nil && cfg.SubscriptionID > 0 {
		return cfg.SubscriptionID
	}
	id := int64(1)
	quiet := env{getenv: t.e.getenv, stdout: io.Discard, stderr: io.Discard}
	_ = withApp(ctx, quiet, func(a *app.App) error {
		if stored, err := a.Store.SubscriptionID(ctx); err == nil && stored > 0 {
			id = stored
		}
		return nil
	})
	return id
}
