package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/rdb/embedded"
	"github.com/stravahook/stravahook/lib/staticsite"
)

func serveCommand() command {
	return command{
		path:    "serve",
		summary: "serve every route locally (an embedded in-memory Redis when REDIS_URL and KV_URL are unset)",
		details: func(w io.Writer) {
			fmt.Fprintln(w, "\nroutes:")
			app.WriteRouteList(w)
			fmt.Fprintln(w, "\nflags:")
		},
		flags: func(fs *flag.FlagSet) action {
			addr := fs.String("addr", "127.0.0.1:3000", "`host:port` to listen on")
			redisAddr := fs.String("redis-addr", "127.0.0.1:0", "`host:port` for the embedded Redis (when no REDIS_URL)")
			sandbox := fs.Bool("sandbox", false, "also run a Strava double in process, with a sample athlete connected and the subscription created (see stravahook trigger -h)")
			drainEvery := fs.Duration("drain-every", 0, "drain the queue every `D`, as a cron would (0: never; 3s with -sandbox)")
			staticDir := fs.String("static", "", "`folder` of the static pages served at / (default: the .static folder of the checkout holding the working directory)")
			return func(ctx context.Context, e env, args []string) error {
				if *drainEvery < 0 {
					return &usageError{msg: "-drain-every must not be negative"}
				}
				if *sandbox && *drainEvery == 0 {
					*drainEvery = 3 * time.Second
				}
				return serve(ctx, e, serveOptions{addr: *addr, redisAddr: *redisAddr, sandbox: *sandbox, drainEvery: *drainEvery, staticDir: *staticDir})
			}
		},
	}
}

type serveOptions struct {
	addr, redisAddr string
	sandbox         bool
	drainEvery      time.Duration
	staticDir       string
}

func serve(ctx context.Context, e env, opts serveOptions) error {
	cfg, err := app.LoadConfig(e.getenv)
	if err != nil {
		return err
	}
	// The port first: a busy one fails before anything starts or prints.
	tcpLn, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (another serve running? choose another port with -addr)", opts.addr, err)
	}
	defer tcpLn.Close()
	base := "http://" + tcpLn.Addr().String()
	site, err := staticSite(e, opts.staticDir)
	if err != nil {
		return err
	}
	var sb *sandbox
	if opts.sandbox {
		sb = startSandbox(&cfg)
		defer sb.Close()
	}
	if cfg.VerifyToken == "" {
		cfg.VerifyToken = randomSecret()
		fmt.Fprintf(e.stderr, "STRAVA_VERIFY_TOKEN is unset: using %s for this run (give Strava the same value)\n", cfg.VerifyToken)
	}
	if cfg.RedisURL == "" {
		mem, err := embedded.Start(opts.redisAddr)
		if err != nil {
			return err
		}
		defer mem.Close()
		cfg.RedisURL, cfg.RedisURLVar = mem.URL(), "embedded"
		fmt.Fprintf(e.stderr, "warning: REDIS_URL and KV_URL are unset: using an embedded in-memory Redis; nothing persists when serve stops.\n")
		fmt.Fprintf(e.stderr, "         other commands reach it with REDIS_URL=%s\n", mem.URL())
	}
	client, err := rdb.Connect(ctx, cfg.RedisURL)
	if err != nil {
		if cfg.RedisURLVar != "embedded" {
			// Often the URL an earlier serve printed, whose Redis is gone.
			return fmt.Errorf("%w (%s is set; unset it for an embedded Redis)", err, cfg.RedisURLVar)
		}
		return err
	}
	defer client.Close()
	logs := newLogBuffer(e.stderr, 200*time.Millisecond)
	defer logs.Close()
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	// Prompt drains: the intake asks this very server, over loopback,
	// whatever PUBLIC_URL says (it may be a tunnel for Strava's calls).
	a := app.New(cfg, client, logger, app.WithPromptDrainBase("http://"+loopback(tcpLn.Addr().(*net.TCPAddr))))

	// /api/… are the routes and everything else the static pages, as on
	// Vercel; the sandbox's control routes beside them.
	mux := http.NewServeMux()
	mux.Handle("/api/", a.Routes())
	mux.Handle("/", site)
	if sb != nil {
		mux.Handle(sandboxPath, sb.strava.Handler())
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(e.stdout, "stravahook listening on http://%s (Redis: %s)\n", tcpLn.Addr(), rdb.Redact(cfg.RedisURL))
	if cfg.ReadToken == "" {
		fmt.Fprintln(e.stderr, "note: READ_TOKEN is unset: /api/activities and the map page (/map.html) answer 404 until it is set (16 characters or more)")
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tcpLn) }()
	if sb != nil {
		// With STRAVA_CALLBACK_SECRET, the double pushes to the secret path;
		// what is printed shows it masked.
		registered, err := withCallbackSecret(base+callbackPath, cfg.CallbackSecret)
		if err != nil {
			_ = srv.Close()
			return err
		}
		if err := sb.setUp(ctx, a, base, strings.TrimPrefix(registered, base)); err != nil {
			_ = srv.Close()
			return err
		}
		sb.printNextSteps(e.stdout, cfg, base, strings.TrimPrefix(maskCallback(registered), base), opts.drainEvery)
	}
	if opts.drainEvery > 0 {
		go drainLoop(ctx, a, opts.drainEvery, e.stdout)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// staticSite serves the static pages (landing page, map) the way Vercel
// serves vercel.json's outputDirectory. Without a folder found, / says
// where serve looked, and the API routes work all the same.
func staticSite(e env, dir string) (http.Handler, error) {
	if dir == "" {
		found, err := staticsite.Find()
		if err != nil {
			fmt.Fprintf(e.stderr, "warning: %v; / answers 404\n", err)
			return http.NotFoundHandler(), nil
		}
		dir = found
	}
	return staticsite.Handler(dir)
}

// loopback is how this machine reaches a listener on addr: a wildcard
// address (0.0.0.0, ::) is reached on the loopback address.
func loopback(addr *net.TCPAddr) string {
	ip := addr.IP
	switch {
	case ip == nil || ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}
