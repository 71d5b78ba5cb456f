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
	"time"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/rdb/embedded"
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
		flags: func(fs *flag.FlagSet) func(context.Context, env, []string) error {
			addr := fs.String("addr", "127.0.0.1:3000", "`host:port` to listen on")
			redisAddr := fs.String("redis-addr", "127.0.0.1:0", "`host:port` for the embedded Redis (when no REDIS_URL)")
			return func(ctx context.Context, e env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				return serve(ctx, e, *addr, *redisAddr)
			}
		},
	}
}

func serve(ctx context.Context, e env, addr, redisAddr string) error {
	cfg, err := app.LoadConfig(e.getenv)
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" {
		mem, err := embedded.Start(redisAddr)
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
		return err
	}
	defer client.Close()
	logs := newLogBuffer(e.stderr, 200*time.Millisecond)
	defer logs.Close()
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	if cfg.VerifyToken == "" {
		fmt.Fprintln(e.stderr, "warning: STRAVA_VERIFY_TOKEN is unset: Strava's validation GET will get a 500")
	}
	a := app.New(cfg, client, logger)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           a.Routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(e.stdout, "stravahook listening on http://%s (Redis: %s)\n", ln.Addr(), rdb.Redact(cfg.RedisURL))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
