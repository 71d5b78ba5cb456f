package rdb_test

import (
	"context"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

// Each URL scheme a user may give (redis://, rediss:// as Upstash hands
// out, unix:// for a local socket) reaches a real server. CI starts the
// servers (.ci/redis-extra.sh) and names them in these variables; without
// them the test says what it skipped.

func TestRedisURLReachesARealServer(t *testing.T) {
	url := os.Getenv(rdbtest.URLVar)
	if url == "" {
		t.Skipf("%s is unset: no real Redis to reach over redis://", rdbtest.URLVar)
	}
	c, err := rdb.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
}

func TestUnixURLReachesARealServer(t *testing.T) {
	url := os.Getenv("STRAVAHOOK_TEST_REDIS_UNIX_URL")
	if url == "" {
		t.Skip("STRAVAHOOK_TEST_REDIS_UNIX_URL is unset: no Redis on a unix socket (bash .ci/redis-extra.sh starts one)")
	}
	if !strings.HasPrefix(url, "unix://") {
		t.Fatalf("STRAVAHOOK_TEST_REDIS_UNIX_URL = %q, want a unix:// URL", url)
	}
	c, err := rdb.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
}

func TestRedissURLReachesARealTLSServer(t *testing.T) {
	url, caFile := os.Getenv("STRAVAHOOK_TEST_REDISS_URL"), os.Getenv("STRAVAHOOK_TEST_REDIS_CA")
	if url == "" || caFile == "" {
		t.Skip("STRAVAHOOK_TEST_REDISS_URL or STRAVAHOOK_TEST_REDIS_CA is unset: no TLS Redis (bash .ci/redis-extra.sh starts one)")
	}
	if !strings.HasPrefix(url, "rediss://") {
		t.Fatalf("STRAVAHOOK_TEST_REDISS_URL = %q, want a rediss:// URL", url)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	ctx := context.Background()
	// The certificate is really checked: without its CA, the handshake
	// fails and Connect says so.
	if c, err := rdb.Connect(ctx, url); err == nil {
		c.Close()
		t.Fatal("Connect to a TLS server whose CA is not trusted succeeded")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Connect without the CA: %v; want a certificate error", err)
	}
	c, err := rdb.ConnectTrusting(ctx, url, roots)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
}

// roundTrip writes, reads and deletes a key of its own, and closes c.
func roundTrip(t *testing.T, c rueidis.Client) {
	t.Helper()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := "test:" + t.Name() + ":" + time.Now().Format(time.RFC3339Nano)
	if err := c.Do(ctx, c.B().Set().Key(key).Value("v").Ex(time.Minute).Build()).Error(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := c.Do(ctx, c.B().Get().Key(key).Build()).ToString()
	if err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
	if err := c.Do(ctx, c.B().Del().Key(key).Build()).Error(); err != nil {
		t.Fatalf("DEL: %v", err)
	}
}
