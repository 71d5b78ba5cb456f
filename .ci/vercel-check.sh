#!/usr/bin/env bash
# Offline Vercel checks: `vercel build` must build every api/*.go as a Go
# function and put nothing of the repository but the static pages (.static) under
# .vercel/output/static; `vercel dev --local` must answer Strava's
# validation GET. Needs network only for `npm i` of the Vercel CLI.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
vercel=$(bash .ci/vercel-cli.sh)
export VERCEL_TELEMETRY_DISABLED=1 GOSUMDB=off
# vercel build puts each function's binary in $TMPDIR/<hash>/: one
# directory of this run's own, removed at the end, instead of /tmp.
vercel_tmp=$(mktemp -d "${TMPDIR:-/tmp}/stravahook-vercel.XXXXXX")
export TMPDIR=$vercel_tmp

# Logs of this run only: several checkouts may run this script at once.
logs=$(mktemp -d /tmp/stravahook-vercel-check.XXXXXX)
cleanup() {
  [ -n "${dev_pid:-}" ] && kill -- "-$dev_pid" 2>/dev/null || true
  rm -rf "$repo/.vercel" "$vercel_tmp"
}
trap cleanup EXIT

echo "== vercel build (offline)"
rm -rf .vercel
mkdir -p .vercel
echo '{"projectId":"prj_local","orgId":"team_local","settings":{"framework":null}}' >.vercel/project.json
"$vercel" build --yes >"$logs/build.log" 2>&1 || { tail -40 "$logs/build.log"; echo "vercel build failed"; exit 1; }
fail=0
for f in api/*.go; do
  case "$f" in *_test.go) continue ;; esac
  name=$(basename "$f" .go)
  if [ -d ".vercel/output/functions/api/$name.func" ]; then
    echo "built function api/$name"
  else
    echo "MISSING function for $f"; fail=1
  fi
done
static=$(cd .vercel/output/static 2>/dev/null && find . -type f | sort)
echo "static files: $(echo $static)"
for f in $static; do
  case "$f" in
    ./index.html|./map.html|./map.js|./vendor/leaflet/*) ;;
    *) echo "UNEXPECTED static file $f (repository content must not be served)"; fail=1 ;;
  esac
done
[ "$fail" = 0 ] || exit 1
rm -rf .vercel

echo "== vercel dev --local answers the validation GET at the secret callback path"
port=${VERCEL_DEV_PORT:-3999}
# @vercel/go's dev server listens on $VERCEL_DEV_PORT when it is set: left
# in the environment, every Go function would try to take vercel dev's own
# port and panic ("address already in use").
unset VERCEL_DEV_PORT
prefix="ci-vercel-dev-$$-$RANDOM:"
callback_secret="ci-callback-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export STRAVA_VERIFY_TOKEN=ci-verify-token REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/13} STRAVAHOOK_REDIS_PREFIX=$prefix
export STRAVA_CLIENT_ID=4242 STRAVA_CLIENT_SECRET=ci-client-secret READ_TOKEN=ci-read-token-0123456789
export STRAVA_CALLBACK_SECRET=$callback_secret CRON_SECRET=ci-cron-secret-0123456789
set -m
"$vercel" dev --local --listen "$port" --yes >"$logs/dev.log" 2>&1 &
dev_pid=$!
set +m
validation="hub.mode=subscribe&hub.verify_token=ci-verify-token&hub.challenge=ci-challenge-42"
url="http://127.0.0.1:$port/api/activity_update/$callback_secret?$validation"
body=""
for _ in $(seq 1 180); do
  body=$(curl -s --max-time 20 "$url" || true)
  [ "$body" = '{"hub.challenge":"ci-challenge-42"}' ] && break
  sleep 1
done
if [ "$body" != '{"hub.challenge":"ci-challenge-42"}' ]; then
  tail -40 "$logs/dev.log"
  echo "vercel dev did not answer the validation GET (got: $body)"; exit 1
fi
echo "vercel dev answered: $body"

echo "== vercel dev --local: the bare path and wrong secrets answer 404 and store nothing"
bare=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/activity_update?$validation")
[ "$bare" = 404 ] || { echo "GET of the bare path: $bare, want 404"; exit 1; }
# vercel dev builds the Go function for every request (1–3 s each here), so
# CI sends a few dozen; the Go tests send 1,000 through serve's same routes.
forged_event='{"aspect_type":"create","event_time":1764500000,"object_id":17000000001,"object_type":"activity","owner_id":134815,"subscription_id":120475,"updates":{}}'
codes=$(for i in $(seq 1 ${FORGED_POSTS:-24}); do
  case $((i % 4)) in
    0) path=/api/activity_update ;;
    1) path=/api/activity_update/${callback_secret%?} ;;
    2) path=/api/activity_update/${callback_secret}0 ;;
    3) path="/api/activity_update?callback_secret=wrong-secret-000000" ;;
  esac
  printf 'url = "http://127.0.0.1:%s%s"\noutput = /dev/null\nwrite-out = "%%{http_code}\\n"\n' "$port" "$path"
done | curl -s --no-progress-meter --max-time 600 -X POST -H 'Content-Type: application/json' --data "$forged_event" --parallel --parallel-max 16 -K - | sort | uniq -c)
echo "forged POSTs answered: $(echo $codes)"
case "$(echo $codes)" in
  "${FORGED_POSTS:-24} 404") ;;
  *) echo "forged POSTs must all answer 404"; exit 1 ;;
esac
stored=$(redis-cli -u "$REDIS_URL" --scan --pattern "${prefix}*" | wc -l)
[ "$stored" = 0 ] || { echo "forged POSTs stored $stored keys"; exit 1; }
# The queued event starts a prompt drain; under vercel dev the intake
# answers once that drain has (README), so it is recorded by then. The 401
# first makes vercel dev build process_events outside that wait.
curl -s --max-time 120 -o /dev/null "http://127.0.0.1:$port/api/process_events"
real=$(curl -s --max-time 120 -X POST -H 'Content-Type: application/json' --data "$forged_event" "http://127.0.0.1:$port/api/activity_update/$callback_secret")
[ "$real" = '{"status":"queued"}' ] || { echo "POST at the secret path: $real, want queued"; exit 1; }
last_drain=$(redis-cli -u "$REDIS_URL" get "${prefix}last_drain")
echo "last drain after the queued POST: $last_drain"
case "$last_drain" in *'"trigger":"prompt","claimed":1,'*) ;; *) echo "want a prompt drain that claimed the event"; tail -20 "$logs/dev.log"; exit 1 ;; esac
redis-cli -u "$REDIS_URL" --scan --pattern "${prefix}*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
if grep -q "$callback_secret" "$logs/dev.log"; then echo "the callback secret is in vercel dev's log"; exit 1; fi
echo "bare path 404, ${FORGED_POSTS:-24} forged POSTs 404 with nothing stored, the secret path queued and its prompt drain claimed it"

echo "== vercel dev --local redirects /api/connect to Strava's authorize page"
headers=$(curl -s --max-time 20 -o /dev/null -D - "http://127.0.0.1:$port/api/connect" | tr -d '\r')
status=$(printf '%s\n' "$headers" | head -1 | awk '{print $2}')
location=$(printf '%s\n' "$headers" | awk -F': ' 'tolower($1) == "location" { print $2 }')
echo "status $status, Location: $location"
case "$location" in
  https://www.strava.com/oauth/authorize\?*client_id=4242*) ;;
  *) echo "unexpected redirect"; exit 1 ;;
esac
case "$location" in
  *redirect_uri=http%3A%2F%2F127.0.0.1%3A$port%2Fapi%2Fconnect_callback*) ;;
  *) echo "redirect_uri is not this server's /api/connect_callback"; exit 1 ;;
esac
[ "$status" = 302 ] || { echo "want 302"; exit 1; }

echo "== vercel dev --local serves the map page and its Leaflet"
for path in /map.html /vendor/leaflet/leaflet.js; do
  code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
  echo "GET $path: $code"
  [ "$code" = 200 ] || { echo "want 200"; exit 1; }
done

echo "== vercel dev --local serves /api/activities to the read token only"
code=$(curl -s --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/activities")
body=$(curl -s --max-time 20 -H "Authorization: Bearer $READ_TOKEN" "http://127.0.0.1:$port/api/activities?format=geojson")
echo "without the token: $code; with it: $body"
[ "$code" = 401 ] || { echo "want 401 without the token"; exit 1; }
case "$body" in '{"type":"FeatureCollection","features":['*) ;; *) echo "want a FeatureCollection"; exit 1 ;; esac
