package rdb_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

func TestConnectRunsLuaAndSurvivesProxyCut(t *testing.T) {
	r := rdbtest.New(t)
	ctx := context.Background()
	got, err := r.Client.Do(ctx, r.Client.B().Eval().Script("return redis.call('SET', KEYS[1], ARGV[1])").Numkeys(1).Key(r.Prefix+"k").Arg("v").Build()).ToString()
	if err != nil || got != "OK" {
		t.Fatalf("eval = %q, %v", got, err)
	}
	p := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	c, err := rdb.Connect(ctx, p.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Cut()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Get().Key(r.Prefix+"k").Build()).Error(); err == nil {
		t.Fatal("GET through a cut proxy succeeded")
	}
}

func TestConnectUsesOneConnection(t *testing.T) {
	// rueidis's default would be four connections at this GOMAXPROCS, each
	// keyed command on a random one of them.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	r := rdbtest.New(t)
	p := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rdb.Connect(ctx, p.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 32 {
		if err := c.Do(ctx, c.B().Set().Key(fmt.Sprintf("%sk%d", r.Prefix, i)).Value("v").Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.Accepted(); n != 1 {
		t.Fatalf("the client opened %d connections for 32 commands, want 1", n)
	}
}

func TestRedactHidesPassword(t *testing.T) {
	got := rdb.Redact("rediss://default:s3cret@eu1-x.upstash.io:6379")
	if got != "rediss://default:xxxxx@eu1-x.upstash.io:6379" {
		t.Fatalf("Redact = %q", got)
	}
}

// A malformed URL's error never quotes its password, not even a piece of
// it: a password with an unencoded #, % or / is a common way to get one.
func TestMalformedURLErrorHidesPassword(t *testing.T) {
	for _, raw := range []string{
		"rediss://default:qx7#zk9@eu1-x.upstash.io:6379", // # starts a fragment: "zk9@…" is cut off, "qx7" read as a port
		"redis://default:s3cret%zz@127.0.0.1:6379",       // not a percent escape
		"redis://default:s3cret@127.0.0.1:port",
		"redis://default:s3cret@[::1",
		"redis://default:s3cret@127.0.0.1:6379/notadb",
	} {
		_, err := rdb.Options(raw)
		if err == nil {
			t.Errorf("%s: no error", raw)
			continue
		}
		for _, secret := range []string{"qx7", "zk9", "s3cret", "%zz"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error for a malformed URL shows %q: %v", secret, err)
			}
		}
	}
}

func TestConnectRefusesAWrongPassword(t *testing.T) {
	m := miniredis.RunT(t)
	m.RequireAuth("right-password")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := rdb.Connect(ctx, "redis://:wrong-password@"+m.Addr()); err == nil {
		c.Close()
		t.Fatal("Connect with a wrong password succeeded")
	} else if strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("the error shows the password: %v", err)
	}
	c, err := rdb.Connect(ctx, "redis://:right-password@"+m.Addr())
	if err != nil {
		t.Fatalf("Connect with the right password: %v", err)
	}
	c.Close()
}

func TestConnectToAStalledRedisEndsWithItsContext(t *testing.T) {
	r := rdbtest.New(t)
	p := rdbtest.NewProxy(t, rdbtest.HostPort(t, r.URL))
	p.Stall() // the TCP connection opens; HELLO gets no answer
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := rdb.Connect(ctx, p.URL())
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Connect to a stalled Redis = %v, want the context's deadline", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Connect to a stalled Redis did not return after its context ended")
	}
}
