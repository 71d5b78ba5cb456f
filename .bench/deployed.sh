#!/usr/bin/env bash
# The deployed function's speed: `vercel build` (offline, as .ci/vercel-check.sh
# does) in a throwaway copy of the repository and in one holding only an
# empty function (api/bench_empty.go: writes 200), then .bench/lambdarun runs the bootstrap
# binaries under a Lambda Runtime API stand-in against a private TLS
# redis-server (.ci/redis-extra.sh), beside the floor (.bench/floor).
# See .bench/README.md.
#
#   bash .bench/deployed.sh             # ~1 minute after the first build
#   COLD_N=50 WARM_N=500 bash .bench/deployed.sh
#   SMOKE=1 bash .bench/deployed.sh     # 2 cold starts, 5 warm: only checks that the kit works
#
# Options (environment): COLD_N (20) cold starts per column, WARM_N (200)
# measured warm invocations per column, WARMUP_N (20), SPACED_N (10)
# invocations 2.1 s apart of the create column that triggers a prompt
# drain each time, SMOKE=1,
# FUNCTION_ENV (KEY=VALUE pairs, space-separated, added to the functions'
# environment: FUNCTION_ENV=STRAVAHOOK_PROMPT_DRAIN=off measures the intake
# without its prompt-drain trigger), VERCEL_CLI_DIR (as .ci/vercel-check.sh). Writes .bench/results/deployed.md
# and the processes' logs beside it. Only 127.0.0.1 traffic, except npm
# installing the Vercel CLI and go fetching modules when they are missing.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
res=.bench/results
mkdir -p "$res"
COLD_N=${COLD_N:-20} WARM_N=${WARM_N:-200} WARMUP_N=${WARMUP_N:-20} SPACED_N=${SPACED_N:-10}
if [ -n "${SMOKE:-}" ]; then COLD_N=2 WARM_N=5 WARMUP_N=1 SPACED_N=2; fi
log() { printf '[deployed] %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not installed"; exit 1; }
command -v npm >/dev/null || { log "npm (Node.js) is not installed"; exit 1; }
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null || ! command -v openssl >/dev/null; then
  log "installing redis-server and openssl"
  apt-get install -y -qq redis-server redis-tools openssl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq redis-server redis-tools openssl >/dev/null; }
fi
vercel=$(bash .ci/vercel-cli.sh)

# vercel build writes each bootstrap to $TMPDIR/<hash>/ (and names it
# relative to the project), so both the copy and TMPDIR live in a directory
# of the kit's own, removed on exit (KEEP_WORK=1 keeps it).
work=$(mktemp -d "${TMPDIR:-/tmp}/stravahook-deployed.XXXXXX")
cleanup() {
  bash .ci/redis-extra.sh stop "$work/redis" >/dev/null 2>&1 || true
  if [ -n "${KEEP_WORK:-}" ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
mkdir -p "$work/repo" "$work/empty/api" "$work/bin" "$work/run" "$work/tmp"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$work/repo"
# The empty function gets a copy of its own with nothing else in api/: the
# Vercel Go builder compiles the whole api package into every function, so
# beside the real functions it would link everything they link.
(cd "$work/repo" && tar -cf - go.mod go.sum .static) | tar -xf - -C "$work/empty"
echo '{"outputDirectory":".static"}' >"$work/empty/vercel.json"
cat >"$work/empty/api/bench_empty.go" <<'EOF'
package handler

import "net/http"

// BenchEmpty is the speed kit's empty function: the cost of being a Vercel Go function at all.
func BenchEmpty(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }
EOF

build() { # build DIR: vercel build (offline) in DIR
  mkdir -p "$1/.vercel"
  echo '{"projectId":"prj_local","orgId":"team_local","settings":{"framework":null}}' >"$1/.vercel/project.json"
  local start log
  start=$(date +%s)
  log="$res/deployed-vercel-build-$(basename "$1").log"
  if ! (cd "$1" && TMPDIR="$work/tmp" VERCEL_TELEMETRY_DISABLED=1 GOSUMDB=off "$vercel" build --yes) >"$log" 2>&1; then
    tail -30 "$log" >&2
    log "vercel build failed in the $(basename "$1") copy (log: $log)"
    exit 1
  fi
  log "vercel build of the $(basename "$1") copy took $(($(date +%s) - start))s"
}
log "vercel build (offline) of two throwaway copies: the repository, and the empty function alone"
build "$work/repo"
build "$work/empty"

# A private TLS Redis (and a unix-socket one the kit does not use), with a
# throwaway CA: INFO commandstats then counts only the measured processes.
bash .ci/redis-extra.sh start "$work/redis" >/dev/null
# shellcheck disable=SC1091
. "$work/redis/env"

# The floor is built the way Vercel builds a function (-ldflags "-s -w").
go build -ldflags "-s -w" -o "$work/bin/floor" ./.bench/floor
go build -o "$work/bin/lambdarun" ./.bench/lambdarun

function_env=()
for kv in ${FUNCTION_ENV:-}; do function_env+=(-env "$kv"); done
label="commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'), $(go version | cut -d' ' -f3), $(redis-server --version | cut -d' ' -f3 | tr -d 'v=') with TLS${FUNCTION_ENV:+, functions with $FUNCTION_ENV}"
"$work/bin/lambdarun" -functions "$work/repo/.vercel/output/functions" -project "$work/repo" \
  -empty-functions "$work/empty/.vercel/output/functions" -empty-project "$work/empty" \
  -redis-url "$STRAVAHOOK_TEST_REDISS_URL" -redis-ca "$STRAVAHOOK_TEST_REDIS_CA" \
  -tls-cert "$work/redis/server.crt" -tls-key "$work/redis/server.key" -spaced "$SPACED_N" \
  -floor "$work/bin/floor" -work "$work/run" -results "$res" -label "$label" \
  -cold "$COLD_N" -warm "$WARM_N" -warmup "$WARMUP_N" ${CERT_DIR:+-cert-dir "$CERT_DIR"} "${function_env[@]}" | tee "$res/deployed.md"
