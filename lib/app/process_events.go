package app

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"time"

	"github.com/stravahook/stravahook/lib/processor"
	"github.com/stravahook/stravahook/lib/respond"
)

// Processor builds the drain with the given budget
// (processor.DefaultBudget when 0).
func (a *App) Processor(budget time.Duration) *processor.Processor {
	return processor.New(processor.Config{Budget: budget, Notifier: a.Notifier}, a.Queue, a.Store, a.Strava, a.logger)
}

// Drain runs one drain pass with the given budget. It refuses to start
// without our application's credentials: every token refresh would fail.
func (a *App) Drain(ctx context.Context, budget time.Duration) (processor.Summary, error) {
	if err := a.cfg.NeedStravaApp(); err != nil {
		return processor.Summary{}, err
	}
	return a.Processor(budget).Drain(ctx)
}

// ProcessEvents is /api/process_events: Vercel Cron (or any scheduler, or
// an operator) calls it with Authorization: Bearer $CRON_SECRET and it
// drains the queue for up to processor.DefaultBudget.
func (a *App) ProcessEvents() http.Handler {
	proc := a.Processor(0)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			respond.Error(w, http.StatusMethodNotAllowed, "method not allowed: use GET or POST")
			return
		}
		if a.cfg.CronSecret == "" {
			a.logger.LogAttrs(r.Context(), slog.LevelError, "process_events refused",
				slog.Int("status", http.StatusInternalServerError),
				slog.String("error", "CRON_SECRET is not set: set it in the project's environment variables; Vercel Cron then sends it"))
			respond.Error(w, http.StatusInternalServerError, "server misconfigured; see the logs")
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		want := []byte("Bearer " + a.cfg.CronSecret)
		if subtle.ConstantTimeCompare(got, want) != 1 {
			a.logger.LogAttrs(r.Context(), slog.LevelWarn, "process_events refused",
				slog.Int("status", http.StatusUnauthorized), slog.Bool("authorization_present", len(got) > 0))
			w.Header().Set("WWW-Authenticate", `Bearer realm="process_events"`)
			respond.Error(w, http.StatusUnauthorized, "missing or wrong Authorization: Bearer $CRON_SECRET")
			return
		}
		if err := a.cfg.NeedStravaApp(); err != nil {
			a.logger.LogAttrs(r.Context(), slog.LevelError, "process_events refused",
				slog.Int("status", http.StatusInternalServerError), slog.String("error", err.Error()))
			respond.Error(w, http.StatusInternalServerError, "server misconfigured; see the logs")
			return
		}
		sum, err := proc.Drain(r.Context())
		if err != nil {
			// The summary still says what was done; nothing unfinished was
			// lost (it stays queued), but the caller should know.
			w.Header().Set("Retry-After", "60")
			respond.JSON(w, http.StatusServiceUnavailable, struct {
				Error string `json:"error"`
				processor.Summary
			}{"drain interrupted: " + err.Error(), sum})
			return
		}
		respond.JSON(w, http.StatusOK, sum)
	})
}
