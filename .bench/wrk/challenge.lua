-- wrk script: Strava's subscription validation GET, the request whose first
-- 200 compare.sh's cold-start helper waits for. The query is in the URL:
--   wrk -t1 -c2 -d5s -s .bench/wrk/challenge.lua \
--     'http://127.0.0.1:PORT/api/activity_update?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C'
-- It only adds the summary line that compare.sh parses (same as event.lua).

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f status_errors=%d socket_errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
