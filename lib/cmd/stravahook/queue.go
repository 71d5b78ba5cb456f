package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/notify"
	"github.com/stravahook/stravahook/lib/store"
)

func queueStatusCommand() command {
	return command{
		path:    "queue status",
		summary: "count ready, delayed (leased or waiting to retry), held (athlete must reconnect) and dead events",
		flags: func(fs *flag.FlagSet) action {
			asJSON := fs.Bool("json", false, "print one JSON object")
			return func(ctx context.Context, e env, args []string) error {
				return withApp(ctx, e, func(a *app.App) error {
					s, err := a.Queue.Stats(ctx)
					if err != nil {
						return err
					}
					dead, err := a.Queue.Dead(ctx, 5)
					if err != nil {
						return err
					}
					notifications, err := a.Notifier.Stats(ctx) // nil without NOTIFY_URL
					if err != nil {
						return err
					}
					last, err := a.Store.LastDrain(ctx)
					if err != nil {
						return err
					}
					if *asJSON {
						out := struct {
							Ready              int64   `json:"ready"`
							Delayed            int64   `json:"delayed"`
							Leased             int64   `json:"leased"`
							Held               int64   `json:"held"`
							Dead               int64   `json:"dead"`
							OldestReadySeconds float64 `json:"oldest_ready_seconds"`
							RecentDead         any     `json:"recent_dead"`
							LastDrain          any     `json:"last_drain"`
							// Notifications are per endpoint (notify status).
							Notifications []notify.EndpointStats `json:"notifications,omitempty"`
						}{s.Ready, s.Delayed, s.Leased, s.Held, s.Dead, s.OldestReadySeconds, dead, last, notifications}
						if len(dead) == 0 {
							out.RecentDead = []any{}
						}
						return json.NewEncoder(e.stdout).Encode(out)
					}
					fmt.Fprintf(e.stdout, "ready:   %d", s.Ready)
					if s.Ready > 0 {
						fmt.Fprintf(e.stdout, " (oldest first queued %s ago)", s.OldestReady.Round(time.Second))
					}
					fmt.Fprintf(e.stdout, "\ndelayed: %d (leased by a running drain: %d)\nheld:    %d", s.Delayed, s.Leased, s.Held)
					if s.Held > 0 {
						fmt.Fprint(e.stdout, " (waiting for their athlete to reconnect; see `stravahook athlete list`)")
					}
					fmt.Fprintf(e.stdout, "\ndead:    %d\n", s.Dead)
					for _, d := range dead {
						fmt.Fprintf(e.stdout, "  dead %s after %d attempts at %s: %s\n", d.ID, d.Attempts, d.DiedAt.UTC().Format(time.RFC3339), d.Error)
					}
					if s.Dead > 0 {
						fmt.Fprintln(e.stdout, "`stravahook queue redrive` moves dead events back to ready.")
					}
					if len(notifications) > 0 {
						writeNotifyStats(e.stdout, notifications)
					}
					printLastDrain(e, last)
					return nil
				})
			}
		},
	}
}

func queueRedriveCommand() command {
	return command{
		path:    "queue redrive",
		summary: "move every dead event back to ready",
		run: func(ctx context.Context, e env, args []string) error {
			return withApp(ctx, e, func(a *app.App) error {
				before, err := a.Queue.Stats(ctx)
				if err != nil {
					return err
				}
				stop := startProgress(e, func() string {
					now, err := a.Queue.Stats(ctx)
					if err != nil {
						return "redriving…"
					}
					return fmt.Sprintf("redriving… %d of %d dead events moved", before.Dead-now.Dead, before.Dead)
				})
				n, err := a.Queue.Redrive(ctx)
				stop()
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "moved %d dead events back to ready\n", n)
				return nil
			})
		},
	}
}

// printLastDrain says when the last drain ran and what started it.
func printLastDrain(e env, last *store.LastDrain) {
	if last == nil {
		fmt.Fprintln(e.stdout, "last drain: none recorded")
		return
	}
	fmt.Fprintf(e.stdout, "last drain: %s (%s ago), trigger %s: claimed %d, kept %d, deleted %d in %d ms",
		last.At.UTC().Format(time.RFC3339), time.Since(last.At).Round(time.Second), last.Trigger,
		last.Claimed, last.Kept, last.Deleted, last.DurationMS)
	if last.Error != "" {
		fmt.Fprintf(e.stdout, "; error: %s", last.Error)
	}
	fmt.Fprintln(e.stdout)
}
