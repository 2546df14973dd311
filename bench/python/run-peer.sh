#!/usr/bin/env bash
# Side-by-side run: the Python stack (FastAPI + fastapi-users on SQLite, uvicorn) and then Velro
# (SQLite), each on a free 127.0.0.1 port, with the same wrk commands:
#   GET /me:  wrk -t1 -c100 -d${SECS}s --latency -H "Authorization: Bearer <token>"
#   login:    wrk -t1 -c8 -d${LOGIN_SECS}s --latency, POST of one user's credentials
# Every server is started by this script and stopped by its PID (trap). Prints a table.
#
# Settings (environment):
#   SECS=10                /me run length;  LOGIN_SECS=10  login run length
#   PEER_WORKERS="1 2"     uvicorn worker counts to run (the machine has 2 cores)
#   VELRO_BIN=target/release/velro   skipped (and said so) if absent
#   BENCH_OUT=dir          where raw output goes (default: a new /tmp/velro-peer.XXXXXX, kept)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=$ROOT/bench/python
VENV=$ROOT/bench/.venv
WRK=${WRK:-/usr/bin/wrk}
SECS=${SECS:-10}
LOGIN_SECS=${LOGIN_SECS:-10}
WORKERS=${PEER_WORKERS:-1 2}
VELRO_BIN=${VELRO_BIN:-$ROOT/target/release/velro}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/velro-peer.XXXXXX)}
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/velro-peer-tmp.XXXXXX)
EMAIL=peer-bench@example.com
PASSWORD='velro load test passphrase 42'
PIDS=()

log() { printf '[peer %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/peer.log" >&2; }

stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # url seconds
  for _ in $(seq $(( $2 * 10 ))); do
    curl -sS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  log "no answer from $1"; return 1
}

# --- venv ---------------------------------------------------------------------------------
if [[ ! -x $VENV/bin/uvicorn ]] || ! "$VENV/bin/python" -c "import uvloop, httptools" 2>/dev/null; then
  log "creating $VENV"
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  printf '*\n' >"$VENV/.gitignore"
  timeout 600 "$VENV/bin/pip" install -q -r "$PY/requirements.txt"
fi
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "loadavg_at_start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wrk: $($WRK -v 2>&1 | head -1 || true)"
  "$VENV/bin/python" - <<'PY'
import platform, importlib.metadata as m, argon2
from fastapi_users.password import PasswordHelper
print("python:", platform.python_version())
for p in ("fastapi", "fastapi-users", "fastapi-users-db-sqlalchemy", "uvicorn", "uvloop", "httptools", "starlette",
          "SQLAlchemy", "aiosqlite", "pwdlib", "argon2-cffi", "PyJWT"):
    print(f"{p}: {m.version(p)}")
h = PasswordHelper().password_hash.current_hasher
print("default hasher:", type(h).__name__, "->", h._hasher.type, "t=%d m=%dKiB p=%d" %
      (h._hasher.time_cost, h._hasher.memory_cost, h._hasher.parallelism))
PY
} >"$OUT/versions.txt"
cat "$OUT/versions.txt" >&2

# --- measurement --------------------------------------------------------------------------
# wrk_me NAME URL TOKEN / wrk_login NAME URL BODY CONTENT_TYPE: bounded wrk runs, raw output kept.
wrk_me() {
  log "$1: $WRK -t1 -c100 -d${SECS}s --latency -H 'Authorization: Bearer …' $2"
  timeout $(( SECS + 60 )) "$WRK" -t1 -c100 -d"${SECS}s" --latency -s "$ROOT/bench/wrk/report.lua" \
    -H "Authorization: Bearer $3" "$2" >"$OUT/$1-me.wrk.txt" 2>&1 || log "$1 me: wrk exited with $?"
  grep -v WRK_JSON "$OUT/$1-me.wrk.txt" >&2 || true
}
wrk_login() {
  log "$1: $WRK -t1 -c8 -d${LOGIN_SECS}s --latency -s bench/python/login.lua $2 ($4)"
  WRK_BODY=$3 WRK_CONTENT_TYPE=$4 timeout $(( LOGIN_SECS + 60 )) "$WRK" -t1 -c8 -d"${LOGIN_SECS}s" \
    --latency --timeout 10s -s "$PY/login.lua" "$2" >"$OUT/$1-login.wrk.txt" 2>&1 \
    || log "$1 login: wrk exited with $?"
  grep -v WRK_JSON "$OUT/$1-login.wrk.txt" >&2 || true
}

run_python() { # workers
  local name=python-w$1 port db
  port=$(free_port)
  db=$TMP/$name.db
  # Tables first, once, so that workers do not race on CREATE TABLE.
  (cd "$PY" && PEER_DB=$db "$VENV/bin/python" -c \
    'import asyncio, app
async def main():
    async with app.engine.begin() as c: await c.run_sync(app.Base.metadata.create_all)
    await app.engine.dispose()
asyncio.run(main())')
  (cd "$PY" && PEER_DB=$db exec "$VENV/bin/uvicorn" app:app --host 127.0.0.1 --port "$port" \
    --workers "$1" --loop uvloop --http httptools --no-access-log --log-level warning) >"$OUT/$name-server.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/docs" 60
  log "$name: uvicorn --workers $1 on 127.0.0.1:$port (pid $pid)"
  curl -fsS -X POST "http://127.0.0.1:$port/auth/register" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}" >/dev/null
  local form="username=peer-bench%40example.com&password=velro+load+test+passphrase+42" token
  token=$(curl -fsS -X POST "http://127.0.0.1:$port/auth/jwt/login" \
    -H 'Content-Type: application/x-www-form-urlencoded' --data "$form" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -fsS "http://127.0.0.1:$port/users/me" -H "Authorization: Bearer $token" >"$OUT/$name-me.json"
  wrk_me "$name" "http://127.0.0.1:$port/users/me" "$token"
  wrk_login "$name" "http://127.0.0.1:$port/auth/jwt/login" "$form" application/x-www-form-urlencoded
  echo "$name VmHWM(parent)=$(awk '/^VmHWM/ {print $2 $3}' /proc/$pid/status)" >>"$OUT/memory.txt"
  stop_pid "$pid"
}

run_velro() {
  local name=velro port
  port=$(free_port)
  VELRO_BIND=127.0.0.1:$port VELRO_DATA_DIR=$TMP/velro-data VELRO_RATE_LIMITS=off VELRO_LOG_LEVEL=warn \
    VELRO_JWT_SECRET=bench-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz \
    VELRO_SERVICE_KEY=bench-service-key-0123456789abcdefghijklmnopqrstuv \
    "$VELRO_BIN" serve >"$OUT/$name-server.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/health" 60
  log "$name on 127.0.0.1:$port (pid $pid)"
  local body="{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}" token
  curl -fsS -X POST "http://127.0.0.1:$port/api/v1/auth/register" -H 'Content-Type: application/json' \
    -d "$body" >/dev/null
  token=$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "$body" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -fsS "http://127.0.0.1:$port/api/v1/auth/me" -H "Authorization: Bearer $token" >"$OUT/$name-me.json"
  wrk_me "$name" "http://127.0.0.1:$port/api/v1/auth/me" "$token"
  wrk_login "$name" "http://127.0.0.1:$port/api/v1/auth/login" "$body" application/json
  echo "$name VmHWM=$(awk '/^VmHWM/ {print $2 $3}' /proc/$pid/status)" >>"$OUT/memory.txt"
  stop_pid "$pid"
}

for w in $WORKERS; do run_python "$w"; done
if [[ -x $VELRO_BIN ]]; then
  run_velro
else
  log "no Velro binary at $VELRO_BIN: Velro not run (build it with cargo build --release -p velro)"
fi

# --- table --------------------------------------------------------------------------------
python3 - "$OUT" <<'PY' | tee "$OUT/peer-summary.md"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def load(name):
    p = out / name
    if not p.exists():
        return None
    for line in p.read_text().splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[9:])
rows = []
for f in sorted(out.glob("*-me.wrk.txt")):
    name = f.name[:-len("-me.wrk.txt")]
    me, lo = load(f.name), load(f"{name}-login.wrk.txt")
    rows.append((name, me, lo))
def rps(r): return r["requests"] / (r["duration_us"] / 1e6)
# wrk's default 2 s timeout applies to /me (as in bench/run.sh): requests that timed out are
# counted in "timeouts" and are NOT in the latency percentiles. Login runs use --timeout 10s.
print("| server | /me req/s | /me p50 ms | /me p99 ms | /me non-2xx / timeouts | login req/s | login p50 ms | login p99 ms | login non-2xx / timeouts |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, me, lo in rows:
    cells = [name]
    for r in (me,):
        cells += ([f"{rps(r):,.0f}", f"{r['p50_us']/1000:.2f}", f"{r['p99_us']/1000:.2f}",
                   f'{r["non_2xx_3xx"]} / {r["timeouts"]}'] if r else ["–"] * 4)
    cells += ([f"{rps(lo):,.1f}", f"{lo['p50_us']/1000:.1f}", f"{lo['p99_us']/1000:.1f}",
               f'{lo["non_2xx_3xx"]} / {lo["timeouts"]}'] if lo else ["–"] * 4)
    print("| " + " | ".join(cells) + " |")
PY
log "raw output in $OUT"
