// Package embedded is the in-memory Redis (miniredis) that `stravahook
// serve` starts when no REDIS_URL is configured. It is its own package so
// that only the CLI and tests link it: a Vercel function binary must not
// carry miniredis and its Lua interpreter (.ci/run checks with go list).
package embedded

import (
	"fmt"

	"github.com/alicebob/miniredis/v2"
)

// Redis is an in-memory Redis inside this process. Nothing it holds
// survives the process.
type Redis struct {
	server *miniredis.Miniredis
}

// Start starts an in-memory Redis on addr ("127.0.0.1:0" picks a free
// port).
func Start(addr string) (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start embedded redis on %s: %w", addr, err)
	}
	return &Redis{server: m}, nil
}

// URL is the redis:// URL other processes (the CLI) can use to reach it.
func (r *Redis) URL() string { return "redis://" + r.server.Addr() }

// Close stops the server.
func (r *Redis) Close() { r.server.Close() }
