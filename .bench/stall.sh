#!/usr/bin/env bash
# The intake under a stalled Redis: a redis-server of our own on a free
# port is SIGSTOPped (connections stay open, nothing answers) and N
# concurrent event POSTs (default 400) go to `stravahook serve`. Prints the
# slowest answer and how many got each status. The target (issue 9): every
# answer within 1.5 s, a 503 at worst.
#
# The subscription id is not pinned (no STRAVA_SUBSCRIPTION_ID) and no POST
# came before the stall, so each request also waits on the lookup of the
# remembered id: the worst case.
#
#   bash .bench/stall.sh            # 400 POSTs
#   POSTS=1000 bash .bench/stall.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
posts=${POSTS:-400}
work=$(mktemp -d /tmp/stravahook-stall.XXXXXX)
redis_pid="" serve_pid=""
cleanup() {
  [ -n "$redis_pid" ] && { kill -CONT "$redis_pid" 2>/dev/null; kill "$redis_pid" 2>/dev/null; } || true
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

(cd "$repo" && go build -o "$work/stravahook" ./lib/cmd/stravahook)

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

port=$(free_port)
REDIS_URL="redis://127.0.0.1:$redis_port" STRAVA_VERIFY_TOKEN=stall-check STRAVAHOOK_PROMPT_DRAIN=off \
  "$work/stravahook" serve -addr "127.0.0.1:$port" >"$work/serve.out" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/api/activity_update?hub.mode=subscribe&hub.verify_token=stall-check&hub.challenge=x" && break
  sleep 0.1
done

kill -STOP "$redis_pid"
echo "redis-server (pid $redis_pid, port $redis_port) stopped with SIGSTOP; $posts concurrent POSTs to serve"
# One request per entry: options after `next` apply to that request only.
for i in $(seq 1 "$posts"); do
  [ "$i" = 1 ] || echo next
  printf 'url = "http://127.0.0.1:%s/api/activity_update"\noutput = /dev/null\nmax-time = 30\n' "$port"
  printf 'header = "Content-Type: application/json"\nwrite-out = "%%{http_code} %%{time_total}\\n"\n'
  printf 'data = "{\\"aspect_type\\":\\"create\\",\\"event_time\\":1764500000,\\"object_id\\":%d,\\"object_type\\":\\"activity\\",\\"owner_id\\":134815,\\"subscription_id\\":120475}"\n' $((17000000000 + i))
done >"$work/curl.cfg"
curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max "$posts" -K "$work/curl.cfg" >"$work/results.txt" || true
kill -CONT "$redis_pid"

echo "answers by status: $(cut -d' ' -f1 "$work/results.txt" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')"
echo "slowest answer: $(cut -d' ' -f2 "$work/results.txt" | sort -n | tail -1) s;" \
  "median: $(cut -d' ' -f2 "$work/results.txt" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') s"
