package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/stravahook/stravahook/lib/app"
	"github.com/stravahook/stravahook/lib/rdb"
)

var errNeedRedis = errors.New("REDIS_URL (or KV_URL) is not set: point it at the Redis that stravahook uses (the URL `stravahook serve` printed, or your Upstash rediss:// URL)")

// openApp connects to the configured Redis and wires the App, for every
// command but serve. The returned func closes the connection.
func openApp(ctx context.Context, e env) (*app.App, func(), error) {
	cfg, err := app.LoadConfig(e.getenv)
	if err != nil {
		return nil, nil, err
	}
	if cfg.RedisURL == "" {
		return nil, nil, errNeedRedis
	}
	client, err := rdb.Connect(ctx, cfg.RedisURL)
	if err != nil {
		return nil, nil, err
	}
	return app.New(cfg, client, slog.New(slog.NewJSONHandler(e.stderr, nil))), client.Close, nil
}
