-- wrk script: optional method/body/header from the environment, and one JSON line at the end
-- (latency in microseconds) for bench/summarize.py.
local method = os.getenv("WRK_METHOD")
local body = os.getenv("WRK_BODY")
if method then wrk.method = method end
if body then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

-- The WRK_JSON summary line, shared with the other scripts.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
dofile(here .. "/json-summary.lua")
