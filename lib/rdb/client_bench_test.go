package rdb_test

// Which Redis client: the intake runs one script per event from many
// concurrent requests. These benchmarks run the same enqueue-shaped script
// (SET NX + HSET + ZADD) from 32 goroutines through go-redis (a pool of
// connections, one command per round trip each) and through rueidis (all
// goroutines' commands auto-pipelined over one connection). Run against
// the real server: REDIS_URL=redis://127.0.0.1:6379/15 go test -bench Client ./lib/rdb

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/stravahook/stravahook/lib/rdb"
	"github.com/stravahook/stravahook/lib/rdb/rdbtest"
)

const enqueueShaped = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 60) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1`

const payload = `{"object_type":"activity","object_id":1491968222,"aspect_type":"create","owner_id":28004310,"subscription_id":122449,"event_time":1522986611}`

func benchURL(b *testing.B) (string, string) {
	r := rdbtest.New(b)
	if os.Getenv("REDIS_URL") == "" {
		b.Log("REDIS_URL unset: measuring against miniredis, which says little about a real server")
	}
	return r.URL, r.Prefix
}

func BenchmarkClientEnqueueRueidis(b *testing.B) {
	url, prefix := benchURL(b)
	c, err := rdb.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	script := rueidis.NewLuaScript(enqueueShaped)
	var n atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS(2) = 32 concurrent requests
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := strconv.FormatInt(n.Add(1), 10)
			if err := script.Exec(ctx, c, []string{prefix + "seen:" + id, prefix + "payloads", prefix + "pending"}, []string{id, payload, id}).Error(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkClientEnqueueGoRedis(b *testing.B) {
	url, prefix := benchURL(b)
	opt, err := goredis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	c := goredis.NewClient(opt)
	defer c.Close()
	script := goredis.NewScript(enqueueShaped)
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := strconv.FormatInt(n.Add(1), 10)
			if err := script.Run(ctx, c, []string{prefix + "seen:" + id, prefix + "payloads", prefix + "pending"}, id, payload, id).Err(); err != nil {
				b.Error(fmt.Errorf("go-redis: %w", err))
				return
			}
		}
	})
}
