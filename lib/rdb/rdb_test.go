package rdb_test

import (
	"context"
	"testing"
	"time"

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

func TestRedactHidesPassword(t *testing.T) {
	got := rdb.Redact("rediss://default:s3cret@eu1-x.upstash.io:6379")
	if got != "rediss://default:xxxxx@eu1-x.upstash.io:6379" {
		t.Fatalf("Redact = %q", got)
	}
}
