-- wrk script for registration throughput: POSTs {"email", "password"} as JSON (what both
-- Velro's /api/v1/auth/register and fastapi-users' /auth/register take) with a new address on
-- every request, wrk-reg-<random per thread>-<n>@example.com, and the password WRK_PASSWORD.
-- Prints the same WRK_JSON line as bench/wrk/report.lua.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local password = os.getenv("WRK_PASSWORD") or "velro load test passphrase 42"
local prefix = "0"
local n = 0

function init(args)
  -- Each thread has its own Lua state: seed from the clock and this state's address.
  local address = tonumber((tostring({}):match("0x(%x+)")) or "0", 16) or 0
  math.randomseed(os.time() + address % 1000003)
  prefix = string.format("%x%x", os.time() % 0x10000, math.random(0, 0x7fffffff))
end

function request()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format(
    '{"email": "wrk-reg-%s-%d@example.com", "password": "%s"}', prefix, n, password))
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"non_2xx_3xx":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
