-- wrk script for `bench/scale-bench.sh`: personalised lists for a mix of returning visitors
-- (their lists stay cached until they act) and visitors drawn from the whole population
-- (mostly cache misses: first request, or after their own events).
--   USERS  visitor ids are user-0 … user-(USERS-1)          (default 1000000)
--   HOT    returning visitors, user-0 … user-(HOT-1)        (default 20000)
--   COLD   share of requests for a visitor from all USERS   (default 0.3)
local users = tonumber(os.getenv("USERS") or "1000000")
local hot = tonumber(os.getenv("HOT") or "20000")
local cold = tonumber(os.getenv("COLD") or "0.3")
local thread_id = 0

setup = function(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

init = function(args)
  math.randomseed(os.time() * 1000 + (id or 0))
end

request = function()
  local u
  if math.random() < cold then
    u = math.random(0, users - 1)
  else
    u = math.random(0, hot - 1)
  end
  return wrk.format("GET", "/api/v1/recommendations/recommendations/user-" .. u .. "?limit=10")
end

local errors = 0
response = function(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
  end
end

done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format("requests %d in %.1f s: %.0f requests/s\n", summary.requests, s, summary.requests / s))
  io.write(string.format("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
  local e = summary.errors
  io.write(string.format("errors: connect %d read %d write %d timeout %d, non-2xx %d\n",
    e.connect, e.read, e.write, e.timeout, summary.requests - (summary.requests - (e.status or 0))))
end

done = function(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; errors: connect %d read %d write %d status %d timeout %d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
