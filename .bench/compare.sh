#!/usr/bin/env bash
# Side-by-side speed comparison of the Go intake (stravahook serve) and the
# seed's node:http + ioredis intake (.bench/node-seed), one after the other,
# on loopback, against a dedicated Redis database. See .bench/README.md.
#
# A shared VM is noisy (the light-load median of one server moves by +-30 %
# from one 10 s run to the next), so the measurement is repeated in ROUNDS
# rounds. Each round measures every server once: fresh start, smoke test,
# warm-up + saturated throughput run, warm-up + light-load run, peak RSS and
# CPU counters, stop. The server order alternates between rounds (go node,
# node go, go node, ...) so slow drift of the machine favours neither. The
# table reports, per server, the median over the rounds (the maximum for
# peak RSS) and a per-round table that shows the spread. Cold start is
# measured once per server (median of COLD_N starts), after the rounds.
#
#   bash .bench/compare.sh            # from the repository root
#   DURATION=30s COLD_N=20 bash .bench/compare.sh
#   ROUNDS=5 bash .bench/compare.sh
#   SERVERS=node bash .bench/compare.sh
#
# Options (environment):
#   SERVERS        which servers, in the order of odd rounds;
#                  even rounds use the reverse order  (default "go node")
#   ROUNDS         measurement rounds (>= 1); the table uses the median
#                  over rounds, the maximum for peak RSS  (default 3)
#   DURATION       each measured wrk run              (default 5s)
#   WARMUP         warm-up before each measurement    (default 2s)
#   RPS_TARGET     Go/Node throughput at least        (default 0.8)
#   P50_TARGET     Go/Node light-load median at most  (default 1.5)
#   THREADS/CONNS  saturated run: wrk -t/-c           (default 2/32)
#   LAT_THREADS/LAT_CONNS  light-load run: wrk -t/-c  (default 1/2)
#   COLD_N         cold starts per server (median)    (default 10)
#   GO_PORT/NODE_PORT                                 (default 18081/18082)
#   BENCH_REDIS_URL  Redis database this script owns and FLUSHDBs
#                  (default redis://127.0.0.1:6379/15; must be loopback).
#                  REDIS_URL is deliberately NOT read: it usually points at a
#                  database someone else uses, and this script flushes its own.
#   GO_PREFIX      STRAVAHOOK_REDIS_PREFIX for the Go server (default stravahook-bench:)
#   NODE_QUEUE_KEY list the Node server LPUSHes to   (default stravahook-seed-bench:events)
#   SKIP_INSTALL=1 do not apt-get/npm ci (tools must already be there)
#   KEEP_GOING=1   if a server fails its smoke test, still measure it
#
# Talks only to 127.0.0.1, except apt-get/npm/go fetching packages when
# something is missing. Stops everything it started on exit (trap).

set -Eeuo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH=.bench
RES=$BENCH/results
mkdir -p "$RES"

SERVERS=${SERVERS:-"go node"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
RPS_TARGET=${RPS_TARGET:-0.8}
P50_TARGET=${P50_TARGET:-1.5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
LAT_THREADS=${LAT_THREADS:-1}
LAT_CONNS=${LAT_CONNS:-2}
COLD_N=${COLD_N:-10}
GO_PORT=${GO_PORT:-18081}
NODE_PORT=${NODE_PORT:-18082}
BENCH_REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/15}
GO_PREFIX=${GO_PREFIX:-stravahook-bench:}
NODE_QUEUE_KEY=${NODE_QUEUE_KEY:-stravahook-seed-bench:events}
PRIVATE_REDIS_PORT=${PRIVATE_REDIS_PORT:-16379}
READY_TIMEOUT=${READY_TIMEOUT:-30}
VERIFY_TOKEN=bench-verify-token
CHALLENGE=bench-challenge-42

log() { printf '[compare] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
SERVER_PID=
REDIS_PID=
BG_PID= # wrk or the cold-start helper, run in the background so a signal is handled at once
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n $BG_PID ]] && stop_pid "$BG_PID"
	[[ -n $SERVER_PID ]] && stop_pid "$SERVER_PID"
	if [[ -n $REDIS_PID ]]; then
		stop_pid "$REDIS_PID"
	elif [[ -n ${REDIS_OK:-} ]]; then
		rcli FLUSHDB >/dev/null 2>&1 || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_pid PID: SIGTERM, up to 5 s for it to go, then SIGKILL.
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- helpers
seconds() { # 10s | 2m | 10 -> seconds
	case $1 in
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}

port_busy() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

rcli() { timeout 10 redis-cli --no-auth-warning -u "$BENCH_REDIS_URL" "$@"; }

# field FILE KEY: a value from the BENCH/COLDSTART line a helper printed.
field() { grep -Eo "(^| )$2=[0-9.]+" "$1" | tail -1 | cut -d= -f2 || true; }

# ratio A B: A/B with 2 decimals, or n/a.
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# meets RATIO OP TARGET: yes/no/n/a
meets() { awk -v r="$1" -v op="$2" -v t="$3" 'BEGIN { if (r == "n/a") { print "n/a"; exit }
	ok = (op == ">=") ? (r + 0 >= t + 0) : (r + 0 <= t + 0); print ok ? "yes" : "no" }'; }

cpu_ticks() { # utime+stime of a process, in clock ticks
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

busy_ticks() { # CPU ticks the whole machine has spent busy (all processes, all CPUs)
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

redis_cpu() { # seconds of CPU the Redis server has used
	rcli INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.3f", s }'
}

ensure_tool() { # ensure_tool COMMAND DEBIAN_PACKAGE
	command -v "$1" >/dev/null && return 0
	[[ -n ${SKIP_INSTALL:-} ]] && die "$1 is missing (SKIP_INSTALL is set)"
	log "installing $2 (for $1)"
	export DEBIAN_FRONTEND=noninteractive
	if ! timeout 600 apt-get install -y -qq "$2" >"$RES/apt.log" 2>&1; then
		timeout 600 apt-get update -qq >>"$RES/apt.log" 2>&1 || true
		timeout 600 apt-get install -y -qq "$2" >>"$RES/apt.log" 2>&1 || die "apt-get install $2 failed; see $RES/apt.log"
	fi
	command -v "$1" >/dev/null || die "$1 still missing after installing $2"
}

# ---------------------------------------------------------------- options
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number >= 1: $ROUNDS"
for s in $SERVERS; do
	case $s in
	go | node) ;;
	*) die "unknown server '$s' in SERVERS (go, node)" ;;
	esac
done

# ---------------------------------------------------------------- tools
ensure_tool wrk wrk
ensure_tool curl curl
ensure_tool redis-cli redis-tools
command -v go >/dev/null || die "go is not installed"
command -v node >/dev/null || die "node is not installed"
CPUS=$(nproc)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
DUR_S=$(seconds "$DURATION")

# ---------------------------------------------------------------- redis
case $BENCH_REDIS_URL in
redis://127.0.0.1[:/]* | redis://localhost[:/]* | redis://*@127.0.0.1[:/]* | redis://*@localhost[:/]*) ;;
*) die "BENCH_REDIS_URL must be a redis:// URL on 127.0.0.1 or localhost (it gets FLUSHDB): $BENCH_REDIS_URL" ;;
esac
if ! rcli PING 2>/dev/null | grep -q PONG; then
	[[ $BENCH_REDIS_URL == redis://127.0.0.1:6379/15 ]] || die "no Redis answers at BENCH_REDIS_URL"
	log "no Redis on 127.0.0.1:6379; starting a private one on 127.0.0.1:$PRIVATE_REDIS_PORT"
	ensure_tool redis-server redis-server
	port_busy "$PRIVATE_REDIS_PORT" && die "port $PRIVATE_REDIS_PORT is taken"
	redis-server --bind 127.0.0.1 --port "$PRIVATE_REDIS_PORT" --save '' --appendonly no \
		>"$RES/redis.log" 2>&1 &
	REDIS_PID=$!
	BENCH_REDIS_URL=redis://127.0.0.1:$PRIVATE_REDIS_PORT/15
	for ((i = 0; i < 100; i++)); do
		rcli PING 2>/dev/null | grep -q PONG && break
		sleep 0.1
	done
	rcli PING 2>/dev/null | grep -q PONG || die "private redis-server did not start; see $RES/redis.log"
fi
REDIS_OK=1
REDIS_VERSION=$(rcli INFO server | tr -d '\r' | awk -F: '/^redis_version:/ { print $2 }')
rcli FLUSHDB >/dev/null

# Environment both servers (and the Go CLI) see. Variables that would change
# what the Go intake does are removed so both servers do the same work.
export REDIS_URL=$BENCH_REDIS_URL
export STRAVA_VERIFY_TOKEN=$VERIFY_TOKEN
export STRAVAHOOK_REDIS_PREFIX=$GO_PREFIX
export QUEUE_KEY=$NODE_QUEUE_KEY
unset KV_URL STRAVA_SUBSCRIPTION_ID STRAVA_QUEUE_UPDATES

# ---------------------------------------------------------------- builds
log "building the cold-start helper"
timeout 300 go build -o "$RES/coldstart" "$BENCH/coldstart/main.go" || die "could not build .bench/coldstart"

GO_SKIP=
want() { [[ " $SERVERS " == *" $1 "* ]]; }
if want go; then
	if [[ ! -d lib/cmd/stravahook ]]; then
		GO_SKIP="lib/cmd/stravahook does not exist yet"
	elif ! timeout 600 go build -o "$RES/stravahook" ./lib/cmd/stravahook >"$RES/go-build.log" 2>&1; then
		GO_SKIP="go build ./lib/cmd/stravahook failed (see $RES/go-build.log)"
		sed -n 1,20p "$RES/go-build.log" >&2
	fi
	[[ -n $GO_SKIP ]] && log "SKIPPING Go: $GO_SKIP"
fi
NODE_SKIP=
if want node; then
	if [[ -z ${SKIP_INSTALL:-} ]]; then
		log "npm ci in $BENCH/node-seed"
		(cd "$BENCH/node-seed" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
			NODE_SKIP="npm ci failed"
	fi
	[[ -d $BENCH/node-seed/node_modules/ioredis ]] || NODE_SKIP=${NODE_SKIP:-"node_modules missing (run npm ci)"}
	[[ -n $NODE_SKIP ]] && log "SKIPPING Node: $NODE_SKIP"
fi
IOREDIS_VERSION=$(node -p "require('./$BENCH/node-seed/node_modules/ioredis/package.json').version" 2>/dev/null || echo "?")

# ---------------------------------------------------------------- servers
declare -A R # results: R[server.metric]

server_port() { [[ $1 == go ]] && echo "$GO_PORT" || echo "$NODE_PORT"; }
server_cmd() { # prints nothing; sets CMD array
	if [[ $1 == go ]]; then
		CMD=("$RES/stravahook" serve -addr "127.0.0.1:$GO_PORT")
	else
		CMD=(env "PORT=$NODE_PORT" HOST=127.0.0.1 node "$BENCH/node-seed/server.js")
	fi
}
validation_url() {
	echo "http://127.0.0.1:$(server_port "$1")/api/activity_update?hub.mode=subscribe&hub.verify_token=$VERIFY_TOKEN&hub.challenge=$CHALLENGE"
}
event_url() { echo "http://127.0.0.1:$(server_port "$1")/api/activity_update"; }

start_server() {
	local s=$1 port i code
	port=$(server_port "$s")
	port_busy "$port" && die "port $port is already in use; set ${s^^}_PORT"
	server_cmd "$s"
	# `env` execs the program, so $! is the server's own PID (for /proc).
	"${CMD[@]}" >>"$RES/server-$s.log" 2>&1 &
	SERVER_PID=$!
	for ((i = 0; i < READY_TIMEOUT * 20; i++)); do
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			log "$s server exited at start; see $RES/server-$s.log:"
			tail -5 "$RES/server-$s.log" >&2
			SERVER_PID=
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$(validation_url "$s")" || true)
		[[ $code == 200 ]] && return 0
		sleep 0.05
	done
	log "$s server gave no 200 on the validation GET within ${READY_TIMEOUT}s; see $RES/server-$s.log"
	stop_server
	return 1
}

stop_server() {
	[[ -n $SERVER_PID ]] && stop_pid "$SERVER_PID"
	SERVER_PID=
}

# smoke SERVER: the answers the benchmark relies on. Returns 1 on a mismatch.
smoke() {
	local s=$1 body ctype code ok=0
	body=$(curl -s --max-time 2 -D "$RES/smoke-headers-$s.txt" "$(validation_url "$s")")
	ctype=$(tr -d '\r' <"$RES/smoke-headers-$s.txt" | awk -F': *' 'tolower($1) == "content-type" { print $2 }')
	if [[ $body != "{\"hub.challenge\":\"$CHALLENGE\"}" || $ctype != application/json* ]]; then
		log "$s: validation GET answered [$ctype] $body"
		ok=1
	fi
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Content-Type: application/json' \
		--data-binary '{"aspect_type":"create","event_time":1522986611,"object_id":1491968222,"object_type":"activity","owner_id":28004310,"subscription_id":122449,"updates":{}}' \
		"$(event_url "$s")")
	if [[ $code != 200 ]]; then
		log "$s: POST of create.json answered $code"
		ok=1
	fi
	return $ok
}

# run_bg CMD...: run a long command in the background and wait for it, so
# that INT/TERM reach the trap at once instead of after the command ends.
run_bg() {
	"$@" &
	BG_PID=$!
	local rc=0
	wait "$BG_PID" || rc=$?
	BG_PID=
	return "$rc"
}

# children_cpu FILE: writes the user+sys seconds of all waited-for children
# so far (bash `times`, which must run in this shell, not in a $(...) subshell).
children_cpu() {
	times >"$1.times"
	tail -1 "$1.times" | awk '{ for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } printf "%.3f\n", s }' >"$1"
	rm -f "$1.times"
}

# wrk_run SERVER LABEL wrk-args...: runs wrk with event.lua, records wrk's own
# CPU seconds in $RES/LABEL.cpu and its output in $RES/LABEL.txt.
wrk_run() {
	local s=$1 label=$2
	shift 2
	local d url
	d=$(seconds "$(printf '%s\n' "$@" | sed -n 's/^-d//p' | tail -1)")
	url=$(event_url "$s")
	children_cpu "$RES/$label.cpu0"
	run_bg timeout $((d + 60)) wrk "$@" -s "$BENCH/wrk/event.lua" "$url" >"$RES/$label.txt" 2>&1 ||
		die "wrk failed ($label); see $RES/$label.txt"
	children_cpu "$RES/$label.cpu1"
	awk 'NR == 1 { a = $1 } NR == 2 { printf "%.2f\n", $1 - a }' "$RES/$label.cpu0" "$RES/$label.cpu1" >"$RES/$label.cpu"
	rm -f "$RES/$label.cpu0" "$RES/$label.cpu1"
	grep -q '^BENCH ' "$RES/$label.txt" || die "wrk printed no BENCH line ($label); see $RES/$label.txt"
}

queued_count() { # queued_count SERVER ROUND: how many events the server has queued in Redis
	local s=$1 r=$2
	if [[ $s == node ]]; then
		rcli LLEN "$NODE_QUEUE_KEY"
	else
		local out
		if out=$(timeout 15 "$RES/stravahook" queue status -json 2>&1); then
			printf '%s\n' "$out" >"$RES/go-r$r-queue-status.json"
			log "go r$r: queue status -json: $out"
			printf '%s\n' "$out" | grep -Eo '"ready": *[0-9]+' | grep -Eo '[0-9]+$' || true
		else
			log "go r$r: 'stravahook queue status -json' did not work (ignored): $(printf '%s' "$out" | head -3)"
		fi
	fi
}

# measure_round SERVER ROUND: one round of one server, from a fresh start to
# its stop. Results go to R[SERVER.rROUND.metric], raw wrk output to
# $RES/SERVER-rROUND-*.txt. If the server does not start, or fails its smoke
# test (without KEEP_GOING), it is given up on: R[SERVER.dead]=ROUND, no
# further rounds, no cold start, n/a in the summary.
measure_round() {
	local s=$1 r=$2 t0 t1 r0 r1 b0 b1 hwm wcpu hz
	local k=$1.r$2 p=$1-r$2 # key prefix in R, file prefix in $RES
	hz=$(getconf CLK_TCK)
	log "=== round $r of $ROUNDS: $s ==="
	# Emptied every round: the Go server logs one line per request (>100 MB a
	# run). What remains is the last round measured (plus the cold starts).
	: >"$RES/server-$s.log"
	rcli FLUSHDB >/dev/null
	if ! start_server "$s"; then
		R[$s.smoke]=FAILED
		R[$s.dead]=$r
		return 0
	fi
	if ! smoke "$s"; then
		R[$s.smoke]=FAILED
		if [[ -z ${KEEP_GOING:-} ]]; then
			log "$s: smoke test failed in round $r; not measuring it (KEEP_GOING=1 to measure anyway)"
			R[$s.dead]=$r
			stop_server
			return 0
		fi
	fi

	# (a) saturated throughput, (c) peak RSS, CPU split, queued vs sent
	log "$s r$r: warm-up ${WARMUP}, then throughput: wrk -t$THREADS -c$CONNS -d$DURATION"
	wrk_run "$s" "$p-warmup" "-t$THREADS" "-c$CONNS" "-d$WARMUP"
	rcli FLUSHDB >/dev/null
	t0=$(cpu_ticks "$SERVER_PID")
	r0=$(redis_cpu)
	b0=$(busy_ticks)
	wrk_run "$s" "$p-throughput" "-t$THREADS" "-c$CONNS" "-d$DURATION"
	b1=$(busy_ticks)
	t1=$(cpu_ticks "$SERVER_PID")
	r1=$(redis_cpu)
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
	local f=$RES/$p-throughput.txt
	R[$k.rps]=$(field "$f" rps)
	R[$k.requests]=$(field "$f" requests)
	R[$k.non2xx]=$(field "$f" status_errors)
	R[$k.sockerr]=$(field "$f" socket_errors)
	R[$k.rss_mib]=$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')
	R[$k.server_cpu_s]=$(awk -v t=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')
	R[$k.machine_cpu_s]=$(awk -v t=$((b1 - b0)) -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')
	R[$k.redis_cpu_s]=$(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.2f", b - a }')
	wcpu=$(cat "$RES/$p-throughput.cpu")
	R[$k.wrk_cpu_s]=$wcpu
	# Whatever else ran meanwhile (other tests, other clients of this Redis):
	# busy time of the machine minus wrk, the server and Redis.
	R[$k.other_cpu_s]=$(awk -v m="${R[$k.machine_cpu_s]}" -v w="$wcpu" -v sv="${R[$k.server_cpu_s]}" -v r="${R[$k.redis_cpu_s]}" \
		'BEGIN { o = m - w - sv - r; if (o < 0) o = 0; printf "%.2f", o }')
	R[$k.cpu_us_per_req]=$(awk -v c="${R[$k.server_cpu_s]}" -v n="${R[$k.requests]}" 'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / n; else print "n/a" }')
	R[$k.queued]=$(queued_count "$s" "$r")
	log "$s r$r: $(grep '^BENCH' "$f")"
	log "$s r$r: requests answered (wrk) = ${R[$k.requests]}, non-2xx = ${R[$k.non2xx]}, socket errors = ${R[$k.sockerr]}, queued in Redis = ${R[$k.queued]:-unknown}"
	log "$s r$r: CPU over ${DUR_S}s on $CPUS cores: wrk ${wcpu}s, server ${R[$k.server_cpu_s]}s, redis ${R[$k.redis_cpu_s]}s, anything else ${R[$k.other_cpu_s]}s; peak RSS ${R[$k.rss_mib]} MiB"
	if awk -v o="${R[$k.other_cpu_s]}" -v cap=$((CPUS * DUR_S)) 'BEGIN { exit !(o > 0.05 * cap) }'; then
		log "$s r$r: WARNING: other processes used ${R[$k.other_cpu_s]}s of CPU during the run: the machine was not quiet, numbers are noisy"
		R[$k.noisy]=1
	fi
	local queued=${R[$k.queued]} answered=$((${R[$k.requests]:-0} - ${R[$k.non2xx]:-0}))
	if [[ -n $queued ]] && ((queued < answered)); then
		log "$s r$r: WARNING: $queued events queued but $answered answered 200: events lost"
		R[$k.lost]=1
	fi

	# (b) median latency at light load
	rcli FLUSHDB >/dev/null
	log "$s r$r: warm-up, then latency: wrk -t$LAT_THREADS -c$LAT_CONNS -d$DURATION --latency"
	wrk_run "$s" "$p-latency-warmup" "-t$LAT_THREADS" "-c$LAT_CONNS" "-d$WARMUP"
	wrk_run "$s" "$p-latency" "-t$LAT_THREADS" "-c$LAT_CONNS" "-d$DURATION" --latency
	f=$RES/$p-latency.txt
	R[$k.p50_ms]=$(awk -v u="$(field "$f" p50_us)" 'BEGIN { printf "%.3f", u / 1000 }')
	R[$k.p99_ms]=$(awk -v u="$(field "$f" p99_us)" 'BEGIN { printf "%.3f", u / 1000 }')
	R[$k.lat_rps]=$(field "$f" rps)
	R[$k.lat_non2xx]=$(field "$f" status_errors)
	log "$s r$r: $(grep '^BENCH' "$f")"
	stop_server
	R[$k.done]=1
}

# cold_start SERVER: (d) exec -> first 200 on the validation GET, COLD_N times.
cold_start() {
	local s=$1
	rcli FLUSHDB >/dev/null
	log "$s: cold start x$COLD_N"
	server_cmd "$s"
	run_bg timeout $((COLD_N * (READY_TIMEOUT + 10) + 30)) "$RES/coldstart" -n "$COLD_N" -timeout "${READY_TIMEOUT}s" \
		-url "$(validation_url "$s")" -- "${CMD[@]}" >"$RES/$s-coldstart.txt" 2>>"$RES/server-$s.log" ||
		die "cold-start helper failed for $s; see $RES/$s-coldstart.txt and $RES/server-$s.log"
	R[$s.cold_ms]=$(field "$RES/$s-coldstart.txt" median_ms)
	log "$s: $(grep '^COLDSTART' "$RES/$s-coldstart.txt")"
}

# active SERVER: selected, built, and not given up on.
active() {
	want "$1" || return 1
	[[ -z ${R[$1.dead]:-} ]] || return 1
	case $1 in
	go) [[ -z $GO_SKIP ]] ;;
	node) [[ -z $NODE_SKIP ]] ;;
	esac
}

# ---------------------------------------------------------------- rounds
# Raw outputs of earlier runs (also from a run with more rounds, or from the
# single-round layout) would be mistaken for this run's.
for s in $SERVERS; do
	rm -f "$RES/$s"-r[0-9]*-* "$RES/$s"-{warmup,throughput,latency-warmup,latency}.{txt,cpu} "$RES/$s-coldstart.txt"
done
rm -f "$RES/go-queue-status.json"

# Odd rounds take SERVERS in the given order, even rounds in reverse, so slow
# drift of the machine does not favour whichever server always goes first.
read -ra ORDER_ODD <<<"$SERVERS"
ORDER_EVEN=()
for ((i = ${#ORDER_ODD[@]} - 1; i >= 0; i--)); do
	ORDER_EVEN+=("${ORDER_ODD[i]}")
done
join_order() { local IFS=' '; local o="$*"; echo "${o// / → }"; }
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then
		order=("${ORDER_ODD[@]}")
	else
		order=("${ORDER_EVEN[@]}")
	fi
	R[order.r$r]=$(join_order "${order[@]}")
	log "##### round $r of $ROUNDS: ${R[order.r$r]}"
	for s in "${order[@]}"; do
		if active "$s"; then measure_round "$s" "$r"; fi
	done
done

# Cold start once per server, after the rounds.
for s in "${ORDER_ODD[@]}"; do
	if active "$s"; then
		cold_start "$s"
		R[$s.measured]=1
	fi
done
rcli FLUSHDB >/dev/null

# ---------------------------------------------------------------- over rounds
# agg HOW FORMAT SERVER METRIC: HOW (med, max or sum) of SERVER's per-round
# values of METRIC over the rounds it completed, printed with FORMAT; n/a if
# it completed none or one of them lacks the value. The median of an even
# number of values is the mean of the middle two.
agg() {
	local how=$1 fmt=$2 s=$3 m=$4 r v
	local vals=()
	for ((r = 1; r <= ROUNDS; r++)); do
		[[ -n ${R[$s.r$r.done]:-} ]] || continue
		v=${R[$s.r$r.$m]:-}
		if [[ -z $v || $v == n/a ]]; then
			echo n/a
			return 0
		fi
		vals+=("$v")
	done
	if ((${#vals[@]} == 0)); then
		echo n/a
		return 0
	fi
	printf '%s\n' "${vals[@]}" | sort -g | awk -v how="$how" -v fmt="$fmt" '{ v[NR] = $1; s += $1 } END {
		if (how == "sum") x = s
		else if (how == "max") x = v[NR]
		else x = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf fmt "\n", x }'
}

for s in go node; do
	[[ -n ${R[$s.measured]:-} ]] || continue
	# targets: median over rounds, the maximum for peak RSS
	R[$s.rps]=$(agg med %.1f "$s" rps)
	R[$s.p50_ms]=$(agg med %.3f "$s" p50_ms)
	R[$s.rss_mib]=$(agg max %.1f "$s" rss_mib)
	# details: medians of per-round values; counts are summed over rounds;
	# "anything else" is the worst round, since it only says whether to trust a run
	for m in p99_ms:%.3f lat_rps:%.1f cpu_us_per_req:%.1f server_cpu_s:%.2f wrk_cpu_s:%.2f redis_cpu_s:%.2f; do
		R[$s.${m%%:*}]=$(agg med "${m#*:}" "$s" "${m%%:*}")
	done
	R[$s.other_cpu_s]=$(agg max %.2f "$s" other_cpu_s)
	for m in requests queued non2xx lat_non2xx sockerr; do
		R[$s.$m]=$(agg sum %.0f "$s" "$m")
	done
done

# ---------------------------------------------------------------- table
val() { # val SERVER METRIC
	if [[ -n ${R[$1.measured]:-} ]]; then
		echo "${R[$1.$2]:-n/a}"
	else
		echo "n/a"
	fi
}
rval() { # rval SERVER ROUND METRIC: one round's value
	if [[ -n ${R[$1.r$2.done]:-} ]]; then
		echo "${R[$1.r$2.$3]:-n/a}"
	else
		echo "n/a"
	fi
}
vratio() { # vratio A B: ratio of two values that may be n/a
	local a=$1 b=$2
	[[ $a == n/a ]] && a=
	[[ $b == n/a ]] && b=
	ratio "$a" "$b"
}
row() { # row LABEL METRIC OP TARGET: a target row (6 columns)
	local g n r
	g=$(val go "$2")
	n=$(val node "$2")
	r=$(vratio "$g" "$n")
	printf '| %s | %s | %s | %s | %s %s× | %s |\n' "$1" "$g" "$n" "$r" "$3" "$4" "$(meets "$r" "$3" "$4")"
}
detail() { # detail LABEL METRIC [noratio]: a detail row (4 columns)
	local g n r=–
	g=$(val go "$2")
	n=$(val node "$2")
	[[ -z ${3:-} ]] && r=$(vratio "$g" "$n")
	printf '| %s | %s | %s | %s |\n' "$1" "$g" "$n" "$r"
}
round_row() { # round_row ROUND: one row of the per-round table
	local r=$1 gt nt gl nl
	gt=$(rval go "$r" rps)
	nt=$(rval node "$r" rps)
	gl=$(rval go "$r" p50_ms)
	nl=$(rval node "$r" p50_ms)
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' "$r" "${R[order.r$r]}" \
		"$gt" "$nt" "$(vratio "$gt" "$nt")" "$gl" "$nl" "$(vratio "$gl" "$nl")" \
		"$(rval go "$r" other_cpu_s)" "$(rval node "$r" other_cpu_s)"
}
met_rounds() { # met_rounds METRIC OP TARGET: "k of N" over the rounds that measured both servers
	local m=$1 op=$2 t=$3 r ra k=0 n=0
	for ((r = 1; r <= ROUNDS; r++)); do
		ra=$(vratio "$(rval go "$r" "$m")" "$(rval node "$r" "$m")")
		[[ $ra == n/a ]] && continue
		n=$((n + 1))
		if [[ $(meets "$ra" "$op" "$t") == yes ]]; then k=$((k + 1)); fi
	done
	if ((n > 0)); then
		echo "$k of $n"
	else
		echo "n/a (no round measured both servers)"
	fi
}
rounds_with() { # rounds_with SERVER FLAG: comma-separated rounds whose FLAG is set
	local r out=
	for ((r = 1; r <= ROUNDS; r++)); do
		[[ -n ${R[$1.r$r.$2]:-} ]] && out+="${out:+, }$r"
	done
	echo "$out"
}
if ((ROUNDS == 1)); then
	ROUNDS_TXT="1 round"
	OF_ROUNDS="1 round"
	MAX_ROUNDS="1 round"
	HOW_TXT="All values are from that one round (ROUNDS=1); cold start is measured once per server, after it."
else
	ROUNDS_TXT="$ROUNDS rounds, server order alternating between rounds ($(join_order "${ORDER_ODD[@]}") in odd rounds, $(join_order "${ORDER_EVEN[@]}") in even ones)"
	OF_ROUNDS="median of $ROUNDS rounds"
	MAX_ROUNDS="max of $ROUNDS rounds"
	HOW_TXT="Throughput and median latency are the medians of the $ROUNDS per-round values (with an even number of rounds, the mean of the middle two); peak RSS is the maximum over the rounds;
cold start is measured once per server, after the rounds. The ratio and \"met\" columns compare those values."
fi
{
	echo "# Secondary check: stravahook serve vs the seed's Node intake"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $CPUS CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
	echo "$(go version | cut -d' ' -f3), node $(node -v) + ioredis $IOREDIS_VERSION, redis $REDIS_VERSION, $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)."
	echo "Loopback, one server at a time; wrk, the server and Redis share the same $CPUS CPUs. Load average at start: $LOAD_AT_START."
	echo "$ROUNDS_TXT; each round starts every server fresh and runs warm-up + throughput, then warm-up + light-load latency."
	echo
	echo "$HOW_TXT"
	echo
	echo "| metric | Go | Node | Go/Node ratio | target | met |"
	echo "|---|---|---|---|---|---|"
	row "throughput, req/s (wrk -t$THREADS -c$CONNS -d$DURATION; $OF_ROUNDS)" rps ">=" "$RPS_TARGET"
	row "median latency, ms (wrk -t$LAT_THREADS -c$LAT_CONNS -d$DURATION; $OF_ROUNDS)" p50_ms "<=" "$P50_TARGET"
	echo
	echo "Per round (the spread behind the medians):"
	echo
	echo "| round | order | Go req/s | Node req/s | Go/Node | Go p50, ms | Node p50, ms | Go/Node | CPU of anything else during the throughput run, s (Go / Node) |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for ((r = 1; r <= ROUNDS; r++)); do
		round_row "$r"
	done
	echo
	echo "- Rounds in which Go met the throughput target (Go/Node >= ${RPS_TARGET}×): $(met_rounds rps ">=" "$RPS_TARGET")."
	echo "- Rounds in which Go met the median-latency target (Go/Node <= ${P50_TARGET}×): $(met_rounds p50_ms "<=" "$P50_TARGET")."
	echo
	echo "Details (not targets). Per-round values are combined as each row says: median over rounds, sum over rounds, or max (the worst round):"
	echo
	echo "| detail | Go | Node | Go/Node ratio |"
	echo "|---|---|---|---|"
	detail "peak RSS during the throughput run, MiB (VmHWM; max)" rss_mib
	detail "cold start to first 200, ms (median of $COLD_N)" cold_ms
	detail "p99 latency at light load, ms (median)" p99_ms
	detail "req/s at light load (median)" lat_rps
	detail "server CPU per request at saturation, µs (median)" cpu_us_per_req
	detail "server CPU during a throughput run, s (median; of $((CPUS * DUR_S)) available per run)" server_cpu_s
	detail "wrk CPU during a throughput run, s (median)" wrk_cpu_s
	detail "Redis CPU during a throughput run, s (median)" redis_cpu_s
	detail "CPU of anything else during a throughput run, s (max; should be ~0)" other_cpu_s noratio
	detail "requests answered in the throughput runs (wrk; sum)" requests
	detail "events queued in Redis after them (sum)" queued
	detail "non-2xx answers (throughput runs; sum)" non2xx noratio
	detail "non-2xx answers (light-load runs; sum)" lat_non2xx noratio
	detail "socket errors (throughput runs; sum)" sockerr noratio
	echo
	[[ -n $GO_SKIP ]] && echo "Go not measured: $GO_SKIP." && echo
	[[ -n $NODE_SKIP ]] && echo "Node not measured: $NODE_SKIP." && echo
	want go || { echo "Go not selected (SERVERS=\"$SERVERS\")." && echo; }
	want node || { echo "Node not selected (SERVERS=\"$SERVERS\")." && echo; }
	for s in go node; do
		noisy=$(rounds_with "$s" noisy)
		if [[ -n $noisy ]]; then
			echo "WARNING: other processes used the CPU during the $s throughput run of round(s) $noisy (see 'anything else' above); those rounds are noisy; rerun on a quiet machine." && echo
		fi
		lost=$(rounds_with "$s" lost)
		if [[ -n $lost ]]; then
			echo "WARNING: $s queued fewer events than it answered with 200 in round(s) $lost: events lost." && echo
		fi
		if [[ ${R[$s.smoke]:-} == FAILED ]]; then
			if [[ -n ${R[$s.dead]:-} ]]; then
				echo "$s failed to start or failed the smoke test (validation GET / one POST) in round ${R[$s.dead]}, so it was given up on (earlier rounds are in the per-round table); see .bench/results/server-$s.log." && echo
			else
				echo "$s failed the smoke test (validation GET / one POST) and was measured anyway (KEEP_GOING=1); see .bench/results/server-$s.log." && echo
			fi
		fi
	done
	echo "Queued can exceed answered by up to the connection count per round: wrk does not count requests still in flight when it stops."
	echo "Raw output: .bench/results/SERVER-rROUND-{throughput,latency}.txt (and their warm-ups), wrk CPU in *.cpu, cold starts in SERVER-coldstart.txt."
} | tee "$RES/compare.md"
log "wrote $RES/compare.md"
