package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/stravahook/stravahook/lib/promptdrain"
	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/respond"
	"github.com/stravahook/stravahook/lib/webhook"
)

// Instance is what one Vercel function instance serves from: the App is
// built once Redis is connected (as the process starts on Vercel, see
// init; else on the first request) and reused while the instance stays
// warm.
// A missing or malformed setting is remembered (it cannot change without a
// redeploy); a Redis that cannot be reached is retried on the next request.
type Instance struct {
	getenv func(string) string
	logger *slog.Logger

	mu          sync.Mutex
	app         *App
	fatal       error
	trigger     *promptdrain.Trigger // the App's, built before it (see preconnectTrigger)
	connecting  chan struct{}        // closed when the connection attempt in flight ends
	connectErr  error                // that attempt's failure
	redisURLVar string               // REDIS_URL or KV_URL, for errors
}

// connectTimeout bounds one attempt to reach Redis on a cold instance.
const connectTimeout = 3 * time.Second

// vercel is the only package-level state: Vercel's Go runtime calls a
// plain function per request, so the instance's App has to live somewhere
// between calls.
var vercel = NewInstance(os.Getenv, slog.New(slog.NewJSONHandler(os.Stdout, nil)))

// A Vercel function is an AWS Lambda function: its process runs only where
// the Lambda runtime API's address is set (go-bridge serves through it).
// There the instance starts connecting as the process starts, so that the
// TLS handshake with Redis and the read of the subscription id overlap the
// runtime's own start and the wait for the first request, instead of
// following them. Tests and the CLI, which link this package too, connect
// on first use.
func init() {
	if os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		vercel.Prepare()
	}
}

// Vercel returns this process's Instance.
func Vercel() *Instance { return vercel }

// NewInstance is exported for tests of the Vercel entry points.
func NewInstance(getenv func(string) string, logger *slog.Logger) *Instance {
	return &Instance{getenv: getenv, logger: logger}
}

// ErrNoRedis says which variable to set.
var ErrNoRedis = errors.New("neither REDIS_URL nor KV_URL is set: add Upstash for Redis to the Vercel project (it sets KV_URL) or set REDIS_URL to a rediss:// URL")

// Prepare starts connecting to Redis without waiting, unless the instance
// is connected or connecting already, or cannot connect (a missing or
// malformed setting, reported by the first request).
func (i *Instance) Prepare() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.start()
}

// get returns the instance's App, connecting to Redis on first use. The
// connection attempt runs on its own; a caller waits for it only until its
// own context ends (the intake's budget, see Serve), so that a Redis that
// stalls while we connect costs an event POST its 503, not seconds. A
// caller that found an attempt already under way and saw it fail tries once
// more with one of its own: the attempt may have begun as the process
// started and been frozen with the instance until this request thawed it,
// its deadlines passing meanwhile.
func (i *Instance) get(ctx context.Context) (*App, error) {
	for retried := false; ; retried = true {
		i.mu.Lock()
		joined := i.connecting != nil
		done := i.start()
		app, err, urlVar := i.app, i.fatal, i.redisURLVar
		i.mu.Unlock()
		if done == nil {
			return app, err
		}
		select {
		case <-done:
			i.mu.Lock()
			app, err = i.app, i.connectErr
			i.mu.Unlock()
			if app != nil {
				return app, nil
			}
			if !joined || retried || ctx.Err() != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: not reachable yet: %w", urlVar, context.Cause(ctx))
		}
	}
}

// start begins a connection attempt unless one is in flight, and returns
// the channel that closes when it ends; nil when there is nothing to wait
// for (connected, or a fatal setting). i.mu must be held.
func (i *Instance) start() <-chan struct{} {
	if i.app != nil || i.fatal != nil {
		return nil
	}
	cfg, err := LoadConfig(i.getenv)
	if err == nil && cfg.RedisURL == "" {
		err = ErrNoRedis
	}
	if err != nil {
		i.fatal = err
		return nil
	}
	if i.trigger == nil {
		i.trigger = newTrigger(cfg, cfg.PromptDrainBase(), i.logger)
	}
	if i.connecting == nil {
		i.connecting = make(chan struct{})
		i.redisURLVar = cfg.RedisURLVar
		go i.connect(cfg, i.connecting)
	}
	return i.connecting
}

func (i *Instance) connect(cfg Config, done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	client, err := rdb.Connect(ctx, cfg.RedisURL)
	i.mu.Lock()
	var app *App
	if err != nil {
		i.connectErr = fmt.Errorf("%s: %w", cfg.RedisURLVar, err)
	} else {
		app = New(cfg, client, i.logger, withTrigger(i.trigger))
		i.app, i.connectErr = app, nil
	}
	i.connecting = nil
	close(done)
	i.mu.Unlock()
	if app != nil {
		// Most cold starts are for an event, whose check needs the
		// subscription id: read it now rather than after the event
		// arrives. A failure is not remembered: the event reads again.
		app.subscription.prefetch()
	}
}

// preconnectTrigger lets the prompt-drain trigger open its connection
// while an event is being received (promptdrain.Trigger.Preconnect); the
// caller calls release once it has answered.
func (i *Instance) preconnectTrigger() (release func()) {
	i.mu.Lock()
	i.start()
	trigger := i.trigger
	i.mu.Unlock()
	if trigger == nil {
		return func() {}
	}
	return trigger.Preconnect()
}

// Serve answers a request to the Vercel function whose route is pattern
// (each api/ file names its own). The request goes through the route table
// like on serve, so a route with a wildcard reaches its handler with its
// path values; a path the table does not know (a rewrite Vercel did not
// preserve) still reaches the function's own route.
func (i *Instance) Serve(w http.ResponseWriter, r *http.Request, pattern string) {
	getCtx := r.Context()
	if pattern == intakePattern {
		if r.Method == http.MethodPost {
			defer i.preconnectTrigger()()
		}
		// Strava waits 2 s: a cold instance's connection gets the intake's
		// budget, not more.
		var cancel context.CancelFunc
		getCtx, cancel = context.WithTimeout(getCtx, webhook.EnqueueTimeout)
		defer cancel()
	}
	a, err := i.get(getCtx)
	if err != nil {
		i.logger.LogAttrs(r.Context(), slog.LevelError, "function unavailable",
			slog.String("route", pattern), slog.Int("status", http.StatusServiceUnavailable), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "30")
		respond.Error(w, http.StatusServiceUnavailable, "service unavailable: storage is not configured or not reachable; see the function logs")
		return
	}
	mux := a.serveMux()
	if _, matched := mux.Handler(r); matched == "" {
		r.URL.Path = pattern
	}
	mux.ServeHTTP(w, r)
}
