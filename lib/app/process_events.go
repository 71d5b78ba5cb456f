package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/stravahook/stravahook/lib/baseurl"
	"github.com/stravahook/stravahook/lib/processor"
	"github.com/stravahook/stravahook/lib/promptdrain"
	"github.com/stravahook/stravahook/lib/respond"
	"github.com/stravahook/stravahook/lib/secretcmp"
	"github.com/stravahook/stravahook/lib/store"
)

// DrainTrigger says what started a drain; every drain's summary names it.
type DrainTrigger string

// What starts drains.
const (
	// TriggerCron is a call of /api/process_events: Vercel Cron, another
	// scheduler or an operator.
	TriggerCron DrainTrigger = "cron"
	// TriggerPrompt is the intake, right after it queued an event
	// (/api/process_events?trigger=prompt, see lib/promptdrain).
	TriggerPrompt DrainTrigger = "prompt"
	// TriggerCLI is `stravahook process`.
	TriggerCLI DrainTrigger = "cli"
)

// DrainReport is a drain's JSON summary: what started it, and what it did.
type DrainReport struct {
	Trigger DrainTrigger `json:"trigger"`
	// SteppedAside says this prompt drain found another one running and
	// left the work to it (the counts are then zero).
	SteppedAside bool `json:"stepped_aside,omitempty"`
	processor.Summary
}

// processor is the one place drains are built; each logs its trigger.
func (a *App) processor(cfg processor.Config, trigger DrainTrigger) *processor.Processor {
	if cfg.Budget <= 0 {
		cfg.Budget = processor.DefaultBudget
	}
	cfg.Notifier = a.Notifier
	return processor.New(cfg, a.Queue, a.Store, a.Strava, a.logger.With("trigger", string(trigger)))
}

// Drain runs one drain pass with the given budget and records it for
// `queue status`. It refuses to start without our application's
// credentials: every token refresh would fail.
func (a *App) Drain(ctx context.Context, budget time.Duration, trigger DrainTrigger) (DrainReport, error) {
	if err := a.cfg.NeedStravaApp(); err != nil {
		return DrainReport{Trigger: trigger}, err
	}
	start := time.Now()
	sum, err := a.processor(processor.Config{Budget: budget}, trigger).Drain(ctx)
	a.recordDrain(ctx, start, trigger, sum, err)
	return DrainReport{Trigger: trigger, Summary: sum}, err
}

// promptDrain runs one prompt drain; base is where a hand-over goes
// (waited for under vercel dev, see promptdrain.UnderVercelDev).
func (a *App) promptDrain(ctx context.Context, base string, devWait bool) (DrainReport, error) {
	start := time.Now()
	d := &promptdrain.Drain{
		Leases: a.Store,
		Logger: a.logger,
		Budget: processor.DefaultBudget,
		Processor: func(settle time.Duration, idle func(context.Context) time.Duration) *processor.Processor {
			return a.processor(processor.Config{Budget: processor.DefaultBudget, Settle: settle, Idle: idle}, TriggerPrompt)
		},
		HandOver: func() { a.trigger.Send(base, devWait) },
	}
	sum, stepped, err := d.Run(ctx)
	if stepped {
		a.logger.Info("prompt drain stepped aside: another one is running and keeps watching the queue", "trigger", string(TriggerPrompt))
		return DrainReport{Trigger: TriggerPrompt, SteppedAside: true, Summary: sum}, nil
	}
	a.recordDrain(ctx, start, TriggerPrompt, sum, err)
	return DrainReport{Trigger: TriggerPrompt, Summary: sum}, err
}

// recordDrain remembers the drain for `queue status`; failing to is logged,
// not fatal: the drain's work is done.
func (a *App) recordDrain(ctx context.Context, start time.Time, trigger DrainTrigger, sum processor.Summary, err error) {
	last := store.LastDrain{At: start.UTC(), Trigger: string(trigger), Claimed: sum.Claimed, Kept: sum.Kept,
		Deleted: sum.Deleted, DurationMS: sum.DurationMS}
	if err != nil {
		last.Error = err.Error()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := a.Store.SetLastDrain(rctx, last); err != nil {
		a.logger.Warn("last drain not recorded", "error", err.Error())
	}
}

// ProcessEvents is /api/process_events: Vercel Cron (or any scheduler, or
// an operator) calls it with Authorization: Bearer $CRON_SECRET and it
// drains the queue for up to processor.DefaultBudget; with ?trigger=prompt
// it is the intake's prompt drain.
func (a *App) ProcessEvents() http.Handler {
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
		got := r.Header.Get("Authorization")
		if !secretcmp.Equal(got, "Bearer "+a.cfg.CronSecret) {
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
		var rep DrainReport
		var err error
		if r.URL.Query().Get("trigger") == string(TriggerPrompt) {
			// The intake that asked does not wait for the answer, and under
			// serve or `vercel dev` its going away cancels r.Context(): the
			// drain must not stop then (on Vercel itself, a Go function is
			// not cancelled when its client leaves). It gets its own
			// deadline, the end of its turn.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), promptdrain.Lease(processor.DefaultBudget))
			defer cancel()
			base := a.promptBase
			if base == "" {
				base, _ = baseurl.OwnHost(r) // never X-Forwarded-*: the hand-over carries CRON_SECRET
			}
			rep, err = a.promptDrain(ctx, base, promptdrain.UnderVercelDev(r, base))
		} else {
			rep, err = a.Drain(r.Context(), processor.DefaultBudget, TriggerCron)
		}
		if err != nil {
			// The summary still says what was done; nothing unfinished was
			// lost (it stays queued), but the caller should know.
			w.Header().Set("Retry-After", "60")
			respond.JSON(w, http.StatusServiceUnavailable, struct {
				Error string `json:"error"`
				DrainReport
			}{"drain interrupted: " + err.Error(), rep})
			return
		}
		respond.JSON(w, http.StatusOK, rep)
	})
}
