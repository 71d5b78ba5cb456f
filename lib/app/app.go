// Package app owns the wiring: configuration from the environment, the
// Redis client, and the HTTP handlers of every route, built the same way
// for Vercel's functions (one App per function instance, see Vercel), for
// `stravahook serve`, and for tests.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/connect"
	"github.com/stravahook/stravahook/lib/notify"
	"github.com/stravahook/stravahook/lib/promptdrain"
	"github.com/stravahook/stravahook/lib/queue"
	"github.com/stravahook/stravahook/lib/readapi"
	"github.com/stravahook/stravahook/lib/store"
	"github.com/stravahook/stravahook/lib/strava"
	"github.com/stravahook/stravahook/lib/webhook"
)

// App holds one instance's dependencies. Build it with New.
type App struct {
	cfg    Config
	logger *slog.Logger
	Queue  *queue.Queue
	Store  *store.Store
	Strava *strava.Client
	// Notifier stores and delivers the drain's notifications (NOTIFY_URL);
	// disabled when no endpoint is configured.
	Notifier *notify.Notifier

	subscription *subscriptionCache
	// trigger starts prompt drains from the intake; promptBase is where
	// (empty: the event's request tells).
	trigger    *promptdrain.Trigger
	promptBase string
	// intakeBudget bounds the Redis work of one intake POST.
	intakeBudget time.Duration

	once sync.Once
	mux  *http.ServeMux
}

// Option tunes an App.
type Option func(*options)

type options struct {
	promptBase   string
	intakeBudget time.Duration
	trigger      *promptdrain.Trigger
}

// WithPromptDrainBase makes the intake send its prompt-drain requests to
// base (e.g. serve's own listening address) instead of the configured
// PUBLIC_URL or the event's request.
func WithPromptDrainBase(base string) Option {
	return func(o *options) { o.promptBase = base }
}

// WithIntakeBudget replaces the intake's budget for the Redis work of one
// POST (webhook.EnqueueTimeout, sized to Strava's 2 s wait): for tests
// about something else (dedupe under hundreds of concurrent POSTs with
// -race on a loaded machine) that must not see a 503 from the deadline.
func WithIntakeBudget(d time.Duration) Option {
	return func(o *options) { o.intakeBudget = d }
}

// New wires an App over an open Redis client. It logs which secrets had
// whitespace trimmed (Config.Trimmed), by name only.
func New(cfg Config, redis rueidis.Client, logger *slog.Logger, opts ...Option) *App {
	o := options{intakeBudget: webhook.EnqueueTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.intakeBudget <= 0 {
		o.intakeBudget = webhook.EnqueueTimeout
	}
	cfg.LogTrimmed(logger)
	st := store.New(redis, cfg.RedisPrefix)
	a := &App{
		cfg:    cfg,
		logger: logger,
		Queue: queue.New(redis, cfg.RedisPrefix+"queue:", queue.WithEnqueueTimeout(o.intakeBudget),
			queue.WithDeadRetention(cfg.DeadMaxAge, cfg.DeadMaxLen), queue.WithHeldMax(cfg.HeldMax)),
		Store: st,
		Strava: strava.NewClient(strava.Options{
			BaseURL:      cfg.StravaBaseURL,
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
		}),
	}
	a.Notifier = notify.New(redis, cfg.RedisPrefix+"notify:", notify.ConfigFromEnv(cfg.NotifyURL, cfg.NotifySecret), logger)
	a.intakeBudget = o.intakeBudget
	a.subscription = &subscriptionCache{fixed: cfg.SubscriptionID, load: st.SubscriptionID, ttl: 30 * time.Second, budget: o.intakeBudget}
	a.promptBase = cfg.PromptDrainBase()
	if o.promptBase != "" {
		a.promptBase = o.promptBase
	}
	a.trigger = o.trigger
	if a.trigger == nil {
		a.trigger = newTrigger(cfg, a.promptBase, logger)
	}
	return a
}

// withTrigger gives the App a prompt-drain trigger built before it (the
// Vercel instance's, which preconnects it as an event arrives).
func withTrigger(t *promptdrain.Trigger) Option {
	return func(o *options) { o.trigger = t }
}

// newTrigger builds the intake's prompt-drain trigger; base is where
// process_events lives (empty: the event's request tells).
func newTrigger(cfg Config, base string, logger *slog.Logger) *promptdrain.Trigger {
	return promptdrain.NewTrigger(promptdrain.TriggerConfig{
		Secret:       cfg.CronSecret,
		Off:          !cfg.PromptDrain,
		BaseURL:      base,
		BypassSecret: cfg.BypassSecret,
	}, logger)
}

// Config returns the configuration the App was built with.
func (a *App) Config() Config { return a.cfg }

// ActivityUpdate is /api/activity_update: Strava's validation GET and
// event POST.
func (a *App) ActivityUpdate() http.Handler {
	return webhook.NewHandler(
		webhook.Config{VerifyToken: a.cfg.VerifyToken, QueueUpdates: a.cfg.QueueUpdates, Queued: a.trigger.EventQueued,
			CallbackSecret: a.cfg.CallbackSecret, Budget: a.intakeBudget},
		a.Queue, a.subscription.Get, a.logger)
}

// Activities is /api/activities: the kept activities as JSON or GeoJSON,
// for holders of READ_TOKEN.
func (a *App) Activities() http.Handler {
	return readapi.NewHandler(a.cfg.ReadToken, a.Store, a.logger)
}

// ConnectPages are /api/connect and /api/connect_callback: an athlete
// authorizes us with Strava's OAuth and their tokens are stored.
func (a *App) ConnectPages() *connect.Pages {
	return connect.New(connect.Config{
		PublicURL:   a.cfg.PublicURL,
		Scope:       a.cfg.Scope,
		StateSecret: connect.DeriveStateSecret(a.cfg.ClientSecret),
		ClientIDSet: a.cfg.ClientID != "",
		SpendState:  a.Store.SpendState,
	}, a.Strava, a, a.logger)
}

// subscriptionCache answers "which subscription is ours" for every POST
// without a Redis read each time: STRAVA_SUBSCRIPTION_ID when set, else
// the id the CLI remembered, re-read at most every ttl. One read at a time
// refreshes it; the other callers wait for that read, or for their own
// context to end, whichever comes first: with Redis stalled, no POST waits
// longer than its own deadline.
type subscriptionCache struct {
	fixed int64
	load  func(context.Context) (int64, error)
	ttl   time.Duration
	// budget bounds a read (the intake's budget).
	budget time.Duration

	mu      sync.Mutex
	value   int64
	err     error
	expires time.Time
	loading chan struct{} // closed when the read in flight ends; nil when none
}

func (c *subscriptionCache) Get(ctx context.Context) (int64, error) {
	if c.fixed != 0 {
		return c.fixed, nil
	}
	for retried := false; ; retried = true {
		c.mu.Lock()
		if time.Now().Before(c.expires) {
			v, err := c.value, c.err
			c.mu.Unlock()
			return v, err
		}
		loading := c.loading
		if loading == nil {
			loading = make(chan struct{})
			c.loading = loading
			go c.refresh(context.WithoutCancel(ctx), loading, true)
		}
		c.mu.Unlock()
		select {
		case <-loading:
			c.mu.Lock()
			v, err, remembered := c.value, c.err, time.Now().Before(c.expires)
			c.mu.Unlock()
			// A prefetch's failure is not remembered: read again, once.
			if err == nil || remembered || retried {
				return v, err
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("read the remembered subscription id: %w", context.Cause(ctx))
		}
	}
}

// prefetch reads the id ahead of the first event without waiting for it;
// an event that arrives meanwhile waits for this read. Its failure is not
// remembered (it may come from a freeze of the instance, not from Redis).
func (c *subscriptionCache) prefetch() {
	if c.fixed != 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loading == nil && c.expires.IsZero() {
		c.loading = make(chan struct{})
		go c.refresh(context.Background(), c.loading, false)
	}
}

// refresh reads the id, bounded by the intake's budget, in a goroutine of
// its own: the caller that started it may stop waiting before it ends.
func (c *subscriptionCache) refresh(ctx context.Context, done chan struct{}, rememberFailure bool) {
	ctx, cancel := context.WithTimeout(ctx, c.budget)
	defer cancel()
	v, err := c.load(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.err = fmt.Errorf("read the remembered subscription id: %w", err)
		if rememberFailure {
			// Remember the failure briefly: with Redis gone, each POST
			// would otherwise start a read of its own.
			c.expires = time.Now().Add(time.Second)
		}
	} else {
		c.value, c.err, c.expires = v, nil, time.Now().Add(c.ttl)
	}
	c.loading = nil
	close(done)
}
