package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/strava"
)

func hasCode(err error, code string) bool {
	var se *strava.Error
	if !errors.As(err, &se) {
		return false
	}
	for _, d := range se.Errors {
		if strings.Contains(strings.ToLower(d.Code), code) {
			return true
		}
	}
	return strings.Contains(strings.ToLower(se.Message), code)
}

func subscriptionCreateCommand() command {
	return command{
		path:    "subscription create",
		summary: "subscribe this application to Strava's webhook events (Strava calls the callback's GET to verify it)",
		flags: func(fs *flag.FlagSet) action {
			callback := fs.String("callback-url", "", "the deployment's `URL` of /api/activity_update (required), e.g. https://your-app.vercel.app/api/activity_update")
			return func(ctx context.Context, e env, args []string) error {
				u, err := url.Parse(*callback)
				if *callback == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					return &usageError{msg: "-callback-url must be an http(s) URL, e.g. https://your-app.vercel.app/api/activity_update"}
				}
				return withApp(ctx, e, func(a *app.App) (err error) {
					cfg := a.Config()
					// The secret must never reach an output, an error included.
					defer func() { err = redactErr(err, cfg.CallbackSecret) }()
					callbackURL, err := withCallbackSecret(*callback, cfg.CallbackSecret)
					if err != nil {
						return err
					}
					shown := maskCallback(callbackURL)
					if err := cfg.NeedStravaApp(); err != nil {
						return err
					}
					if cfg.VerifyToken == "" {
						return errors.New("STRAVA_VERIFY_TOKEN is not set: set it here and on the deployment to the same value")
					}
					// Strava verifies the callback before it answers; its
					// deadline is its own, ours only guards against a hang.
					callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					sub, err := a.Strava.CreateSubscription(callCtx, callbackURL, cfg.VerifyToken)
					switch {
					case err == nil:
					case hasCode(err, "already exists"):
						msg := "Strava allows one subscription per application and one already exists"
						if subs, lerr := a.Strava.ListSubscriptions(ctx); lerr == nil && len(subs) > 0 {
							msg += fmt.Sprintf(": subscription %d (callback %s); delete it first with `stravahook subscription delete -id %d`", subs[0].ID, maskCallback(subs[0].CallbackURL), subs[0].ID)
						} else {
							msg += "; see it with `stravahook subscription view` and delete it with `stravahook subscription delete`"
						}
						return errors.New(msg)
					case hasCode(err, "not verifiable") || hasCode(err, "does not return 200"):
						return fmt.Errorf("the callback was not verified by Strava: %s (%w): the deployment must be up and answer Strava's GET there, with STRAVA_VERIFY_TOKEN (and STRAVA_CALLBACK_SECRET, if set) the same on both sides; try `curl '%s?hub.mode=subscribe&hub.verify_token=<token>&hub.challenge=x'`", shown, err, shown)
					default:
						return fmt.Errorf("create the subscription: %w", err)
					}
					if err := a.Store.SetSubscriptionID(ctx, sub.ID); err != nil {
						return fmt.Errorf("subscription %d was created, but remembering its id failed: %w", sub.ID, err)
					}
					fmt.Fprintf(e.stdout, "created subscription %d for %s\n", sub.ID, shown)
					if cfg.CallbackSecret != "" {
						fmt.Fprintln(e.stdout, "the callback is the secret path: STRAVA_CALLBACK_SECRET was appended (not shown); the bare path now answers 404")
					}
					fmt.Fprintf(e.stdout, "events for other subscriptions are now refused; STRAVA_SUBSCRIPTION_ID=%d pins it without Redis\n", sub.ID)
					return nil
				})
			}
		},
	}
}

func subscriptionViewCommand() command {
	return command{
		path:    "subscription view",
		summary: "show this application's subscription, as Strava has it",
		run: func(ctx context.Context, e env, args []string) error {
			return withApp(ctx, e, func(a *app.App) error {
				if err := a.Config().NeedStravaApp(); err != nil {
					return err
				}
				subs, err := a.Strava.ListSubscriptions(ctx)
				if err != nil {
					return fmt.Errorf("list subscriptions: %w", err)
				}
				if len(subs) == 0 {
					fmt.Fprintln(e.stdout, "no subscription: create one with `stravahook subscription create -callback-url URL`")
					return nil
				}
				for _, s := range subs {
					fmt.Fprintf(e.stdout, "subscription %d\n  callback: %s\n  created:  %s\n", s.ID, maskCallback(s.CallbackURL), s.CreatedAt.UTC().Format(time.RFC3339))
				}
				return nil
			})
		},
	}
}

func subscriptionDeleteCommand() command {
	return command{
		path:    "subscription delete",
		summary: "delete the subscription (-id, else the one that exists)",
		flags: func(fs *flag.FlagSet) action {
			id := fs.Int64("id", 0, "subscription `ID` (default: the one Strava lists)")
			return func(ctx context.Context, e env, args []string) error {
				if *id < 0 {
					return &usageError{msg: "-id must be a positive integer"}
				}
				return withApp(ctx, e, func(a *app.App) error {
					if err := a.Config().NeedStravaApp(); err != nil {
						return err
					}
					target := *id
					if target == 0 {
						subs, err := a.Strava.ListSubscriptions(ctx)
						if err != nil {
							return fmt.Errorf("list subscriptions: %w", err)
						}
						if len(subs) == 0 {
							return errors.New("no subscription to delete")
						}
						target = subs[0].ID
					}
					if err := a.Strava.DeleteSubscription(ctx, target); err != nil {
						return fmt.Errorf("delete subscription %d: %w", target, err)
					}
					if remembered, err := a.Store.SubscriptionID(ctx); err == nil && remembered == target {
						if err := a.Store.ClearSubscriptionID(ctx); err != nil {
							return fmt.Errorf("subscription %d deleted, but forgetting its id failed: %w", target, err)
						}
					}
					fmt.Fprintf(e.stdout, "deleted subscription %d\n", target)
					return nil
				})
			}
		},
	}
}

// callbackPath is the intake's path; with STRAVA_CALLBACK_SECRET the
// callback is callbackPath + "/" + the secret.
const callbackPath = "/api/activity_update"

// withCallbackSecret is the URL to register: raw with the secret appended
// as the last path segment when one is configured. raw must end in
// /api/activity_update (or already in the secret path).
func withCallbackSecret(raw, secret string) (string, error) {
	if secret == "" {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", &usageError{msg: "-callback-url is not a URL"}
	}
	path := strings.TrimSuffix(u.Path, "/")
	switch {
	case strings.HasSuffix(path, callbackPath+"/"+secret):
	case strings.HasSuffix(path, callbackPath):
		path += "/" + secret
	default:
		return "", &usageError{msg: "-callback-url must end in " + callbackPath + " (STRAVA_CALLBACK_SECRET is appended to it)"}
	}
	u.Path, u.RawPath = path, ""
	return u.String(), nil
}

// maskCallback hides whatever follows /api/activity_update/ in a callback
// URL: a secret path's secret, whether or not this environment knows it.
func maskCallback(callback string) string {
	i := strings.Index(callback, callbackPath+"/")
	if i < 0 {
		return callback
	}
	start := i + len(callbackPath) + 1
	end := len(callback)
	if j := strings.IndexAny(callback[start:], "/?#"); j >= 0 {
		end = start + j
	}
	if start == end {
		return callback
	}
	return callback[:start] + "<STRAVA_CALLBACK_SECRET>" + callback[end:]
}

// redactErr replaces the secret in err's text, should any message (ours or
// Strava's) have quoted the callback URL.
func redactErr(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	var usage *usageError
	if errors.As(err, &usage) {
		return &usageError{msg: strings.ReplaceAll(usage.msg, secret, "<STRAVA_CALLBACK_SECRET>"), usage: usage.usage}
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "<STRAVA_CALLBACK_SECRET>"))
}
