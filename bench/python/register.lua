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

-- The WRK_JSON summary line, shared with the other scripts.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
dofile(here .. "/../wrk/json-summary.lua")
