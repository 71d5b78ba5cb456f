// Package rdbtest gives tests a Redis: the real server named by
// STRAVAHOOK_TEST_REDIS_URL when it is set (CI runs the suite that way),
// else an embedded miniredis. It never reads REDIS_URL: that is where a
// user points the CLI, and a test suite must not write to it (or fail
// because the server it names has stopped).
// Each call gets its own key prefix, so tests and packages running at once
// on one real server never see each other's keys, and the keys are removed
// when the test ends.
package rdbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/rdb"
)

// Redis is one test's view of a Redis server.
type Redis struct {
	Client rueidis.Client
	URL    string
	// Prefix is unique to this test; pass it to the package under test.
	Prefix string
	// Mini is the embedded server when URLVar is unset, else nil.
	Mini *miniredis.Miniredis
}

// URLVar names the real Redis tests use instead of an embedded one.
const URLVar = "STRAVAHOOK_TEST_REDIS_URL"

// New returns a client and a fresh prefix; cleanup is registered on t.
func New(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{Prefix: "test:" + randomHex(6) + ":"}
	if url := os.Getenv(URLVar); url != "" {
		r.URL = url
	} else {
		r.Mini = miniredis.RunT(t)
		r.URL = "redis://" + r.Mini.Addr()
	}
	r.Client = Dial(t, r.URL)
	t.Cleanup(func() { r.deletePrefixed() })
	return r
}

// Dial connects to url; the client is closed when the test ends.
func Dial(t testing.TB, url string) rueidis.Client {
	t.Helper()
	c, err := rdb.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("redis for tests: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Keys lists this test's keys (without cleaning them).
func (r *Redis) Keys(t testing.TB) []string {
	t.Helper()
	keys, err := r.scan()
	if err != nil {
		t.Fatalf("scan keys: %v", err)
	}
	return keys
}

// KeysHolding lists this test's keys whose name or content contains
// needle: a test can check that a value (a payload, a token) is gone
// without depending on which keys the code keeps.
func (r *Redis) KeysHolding(t testing.TB, needle string) []string {
	t.Helper()
	ctx := context.Background()
	c := r.Client
	var out []string
	for _, key := range r.Keys(t) {
		kind, err := c.Do(ctx, c.B().Type().Key(key).Build()).ToString()
		if err != nil {
			t.Fatalf("TYPE %s: %v", key, err)
		}
		var content []string
		switch kind {
		case "string":
			var v string
			if v, err = c.Do(ctx, c.B().Get().Key(key).Build()).ToString(); rueidis.IsRedisNil(err) {
				err = nil // expired meanwhile
			}
			content = []string{v}
		case "hash":
			var fields map[string]string
			fields, err = c.Do(ctx, c.B().Hgetall().Key(key).Build()).AsStrMap()
			for f, v := range fields {
				content = append(content, f, v)
			}
		case "zset":
			content, err = c.Do(ctx, c.B().Zrange().Key(key).Min("0").Max("-1").Build()).AsStrSlice()
		case "set":
			content, err = c.Do(ctx, c.B().Smembers().Key(key).Build()).AsStrSlice()
		case "list":
			content, err = c.Do(ctx, c.B().Lrange().Key(key).Start(0).Stop(-1).Build()).AsStrSlice()
		default:
			continue // expired meanwhile ("none")
		}
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		if strings.Contains(key, needle) || slices.ContainsFunc(content, func(v string) bool { return strings.Contains(v, needle) }) {
			out = append(out, key)
		}
	}
	return out
}

func (r *Redis) scan() ([]string, error) {
	ctx := context.Background()
	var keys []string
	var cursor uint64
	for {
		entry, err := r.Client.Do(ctx, r.Client.B().Scan().Cursor(cursor).Match(r.Prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return nil, err
		}
		keys = append(keys, entry.Elements...)
		cursor = entry.Cursor
		if cursor == 0 {
			return keys, nil
		}
	}
}

func (r *Redis) deletePrefixed() {
	if r.Mini != nil {
		return // the embedded server dies with the test
	}
	keys, err := r.scan()
	if err != nil || len(keys) == 0 {
		return
	}
	c, err := rdb.Connect(context.Background(), r.URL) // r.Client may be closed already
	if err != nil {
		return
	}
	defer c.Close()
	c.Do(context.Background(), c.B().Del().Key(keys...).Build())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Proxy is a TCP relay in front of a Redis server that a test can cut, to
// see what the code does when Redis goes away mid-test, or stall, to see
// what it does when Redis stops answering on open connections (a SIGSTOPped
// server, a half-open connection). It works the same in front of the real
// server and miniredis.
type Proxy struct {
	ln       net.Listener
	target   string
	db       string // "/14" when the target is URLVar's server with a database
	mu       sync.Mutex
	down     bool
	stalled  bool
	resumed  *sync.Cond // broadcast when stalled ends
	held     int        // reads from clients waiting for the stall to end
	conns    []net.Conn
	accepted int
}

// NewProxy relays a local port to target ("host:port"); it stops with t.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, db: DBPath(t, target)}
	p.resumed = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.Cut() })
	return p
}

// URL is the redis:// URL that reaches the target through the proxy.
func (p *Proxy) URL() string { return "redis://" + p.ln.Addr().String() + p.db }

// Stall keeps every connection open, new ones included, but relays nothing
// either way until Restore (or Cut): requests go out and no answer comes.
func (p *Proxy) Stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Cut closes every relayed connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.stalled = true, false
	p.resumed.Broadcast()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Drop closes every relayed connection, as a restarted server or a
// forgetful NAT would, ends a stall, and goes on accepting new ones.
func (p *Proxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = false
	p.resumed.Broadcast()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Accepted is how many connections the proxy has relayed so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// WaitHeld waits until a stall holds back something a client sent (a
// command is on its way and Redis seems to hang); it fails the test after
// 5 s.
func (p *Proxy) WaitHeld(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		held := p.held
		p.mu.Unlock()
		if held > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no command reached the stalled proxy")
		}
		time.Sleep(time.Millisecond)
	}
}

// Restore accepts connections again, and ends a stall.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down, p.stalled = false, false
	p.resumed.Broadcast()
	p.mu.Unlock()
}

func (p *Proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns = append(p.conns, in, out)
		p.accepted++
		p.mu.Unlock()
		go p.relay(in, out, false)
		go p.relay(out, in, true)
	}
}

// relay copies src to dst, holding what it read while the proxy is stalled;
// fromClient counts what it holds for WaitHeld.
func (p *Proxy) relay(dst, src net.Conn, fromClient bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if fromClient {
				p.held++
			}
			for p.stalled {
				p.resumed.Wait()
			}
			if fromClient {
				p.held--
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// DBPath is URLVar's database ("/14") when target is URLVar's server,
// else "". A proxy's URL must carry it: CI runs the suite on a database of
// its own, and a URL without it would reach database 0.
func DBPath(t testing.TB, target string) string {
	t.Helper()
	env := os.Getenv(URLVar)
	if env == "" || HostPort(t, env) != target {
		return ""
	}
	if u, err := url.Parse(env); err == nil && u.Path != "/" {
		return u.Path
	}
	return ""
}

// HostPort is the address of a redis:// URL, for NewProxy.
func HostPort(t testing.TB, url string) string {
	t.Helper()
	opt, err := rdb.Options(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return opt.InitAddress[0]
}
