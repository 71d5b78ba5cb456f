#!/usr/bin/env bash
# The first-run path, end to end, as README.md tells it: `serve -sandbox`
# (a Strava double in process, embedded Redis), then `trigger create` must
# show up in `activities list -json` within 15 s, `trigger delete` must
# remove it, and `trigger deauthorize` must remove the athlete once the
# sandbox's Strava has revoked them. Free ports only; nothing persists.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
work=$(mktemp -d)
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "sandbox-check: FAIL: $*"; echo "--- serve stdout"; cat "$work/out" || true; echo "--- serve stderr (last 20 lines)"; tail -20 "$work/err" || true; exit 1; }

go build -o "$work/stravahook" ./lib/cmd/stravahook
cli() { env -u KV_URL -u STRAVA_CLIENT_ID -u STRAVA_CLIENT_SECRET -u STRAVA_BASE_URL -u STRAVA_VERIFY_TOKEN \
  -u STRAVA_SUBSCRIPTION_ID -u STRAVA_CALLBACK_SECRET "$work/stravahook" "$@"; }

env -u REDIS_URL -u KV_URL -u STRAVA_CLIENT_ID -u STRAVA_CLIENT_SECRET -u STRAVA_BASE_URL -u STRAVA_VERIFY_TOKEN \
  -u STRAVA_SUBSCRIPTION_ID -u STRAVA_CALLBACK_SECRET \
  "$work/stravahook" serve -sandbox -addr 127.0.0.1:0 -drain-every 1s >"$work/out" 2>"$work/err" &
serve_pid=$!
for _ in $(seq 1 300); do
  grep -q '^Try it' "$work/out" 2>/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || fail "serve -sandbox exited"
  sleep 0.1
done
grep -q '^Try it' "$work/out" || fail "serve -sandbox did not get ready within 30 s"
base=$(grep -o 'listening on http://[0-9.:]*' "$work/out" | head -1 | sed 's/listening on //')
export REDIS_URL
REDIS_URL=$(grep -o 'export REDIS_URL=[^ ]*' "$work/out" | head -1 | sed 's/export REDIS_URL=//')
callback="$base/api/activity_update"
athlete=134815
echo "serve -sandbox at $base, Redis $REDIS_URL"

# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local t0; t0=$(date +%s%N)
  while ! "$@" >/dev/null 2>&1; do
    (( ($(date +%s%N) - t0) / 1000000 <= limit * 1000 )) || fail "$what: not within ${limit} s"
    sleep 0.2
  done
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%s: %d.%03d s\n' "$what" $((ms / 1000)) $((ms % 1000))
}
kept() { cli activities list -athlete "$athlete" -json | grep -q "\"id\":$1[,}]"; }
not_kept() { ! kept "$1"; }
no_athletes() { [ -z "$(cli athlete list -json)" ]; }

out=$(cli trigger create -url "$callback") || fail "trigger create: $out"
echo "$out"
id=$(echo "$out" | grep -o 'created activity [0-9]*' | grep -o '[0-9]*$')
[ -n "$id" ] || fail "trigger create named no activity"
wait_for 15 "activity $id kept after trigger create" kept "$id"
cli activities list -athlete "$athlete" -json | grep "\"id\":$id" | cut -c1-160

out=$(cli trigger delete -url "$callback") || fail "trigger delete: $out"
echo "$out"
wait_for 15 "activity $id gone after trigger delete" not_kept "$id"

out=$(cli trigger deauthorize -url "$callback") || fail "trigger deauthorize: $out"
echo "$out"
wait_for 15 "athlete $athlete removed after trigger deauthorize" no_athletes
grep '^drain:' "$work/out" || true
echo "sandbox-check: OK"
