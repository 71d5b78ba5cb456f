// Package rdb owns how stravahook reaches Redis: it turns REDIS_URL-style
// URLs (redis://, rediss:// as Upstash hands them out, unix://) into one shared
// rueidis client. (The embedded Redis `stravahook serve` uses lives in
// rdb/embedded, which no Vercel function links.)
//
// rueidis is the one Redis client: it pipelines concurrent commands from
// many goroutines over one connection by itself (.bench/README.md says
// why it was kept over go-redis).
package rdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/rueidis"
)

// Connect builds a client for rawURL. rueidis dials and says HELLO (with
// the URL's password, and SELECT of its database) before it hands the client
// over, so a wrong URL or password fails here with a clear error instead of
// on the first event, without a command of our own: a cold function's
// first event waits for no extra round trip. ctx bounds the wait.
func Connect(ctx context.Context, rawURL string) (rueidis.Client, error) {
	opt, err := Options(rawURL)
	if err != nil {
		return nil, err
	}
	return connect(ctx, rawURL, opt)
}

func connect(ctx context.Context, rawURL string, opt rueidis.ClientOption) (rueidis.Client, error) {
	type dialed struct {
		client rueidis.Client
		err    error
	}
	done := make(chan dialed, 1)
	go func() {
		client, err := rueidis.NewClient(opt)
		done <- dialed{client, err}
	}()
	select {
	case d := <-done:
		if d.err != nil {
			if d.client != nil { // a single client is handed over even when its dial failed
				d.client.Close()
			}
			return nil, fmt.Errorf("connect to redis at %s: %w", Redact(rawURL), d.err)
		}
		return d.client, nil
	case <-ctx.Done():
		go func() {
			if d := <-done; d.client != nil {
				d.client.Close()
			}
		}()
		return nil, fmt.Errorf("connect to redis at %s: %w", Redact(rawURL), context.Cause(ctx))
	}
}

// Options parses a redis://, rediss:// or unix:// URL into client options
// (rueidis's own parsing and dialers: TLS for rediss://, a unix socket for
// unix:///path/redis.sock).
// Client-side caching is off: it needs CLIENT TRACKING, which neither
// Upstash nor the embedded server offers, and we never read hot keys.
func Options(rawURL string) (rueidis.ClientOption, error) {
	opt, err := rueidis.ParseURL(rawURL)
	var notAURL *url.Error
	if errors.As(err, &notAURL) {
		// url.Parse's errors quote the URL, or the piece it choked on:
		// the password, or part of it, when that is what is malformed.
		return rueidis.ClientOption{}, errors.New("parse redis URL: not a valid URL (characters such as # % / ? @ in the password must be percent-encoded)")
	}
	if err != nil {
		return rueidis.ClientOption{}, fmt.Errorf("parse redis URL %s: %w", Redact(rawURL), err)
	}
	opt.DisableCache = true
	// Neither Upstash nor a single server is a cluster; without this,
	// rueidis probes CLUSTER SLOTS and may connect to the address the
	// server reports instead of the one configured (a proxy's, say).
	opt.ForceSingleClient = true
	// One connection: by default rueidis spreads keyed commands over up to
	// four (by GOMAXPROCS), so a function's first event could pay a second
	// TLS handshake, and every instance would hold more than one Upstash
	// connection. .bench/deployed.sh counts the HELLOs of a cold start.
	opt.PipelineMultiplex = -1
	opt.ConnWriteTimeout = 5 * time.Second
	// rueidis sizes each connection for large pipelines (0.5 MiB read and
	// write buffers, a 1024-slot ring). Our commands and replies are small,
	// and a function instance's memory is billed.
	opt.ReadBufferEachConn = 64 << 10
	opt.WriteBufferEachConn = 64 << 10
	opt.RingScaleEachConn = 8
	// Serverless instances are frozen between requests; a short dial
	// timeout makes an unreachable Redis a quick 503, not a 2 s Strava
	// timeout.
	opt.Dialer.Timeout = 1500 * time.Millisecond
	return opt, nil
}

// Redact returns the URL without its password, for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
