package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/rdb"
)

var errNeedRedis = errors.New("REDIS_URL (or KV_URL) is not set: point it at the Redis that stravahook uses (the URL `stravahook serve` printed, or your Upstash rediss:// URL)")

// withApp connects to the configured Redis, wires the App, runs do with it
// and closes the connection: the frame of every command but serve.
func withApp(ctx context.Context, e env, do func(a *app.App) error) error {
	cfg, err := app.LoadConfig(e.getenv)
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" {
		return errNeedRedis
	}
	client, err := rdb.Connect(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer client.Close()
	return do(app.New(cfg, client, slog.New(slog.NewJSONHandler(e.stderr, nil))))
}
