-- wrk script: each request books a random future 30-minute slot through POST /api/v1/appointments.
-- benchmarks/loadgen.py prepends the globals KEYS (org -> API key), ORGS, PROVIDERS_PER_ORG, CONTACTS_PER_ORG,
-- BASE_EPOCH (today's UTC midnight), DAY_MIN and DAY_MAX, so the draw matches pgbench_booking.sql.

local threads = {}
local next_id = 0

-- runs in the main Lua state, once per wrk thread: number the threads and keep them for done()
function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

-- runs in each thread's own Lua state: per-thread seed and status counters
function init(args)
  math.randomseed(os.time() * 100 + thread_id)
  ok201, ok409, other = 0, 0, 0
end

local headers = { ["Content-Type"] = "application/json" }

function request()
  local org = math.random(1, ORGS)
  local provider = org + ORGS * math.random(0, PROVIDERS_PER_ORG - 1)
  local contact = org + ORGS * math.random(0, CONTACTS_PER_ORG - 1)
  local ts = BASE_EPOCH + 86400 * math.random(DAY_MIN, DAY_MAX) + 32400 + 1800 * math.random(0, 15)
  local body = string.format('{"contactId":%d,"providerId":%d,"start":"%s","durationMinutes":30}',
    contact, provider, os.date("!%Y-%m-%dT%H:%M:%SZ", ts))
  headers["Authorization"] = KEYS[org]
  return wrk.format("POST", "/api/v1/appointments", headers, body)
end

-- 201 booked and 409 slot taken are both correct answers; anything else is an error
function response(status, hdrs, body)
  if status == 201 then
    ok201 = ok201 + 1
  elseif status == 409 then
    ok409 = ok409 + 1
  else
    other = other + 1
  end
end

-- one JSON line the Python side parses (latency in microseconds, duration in microseconds)
function done(summary, latency, requests)
  local c201, c409, cother = 0, 0, 0
  for _, t in ipairs(threads) do
    c201 = c201 + t:get("ok201")
    c409 = c409 + t:get("ok409")
    cother = cother + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'BOOKBENCH_WRK {"duration_us":%d,"requests":%d,"s201":%d,"s409":%d,"other_status":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.duration, summary.requests, c201, c409, cother, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
