-- wrk script for login throughput (bench/run.sh, Velro and the Python peer): POSTs WRK_BODY with
-- WRK_CONTENT_TYPE (default form-encoded, as fastapi-users' /auth/jwt/login wants), and prints
-- the same WRK_JSON line as bench/wrk/report.lua.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/x-www-form-urlencoded"

-- The WRK_JSON summary line, shared with the other scripts.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
dofile(here .. "/../wrk/json-summary.lua")
