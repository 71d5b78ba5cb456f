-- wrk script: POST realistic Strava activity "create" events (the shape of
-- shared/strava/events/create.json) to /api/activity_update, each with an
-- object_id that no other request of this run (or of an earlier run) uses,
-- and an event_time that varies too, so the Go intake's dedupe never
-- short-circuits a request.
--
--   wrk -t2 -c32 -d10s -s .bench/wrk/event.lua http://127.0.0.1:PORT/api/activity_update
--
-- env (optional): WRK_RUN_SALT  integer 0..99999 that keeps ids of different
--                 runs apart (default: os.time() % 100000, so runs started in
--                 different seconds never collide)
--                 OWNER_ID, SUBSCRIPTION_ID (default: the documented sample's)
--
-- done() prints one machine-readable line for compare.sh:
--   BENCH requests=N duration_us=N rps=N status_errors=N socket_errors=N p50_us=N p90_us=N p99_us=N max_us=N

local next_tid = 0

-- Runs in the main Lua state once per thread, before the threads start;
-- each thread gets its own number (tid) in its own Lua state.
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

-- Per-thread state (each wrk thread has its own Lua state).
local seq = 0
local base_n, start_time, owner_id, subscription_id

function init(args)
  local salt = tonumber(os.getenv("WRK_RUN_SALT") or "") or (os.time() % 100000)
  -- n = salt*1e10 + tid*1e8 + seq is unique per request: up to 1e8 requests per
  -- thread per run, up to 100 threads; the salt keeps runs apart. 2^32 + n
  -- exceeds 32 bits (as Strava's ids do) and stays below 2^53, where Lua
  -- numbers stop being exact integers.
  base_n = salt * 1e10 + tid * 1e8
  start_time = os.time()
  owner_id = os.getenv("OWNER_ID") or "28004310"
  subscription_id = os.getenv("SUBSCRIPTION_ID") or "122449"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["User-Agent"] = "strava-bench"
end

function request()
  local n = base_n + seq
  seq = seq + 1
  local body = string.format(
    '{"aspect_type":"create","event_time":%.0f,"object_id":%.0f,"object_type":"activity","owner_id":%s,"subscription_id":%s,"updates":{}}',
    start_time - (n % 604800), 4294967296 + n, owner_id, subscription_id)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f status_errors=%d socket_errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
