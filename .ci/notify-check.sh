#!/usr/bin/env bash
# Notifications end to end with the real binary: `stravahook listen` (the
# local receiver, verifying every signature with NOTIFY_SECRET) and
# `serve -sandbox` with NOTIFY_URL pointing at it; then `notify test`, and
# `trigger create|delete|deauthorize` must each reach the receiver as a
# verified activity.created / activity.deleted / athlete.deauthorized
# within 15 s, and a ping signed with another secret must be refused.
# Free ports only; nothing persists.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "notify-check: FAIL: $*"
  echo "--- listen"; cat "$work/listen" || true
  echo "--- serve stderr (last 20 lines)"; tail -20 "$work/err" || true
  exit 1
}
# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local t0; t0=$(date +%s)
  while ! "$@" >/dev/null 2>&1; do
    (( $(date +%s) - t0 > limit )) && fail "$what: not within ${limit} s"
    sleep 0.2
  done
  echo "$what: ok"
}

go build -o "$work/stravahook" ./lib/cmd/stravahook
# The CLI without any of the user's settings. Background commands are started
# with `env` itself behind the `&` (not the cli function), so that $! is the
# command's own pid: a function behind `&` runs in a subshell, and killing
# that subshell left serve and listen running after the script ended.
clean_env=(-u REDIS_URL -u KV_URL -u STRAVA_CLIENT_ID -u STRAVA_CLIENT_SECRET -u STRAVA_BASE_URL -u STRAVA_VERIFY_TOKEN
  -u STRAVA_SUBSCRIPTION_ID -u STRAVA_CALLBACK_SECRET -u CRON_SECRET)
cli() { env "${clean_env[@]}" "$work/stravahook" "$@"; }

NOTIFY_SECRET=$(cli notify secret)
export NOTIFY_SECRET
env "${clean_env[@]}" "$work/stravahook" listen -addr 127.0.0.1:0 >"$work/listen" 2>&1 &
pids+=($!)
wait_for 30 "listen ready" grep -q 'listening on http://' "$work/listen"
NOTIFY_URL=$(grep -o 'listening on http://[0-9.:]*' "$work/listen" | head -1 | sed 's/listening on //')/strava
export NOTIFY_URL

out=$(cli notify test) || fail "notify test: $out"
echo "$out"
grep -q ' ping msg_' "$work/listen" || fail "the ping was not printed as verified"
if out=$(NOTIFY_SECRET=$(cli notify secret) cli notify test 2>&1); then fail "a ping with another secret was accepted: $out"; fi
echo "$out" | grep -q '401 Unauthorized' || fail "a ping with another secret: $out"

env "${clean_env[@]}" "$work/stravahook" serve -sandbox -addr 127.0.0.1:0 -drain-every 1s >"$work/out" 2>"$work/err" &
pids+=($!)
wait_for 30 "serve -sandbox ready" grep -q '^Try it' "$work/out"
base=$(grep -o 'listening on http://[0-9.:]*' "$work/out" | head -1 | sed 's/listening on //')
callback="$base/api/activity_update"

verified() { grep -q "$1 msg_.*verified" "$work/listen"; }
out=$(cli trigger create -url "$callback") || fail "trigger create: $out"
wait_for 15 "activity.created received and verified" verified activity.created
out=$(cli trigger delete -url "$callback") || fail "trigger delete: $out"
wait_for 15 "activity.deleted received and verified" verified activity.deleted
out=$(cli trigger deauthorize -url "$callback") || fail "trigger deauthorize: $out"
wait_for 15 "athlete.deauthorized received and verified" verified athlete.deauthorized
cat "$work/listen"
echo "notify-check: OK"
