package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/notify"
)

func notifyCommands() []command {
	return []command{notifySecretCommand(), notifyTestCommand(), notifyRedriveCommand(), notifyStatusCommand(), listenCommand()}
}

func notifySecretCommand() command {
	return command{
		path:    "notify secret",
		summary: "print a fresh Standard Webhooks secret for NOTIFY_SECRET",
		run: func(ctx context.Context, e env, args []string) error {
			fmt.Fprintln(e.stdout, notify.NewSecret())
			return nil
		},
	}
}

// notifier builds the Notifier from the environment without Redis: enough
// to sign and send (notify test).
func notifierFromEnv(e env) (*notify.Notifier, error) {
	cfg, err := app.LoadConfig(e.getenv)
	if err != nil {
		return nil, err
	}
	nc := notify.ConfigFromEnv(cfg.NotifyURL, cfg.NotifySecret)
	if nc.EndpointsErr != nil {
		return nil, nc.EndpointsErr
	}
	if len(nc.Endpoints) == 0 {
		return nil, errors.New("NOTIFY_URL is not set: set it to your endpoint's URL (several: comma-separated)")
	}
	if nc.SecretErr != nil {
		return nil, nc.SecretErr
	}
	return notify.New(nil, "", nc, nil), nil
}

func notifyTestCommand() command {
	return command{
		path:    "notify test",
		summary: "send a signed ping to every NOTIFY_URL endpoint and print each answer",
		run: func(ctx context.Context, e env, args []string) error {
			n, err := notifierFromEnv(e)
			if err != nil {
				return err
			}
			results, err := n.Ping(ctx)
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				switch {
				case r.Err != nil:
					failed++
					fmt.Fprintf(e.stdout, "%s: %v (webhook-id %s)\n", r.Endpoint, r.Err, r.ID)
				default:
					if r.Status < 200 || r.Status > 299 {
						failed++
					}
					answer := oneLine(r.Answer)
					fmt.Fprintf(e.stdout, "%s: %d %s (webhook-id %s)", r.Endpoint, r.Status, http.StatusText(r.Status), r.ID)
					if answer != "" {
						fmt.Fprintf(e.stdout, ": %s", answer)
					}
					fmt.Fprintln(e.stdout)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d endpoints did not answer 2xx", failed, len(results))
			}
			return nil
		},
	}
}

func notifyRedriveCommand() command {
	return command{
		path:    "notify redrive",
		summary: "move dead notifications back to pending (and start endpoints stopped by 410 Gone again)",
		run: func(ctx context.Context, e env, args []string) error {
			return withApp(ctx, e, func(a *app.App) error {
				if !a.Notifier.Enabled() {
					return errors.New("NOTIFY_URL is not set: no endpoint to redrive notifications for")
				}
				n, err := a.Notifier.Redrive(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "moved %d dead notifications back to pending; the next drain delivers them\n", n)
				return nil
			})
		},
	}
}

func notifyStatusCommand() command {
	return command{
		path:    "notify status",
		summary: "count pending, retrying and dead notifications per endpoint",
		flags: func(fs *flag.FlagSet) action {
			asJSON := fs.Bool("json", false, "print one JSON object")
			return func(ctx context.Context, e env, args []string) error {
				return withApp(ctx, e, func(a *app.App) error {
					stats, err := a.Notifier.Stats(ctx)
					if err != nil {
						return err
					}
					if *asJSON {
						if stats == nil {
							stats = []notify.EndpointStats{}
						}
						return json.NewEncoder(e.stdout).Encode(struct {
							Endpoints []notify.EndpointStats `json:"endpoints"`
						}{stats})
					}
					writeNotifyStats(e.stdout, stats)
					return nil
				})
			}
		},
	}
}

func writeNotifyStats(w io.Writer, stats []notify.EndpointStats) {
	if len(stats) == 0 {
		fmt.Fprintln(w, "notifications: off (NOTIFY_URL is not set)")
		return
	}
	dead := false
	for _, s := range stats {
		fmt.Fprintf(w, "notifications to %s: pending %d, retrying %d, dead %d", s.URL, s.Pending, s.Retrying, s.Dead)
		if s.Stopped {
			fmt.Fprint(w, " (stopped: it answered 410 Gone)")
		}
		fmt.Fprintln(w)
		dead = dead || s.Dead > 0 || s.Stopped
	}
	if dead {
		fmt.Fprintln(w, "`stravahook notify redrive` moves dead notifications back to pending.")
	}
}

func listenCommand() command {
	return command{
		path:    "listen",
		summary: "a local notification receiver: verifies each signature with NOTIFY_SECRET (401 when bad or stale), prints one line each",
		flags: func(fs *flag.FlagSet) action {
			addr := fs.String("addr", "127.0.0.1:3100", "`host:port` to listen on")
			return func(ctx context.Context, e env, args []string) error {
				cfg, err := app.LoadConfig(e.getenv)
				if err != nil {
					return err
				}
				secret, err := notify.ParseSecret(cfg.NotifySecret)
				if err != nil {
					return err
				}
				return listen(ctx, e, *addr, secret)
			}
		},
	}
}

// maxNotificationBytes bounds what listen reads of one request.
const maxNotificationBytes = 8 << 20

func listen(ctx context.Context, e env, addr string, secret notify.Secret) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	var out sync.Mutex // one whole line at a time
	line := func(format string, a ...any) {
		out.Lock()
		fmt.Fprintf(e.stdout, format+"\n", a...)
		out.Unlock()
	}
	srv := &http.Server{
		Handler:           listenHandler(secret, time.Now, line),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
	}
	line("listening on http://%s for notifications; set NOTIFY_URL=http://%s and run a drain (or `stravahook notify test`)", ln.Addr(), ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("listen: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return nil
}

// listenHandler verifies each notification and prints one line for it,
// accepted or not.
func listenHandler(secret notify.Secret, now func() time.Time, line func(string, ...any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "POST notifications here", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNotificationBytes))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		id := r.Header.Get(notify.HeaderID)
		if err := secret.Verify(r.Header, body, now(), notify.DefaultTolerance); err != nil {
			line("%s rejected %s: %v (401)", now().UTC().Format(time.TimeOnly), orDash(id), err)
			http.Error(w, "signature verification failed: "+err.Error(), http.StatusUnauthorized)
			return
		}
		var n struct {
			Type      string `json:"type"`
			Timestamp string `json:"timestamp"`
			Data      struct {
				AthleteID  int64 `json:"athlete_id"`
				ActivityID int64 `json:"activity_id"`
				Activity   *struct {
					Name      string  `json:"name"`
					SportType string  `json:"sport_type"`
					Distance  float64 `json:"distance"`
				} `json:"activity"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &n); err != nil {
			line("%s rejected %s: signed, but not JSON (400)", now().UTC().Format(time.TimeOnly), id)
			http.Error(w, "body is not JSON", http.StatusBadRequest)
			return
		}
		var what []string
		if n.Data.AthleteID != 0 {
			what = append(what, fmt.Sprintf("athlete %d", n.Data.AthleteID))
		}
		if n.Data.ActivityID != 0 {
			what = append(what, fmt.Sprintf("activity %d", n.Data.ActivityID))
		}
		if a := n.Data.Activity; a != nil {
			what = append(what, fmt.Sprintf("%q %s %.1f km", a.Name, a.SportType, a.Distance/1000))
		}
		parts := append([]string{now().UTC().Format(time.TimeOnly), n.Type, id}, what...)
		line("%s (%d bytes, verified)", strings.Join(parts, " "), len(body))
		w.WriteHeader(http.StatusNoContent)
	})
}
