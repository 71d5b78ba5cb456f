package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/readapi"
	"github.com/stravahook/stravahook/lib/store"
)

func athleteAddCommand() command {
	return command{
		path:    "athlete add",
		summary: "validate a refresh token with Strava, learn whose it is, and store the athlete's tokens",
		flags: func(fs *flag.FlagSet) action {
			refreshToken := fs.String("refresh-token", "", "the athlete's OAuth refresh `token` (required)")
			scope := fs.String("scope", "", "the scope the token was granted, if known (e.g. read,activity:read_all)")
			return func(ctx context.Context, e env, args []string) error {
				if strings.TrimSpace(*refreshToken) == "" {
					return &usageError{msg: "-refresh-token is required"}
				}
				return withApp(ctx, e, func(a *app.App) error {
					if err := a.Config().NeedStravaApp(); err != nil {
						return err
					}
					tok, err := a.Strava.RefreshToken(ctx, strings.TrimSpace(*refreshToken))
					if err != nil {
						return fmt.Errorf("refresh the token with Strava: %w", err)
					}
					who, _, err := a.Strava.GetAuthenticatedAthlete(ctx, tok.AccessToken)
					if err != nil {
						return fmt.Errorf("ask Strava whose token it is: %w", err)
					}
					athlete := store.Athlete{
						ID: who.ID, Name: who.Name(),
						AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt,
						Scope: *scope, ConnectedAt: time.Now(),
					}
					if err := a.SaveAthlete(ctx, athlete); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "added %s; access token valid until %s\n", athlete, tok.ExpiresAt.UTC().Format(time.RFC3339))
					return nil
				})
			}
		},
	}
}

func athleteListCommand() command {
	return command{
		path:    "athlete list",
		summary: "list the connected athletes (never their tokens)",
		flags: func(fs *flag.FlagSet) action {
			asJSON := fs.Bool("json", false, "print one JSON object per line")
			return func(ctx context.Context, e env, args []string) error {
				return withApp(ctx, e, func(a *app.App) error {
					athletes, err := a.Store.Athletes(ctx)
					if err != nil {
						return err
					}
					if *asJSON {
						enc := json.NewEncoder(e.stdout)
						for _, at := range athletes {
							line := map[string]any{
								"id": at.ID, "name": at.Name, "scope": at.Scope,
								"token_expires_at": at.ExpiresAt.UTC(), "connected_at": at.ConnectedAt.UTC(),
								"reconnect_needed": at.NeedsReconnect(),
							}
							if at.NeedsReconnect() {
								line["reconnect_reason"], line["reconnect_since"] = at.ReconnectReason, at.ReconnectSince.UTC()
							}
							if err := enc.Encode(line); err != nil {
								return err
							}
						}
						return nil
					}
					if len(athletes) == 0 {
						fmt.Fprintln(e.stdout, "no athletes connected: send them to /api/connect, or use `stravahook athlete add -refresh-token T`")
						return nil
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tTOKEN EXPIRES\tCONNECTED\tSTATUS")
					reconnect := 0
					for _, at := range athletes {
						status := "ok"
						if at.NeedsReconnect() {
							reconnect++
							status = "RECONNECT NEEDED since " + at.ReconnectSince.UTC().Format(time.RFC3339) + ": " + at.ReconnectReason
						}
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", at.ID, orDash(at.Name), orDash(at.Scope),
							at.ExpiresAt.UTC().Format(time.RFC3339), at.ConnectedAt.UTC().Format(time.RFC3339), status)
					}
					if err := tw.Flush(); err != nil {
						return err
					}
					if reconnect > 0 {
						fmt.Fprintln(e.stdout, "Athletes marked RECONNECT NEEDED: their events are held (see `stravahook queue status`) until they connect again at /api/connect.")
					}
					return nil
				})
			}
		},
	}
}

func athleteRemoveCommand() command {
	return command{
		path:    "athlete remove",
		args:    "ID",
		summary: "forget an athlete: their tokens and every activity kept for them",
		run: func(ctx context.Context, e env, args []string) error {
			id, err := oneID(args, "athlete ID")
			if err != nil {
				return err
			}
			return withApp(ctx, e, func(a *app.App) error {
				if _, err := a.Store.Athlete(ctx, id); errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("athlete %d is not connected", id)
				}
				n, err := a.RemoveAthlete(ctx, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "removed athlete %d and %d kept activities\n", id, n)
				return nil
			})
		},
	}
}

func activitiesListCommand() command {
	return command{
		path:    "activities list",
		summary: "the activities kept for an athlete, newest first",
		flags: func(fs *flag.FlagSet) action {
			athleteID := fs.Int64("athlete", 0, "athlete `ID` (required)")
			limit := fs.Int("limit", 0, "at most `N` activities (0: all)")
			asJSON := fs.Bool("json", false, "print one JSON object per line")
			asGeoJSON := fs.Bool("geojson", false, "print a GeoJSON FeatureCollection, as GET /api/activities?format=geojson answers")
			return func(ctx context.Context, e env, args []string) error {
				if *athleteID <= 0 {
					return &usageError{msg: "-athlete ID is required (a positive integer)"}
				}
				if *asJSON && *asGeoJSON {
					return &usageError{msg: "-json and -geojson cannot be combined"}
				}
				return withApp(ctx, e, func(a *app.App) error {
					acts, err := a.Store.Activities(ctx, *athleteID, *limit)
					if err != nil {
						return err
					}
					if *asGeoJSON {
						out, err := readapi.AppendGeoJSON(nil, acts)
						if err != nil {
							return err
						}
						_, err = e.stdout.Write(out)
						return err
					}
					if *asJSON {
						enc := json.NewEncoder(e.stdout)
						for _, act := range acts {
							if err := enc.Encode(act); err != nil {
								return err
							}
						}
						return nil
					}
					if len(acts) == 0 {
						fmt.Fprintf(e.stdout, "no activities kept for athlete %d\n", *athleteID)
						return nil
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "START (UTC)\tID\tTYPE\tDISTANCE\tMOVING\tNAME")
					for _, act := range acts {
						fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f km\t%s\t%s\n", act.StartDate.UTC().Format("2006-01-02 15:04"), act.ID,
							orDash(act.SportType, act.Type), act.Distance/1000, time.Duration(act.MovingTime)*time.Second, act.Name)
					}
					return tw.Flush()
				})
			}
		},
	}
}

func oneID(args []string, what string) (int64, error) {
	if len(args) != 1 {
		return 0, &usageError{msg: "expected one " + what}
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, &usageError{msg: fmt.Sprintf("%s must be a positive integer, got %q", what, args[0])}
	}
	return id, nil
}

func orDash(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return "-"
}
