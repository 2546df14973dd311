#!/usr/bin/env bash
# Benchmarks of the Velro auth service on this machine: builds release, starts the server on
# SQLite and then on PostgreSQL + Redis (throwaway instances on free 127.0.0.1 ports), runs the
# scenarios (velro-load for journeys and per-endpoint runs, wrk for raw /health and /me
# throughput), stops everything it started by PID, and writes bench/results/<UTC stamp>/
# (JSON, text, and summary.md from bench/summarize.py).
#
# Side by side (issue 4), unless BENCH_PYTHON=0: after Velro on each store, the stack of the old
# backend, FastAPI + fastapi-users (bench/python, pinned PyPI versions in a venv at bench/.venv,
# fastapi-users' default password hasher), on the same store (SQLite file; its own database on
# the same throwaway PostgreSQL, created and dropped here), with 1 and then 2 uvicorn workers.
# Velro and the peer get the same wrk commands: GET /me at 100 connections, login and register
# at 8. summary.md gives every figure of the peer next to Velro's, with the ratio.
#
# Settings (environment):
#   BENCH_SECS=15          length of each single-endpoint run
#   BENCH_JOURNEY_SECS=30  length of each journey run (the issue's target run is 60)
#   BENCH_BACKENDS="sqlite postgres"
#   BENCH_LOG_LEVEL=warn   server log level (info logs one line per request)
#   BENCH_SERVER_BIN, BENCH_LOAD_BIN  prebuilt binaries instead of `cargo build --release`
#   BENCH_NO_BUILD=1       use target/release/velro and target/release/velro-load as they are
#   BENCH_PYTHON=1         run the FastAPI + fastapi-users peer side by side (default); 0 skips it
#                          (for machines without Python 3.11 venv/pip or access to PyPI)
#   BENCH_PEER_WORKERS="1 2"  uvicorn worker counts for the peer
#   BENCH_PEER_ONLY=1      only the side-by-side runs (Velro's and the peer's wrk runs), no
#                          velro-load scenarios: the short way to compare (bench/python/run-peer.sh)
#   BENCH_VENV=bench/.venv where the peer's virtualenv lives (git-ignored)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
SECS=${BENCH_SECS:-15}
JOURNEY_SECS=${BENCH_JOURNEY_SECS:-30}
BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
PYTHON_PEER=${BENCH_PYTHON:-1}
PEER_WORKERS=${BENCH_PEER_WORKERS:-1 2}
PEER_ONLY=${BENCH_PEER_ONLY:-0}
VENV=${BENCH_VENV:-$BENCH/.venv}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$BENCH/results/$STAMP
TMP=$(mktemp -d /tmp/velro-bench.XXXXXX)
mkdir -p "$OUT"

SERVICE_KEY=bench-service-key-0123456789abcdefghijklmnopqrstuv
JWT_SECRET=bench-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz
# The account that the side-by-side login runs log in again and again (on Velro and the peer).
SBS_EMAIL=side-by-side@example.com
SBS_PASSWORD='velro load test passphrase 42'
PIDS=()
PGDATA=

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [[ -n "$PGDATA" && -f "$PGDATA/postmaster.pid" ]]; then
    local pgpid
    pgpid=$(head -1 "$PGDATA/postmaster.pid")
    kill -TERM "$pgpid" 2>/dev/null || true  # smart shutdown of the cluster this script started
    for _ in $(seq 100); do kill -0 "$pgpid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # url, seconds
  for _ in $(seq $(( $2 * 10 ))); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  log "no answer from $1"; return 1
}

# --- build -------------------------------------------------------------------------------
if [[ "${BENCH_NO_BUILD:-0}" != 1 ]] \
  && [[ -z "${BENCH_SERVER_BIN:-}" || ( $PEER_ONLY != 1 && -z "${BENCH_LOAD_BIN:-}" ) ]]; then
  log "cargo build --release -p velro -p velro-load"
  (cd "$ROOT" && cargo build --release -p velro -p velro-load)
fi
SERVER_BIN=${BENCH_SERVER_BIN:-$ROOT/target/release/velro}
LOAD_BIN=${BENCH_LOAD_BIN:-$ROOT/target/release/velro-load}
[[ -x $SERVER_BIN ]] || { log "no server binary at $SERVER_BIN"; exit 2; }
[[ $PEER_ONLY == 1 || -x $LOAD_BIN ]] || { log "no velro-load binary at $LOAD_BIN"; exit 2; }

# --- the Python peer's virtualenv (before the long runs, so that a failure shows at once) ---
setup_peer_venv() {
  local req=$BENCH/python/requirements.txt want have
  want=$(sha256sum "$req" | cut -d' ' -f1)
  have=$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)
  if [[ $want != "$have" || ! -x $VENV/bin/uvicorn ]]; then
    log "Python peer: pip install -r bench/python/requirements.txt (pinned, PyPI) into $VENV"
    if [[ ! -x $VENV/bin/python ]]; then python3 -m venv "$VENV" || return 1; fi
    printf '*\n' >"$VENV/.gitignore"
    timeout 900 "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req" || return 1
    echo "$want" >"$VENV/.requirements.sha256"
  fi
  "$VENV/bin/python" - >"$OUT/python-versions.txt" <<'PY' || return 1
import platform, importlib.metadata as m
from fastapi_users.password import PasswordHelper
print("python:", platform.python_version())
for p in ("fastapi", "fastapi-users", "fastapi-users-db-sqlalchemy", "uvicorn", "uvloop", "httptools",
          "starlette", "SQLAlchemy", "aiosqlite", "asyncpg", "pwdlib", "argon2-cffi", "PyJWT"):
    print(f"{p}: {m.version(p)}")
# fastapi-users' default: PasswordHelper() with pwdlib's recommended hashers, left as it is.
h = PasswordHelper().password_hash.current_hasher
print("default_hasher:", f"{type(h).__name__} ({h._hasher.type.name}, t={h._hasher.time_cost}, "
      f"m={h._hasher.memory_cost} KiB, p={h._hasher.parallelism})")
PY
}
if [[ $PYTHON_PEER == 1 ]]; then
  if ! setup_peer_venv; then
    log "Python peer: setting up $VENV failed; BENCH_PYTHON=0 runs without the peer"
    exit 1
  fi
  cat "$OUT/python-versions.txt" >&2
fi

# --- machine -----------------------------------------------------------------------------
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "mem_total: $(grep MemTotal /proc/meminfo | awk '{print $2 " kB"}')"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc --version 2>/dev/null || echo n/a)"
  echo "postgres: $(/usr/lib/postgresql/15/bin/postgres --version 2>/dev/null || echo n/a)"
  echo "redis: $(redis-server --version 2>/dev/null || echo n/a)"
  echo "wrk: $(wrk -v 2>&1 | head -1 || true)"
  echo "velro_bin: $SERVER_BIN"
  echo "git_head: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo n/a)"
  echo "server_commit: ${BENCH_SERVER_COMMIT:-the work tree at git_head}"
  echo "loadavg_at_start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "secs: $SECS journey_secs: $JOURNEY_SECS log_level: $LOG_LEVEL"
  echo "python_peer: $([[ $PYTHON_PEER == 1 ]] && echo "on, uvicorn workers $PEER_WORKERS" || echo "off (BENCH_PYTHON=0)")"
  echo "peer_only: $PEER_ONLY"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# --- services ----------------------------------------------------------------------------
start_postgres() {
  PGPORT=$(free_port)
  PGDATA=$TMP/pg/data
  mkdir -p "$TMP/pg"
  chown postgres "$TMP/pg"
  chmod 755 "$TMP"
  runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$PGDATA" -A trust -U postgres \
    >"$OUT/postgres-initdb.log" 2>&1
  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -w -l "$TMP/pg/server.log" \
    -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1 -c max_connections=100" start \
    >>"$OUT/postgres-initdb.log" 2>&1
  psql_admin 'CREATE DATABASE velro'
  log "PostgreSQL on 127.0.0.1:$PGPORT (pid $(head -1 "$PGDATA/postmaster.pid"))"
}

psql_admin() { # SQL: one statement on the throwaway cluster, as its superuser
  PGOPTIONS='-c client_min_messages=warning' runuser -u postgres -- /usr/lib/postgresql/15/bin/psql \
    -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qc "$1" >/dev/null
}

start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$OUT/redis.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  log "Redis on 127.0.0.1:$REDIS_PORT (pid ${PIDS[-1]})"
}

# start_server NAME [VAR=value ...]: the release binary with the OWASP Argon2 defaults.
start_server() {
  local name=$1; shift
  # All load comes from one IP: per-IP rate limits (where the binary has them) would refuse
  # it, so they are switched off, as the README says they are for load tests.
  if grep -qa rate_limit_scale "$SERVER_BIN"; then set -- VELRO_RATE_LIMITS=off "$@"; fi
  PORT=$(free_port)
  HOST=http://127.0.0.1:$PORT
  env VELRO_BIND=127.0.0.1:$PORT VELRO_DATA_DIR="$TMP/data-$name" VELRO_JWT_SECRET=$JWT_SECRET \
    VELRO_SERVICE_KEY=$SERVICE_KEY VELRO_LOG_LEVEL="$LOG_LEVEL" "$@" \
    "$SERVER_BIN" serve >"$OUT/server-$name.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_http "$HOST/health" 60
  log "velro ($name) on $HOST (pid $SERVER_PID)"
}

stop_server() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
}

memory() { # label: the server's resident and peak memory now, and the machine's load average
  echo "$1 $(awk '/^VmRSS|^VmHWM/ {printf "%s=%s%s ", $1, $2, $3}' "/proc/$SERVER_PID/status")" \
    "loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)" >>"$OUT/$BACKEND-memory.txt"
}

cache_flag() { # on|off
  local value=true; [[ $1 == off ]] && value=false
  curl -fsS -X PUT "$HOST/api/v1/admin/flags" -H "Authorization: Bearer $SERVICE_KEY" \
    -H 'Content-Type: application/json' -d "{\"cache\": $value}" >/dev/null
}

# load NAME SCENARIO [velro-load options]: one bounded velro-load run.
load() {
  local name=$1; shift
  local scenario=$1; shift
  log "$BACKEND $name: velro-load $scenario $*"
  timeout $(( SECS + JOURNEY_SECS + 120 )) "$LOAD_BIN" "$scenario" --host "$HOST" \
    --report-json "$OUT/$BACKEND-$name.json" "$@" >"$OUT/$BACKEND-$name.txt" 2>"$OUT/$BACKEND-$name.err" \
    || log "$BACKEND $name: velro-load exited with $?"
  cat "$OUT/$BACKEND-$name.txt" >&2
  memory "$name"
}

# wrk_cmd NAME URL [wrk options]: one bounded wrk run (script WRK_SCRIPT, default report.lua),
# output in $BACKEND-NAME.wrk.txt.
wrk_cmd() {
  local name=$1 url=$2 script=${WRK_SCRIPT:-$BENCH/wrk/report.lua}; shift 2
  log "$BACKEND $name: wrk --latency -s ${script#"$ROOT"/} $* $url"
  timeout $(( SECS + 60 )) wrk --latency -s "$script" "$@" "$url" \
    >"$OUT/$BACKEND-$name.wrk.txt" 2>&1 || log "$BACKEND $name: wrk exited with $?"
  grep -v WRK_JSON "$OUT/$BACKEND-$name.wrk.txt" | head -20 >&2
}

# wrk_run NAME PATH [wrk options]: wrk_cmd against Velro, /metrics scraped before and after.
wrk_run() {
  local name=$1 path=$2; shift 2
  curl -fsS "$HOST/metrics" >"$OUT/$BACKEND-$name.metrics-before" || true
  wrk_cmd "$name" "$HOST$path" "$@"
  curl -fsS "$HOST/metrics" >"$OUT/$BACKEND-$name.metrics-after" || true
  memory "$name"
}

# The side-by-side commands, the same for Velro and the peer: GET /me at 100 connections (a
# 10 s timeout, so that slow answers are in the percentiles instead of counted as timeouts),
# login (one account, again and again) and register (a new address every request) at 8.
wrk_me_opts() { echo -t1 -c100 --timeout 10s -d"${SECS}s"; }
wrk_hash_opts() { echo -t1 -c8 --timeout 10s -d"${SECS}s"; }
# After a login or register run the server still hashes for the requests wrk left in flight
# (up to 8 × the hash time; ~2 s for the peer's one worker): let that finish before the next run.
settle() { sleep "${BENCH_SETTLE_SECS:-3}"; }

token() { # a fresh account's access token
  curl -fsS -X POST "$HOST/api/v1/auth/register" -H 'Content-Type: application/json' \
    -d "{\"email\": \"wrk-$RANDOM$RANDOM@example.com\", \"password\": \"velro load test passphrase 42\"}" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

# velro_side_by_side: Velro's part of the comparison with the Python peer (peer_run has the
# same commands). The /me runs are also the suite's raw /me throughput, cache on vs off.
velro_side_by_side() {
  local access; access=$(token)
  cache_flag on
  # shellcheck disable=SC2046
  wrk_run me-wrk-cache-on /api/v1/auth/me $(wrk_me_opts) -H "Authorization: Bearer $access"
  cache_flag off
  # shellcheck disable=SC2046
  wrk_run me-wrk-cache-off /api/v1/auth/me $(wrk_me_opts) -H "Authorization: Bearer $access"
  cache_flag on
  local body="{\"email\": \"$SBS_EMAIL\", \"password\": \"$SBS_PASSWORD\"}"
  curl -fsS -X POST "$HOST/api/v1/auth/register" -H 'Content-Type: application/json' -d "$body" >/dev/null
  # shellcheck disable=SC2046
  WRK_SCRIPT=$BENCH/python/login.lua WRK_BODY=$body WRK_CONTENT_TYPE=application/json \
    wrk_run login-wrk-c8 /api/v1/auth/login $(wrk_hash_opts)
  settle
  # shellcheck disable=SC2046
  WRK_SCRIPT=$BENCH/python/register.lua WRK_PASSWORD=$SBS_PASSWORD \
    wrk_run register-wrk-c8 /api/v1/auth/register $(wrk_hash_opts)
  settle
}

run_suite() {
  memory start
  # Raw single-endpoint throughput: wrk, one thread (one core at most), 100 connections.
  wrk_run health-wrk /health -t1 -c100 -d"${SECS}s"
  velro_side_by_side
  # The same with velro-load (100 users, a token each): latency and the L1+L2 hit ratio.
  load me-cache-on me -u 100 -d "$SECS"
  cache_flag off
  load me-cache-off me -u 100 -d "$SECS"
  cache_flag on
  # Open model: /me at a fixed arrival rate, latency from the scheduled start.
  load me-open-2000 me -u 200 -d "$SECS" --rate 2000
  # Single-hash time: sequential logins (one at a time), plus velro_hash_duration_seconds.
  load login-c1 login -u 1 -d "$SECS"
  # Login and register throughput: enough users to keep the hash pool busy, below its queue.
  load login-c8 login -u 8 -d "$SECS"
  load register-c8 register -u 8 -d "$SECS"
  load refresh-c50 refresh -u 50 -d "$SECS"
  # Journeys: 100 users started over 5 s, with 1 s think time (health probed alongside at
  # 50/s, open model), then with no think time. A refused step makes the user wait for
  # Retry-After (people do not retry in a tight loop).
  "$LOAD_BIN" health --host "$HOST" -u 10 -d "$JOURNEY_SECS" --rate 50 \
    --report-json "$OUT/$BACKEND-health-during-journey.json" >"$OUT/$BACKEND-health-during-journey.txt" 2>&1 &
  local probe=$!
  PIDS+=("$probe")
  load journey-think1s journey -u 100 -d "$JOURNEY_SECS" --think-ms 1000 --hatch-rate 20
  wait "$probe" || true
  cat "$OUT/$BACKEND-health-during-journey.txt" >&2
  load journey-nothink journey -u 100 -d "$SECS" --hatch-rate 20
  # Overload, three ways. A burst: 1000 logins sent at once, one per connection. A storm: 1000
  # logins/s for 10 s on a fixed schedule (22x what the hash pool can do), latency counted from
  # each login's scheduled start. And 1000 closed-loop users retrying the instant they are
  # refused: that measures the generator's queue as much as the server (with N users always
  # in flight, latency = N / throughput), so it is reported but not read as the refusal time.
  load overload-burst-1000 login -u 1000 -d 10 --hatch-rate 100000 --max-operations 1000 --timeout-secs 30
  load overload-open-1000rps login -u 1000 -d 10 --rate 1000 --timeout-secs 30
  load overload-login-c1000 login -u 1000 -d 10 --timeout-secs 30
}

# --- the Python peer -----------------------------------------------------------------------
peer_memory() { # PID LABEL: peak and current resident memory of uvicorn and its worker processes
  local pid=$1 label=$2 procs hwm=0 rss=0 p
  procs="$pid $(cat /proc/"$pid"/task/*/children 2>/dev/null || true)"
  for p in $procs; do
    [[ -r /proc/$p/status ]] || continue
    hwm=$(( hwm + $(awk '/^VmHWM/ {print $2}' "/proc/$p/status") ))
    rss=$(( rss + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status") ))
  done
  echo "$label processes=$(wc -w <<<"$procs") VmHWM_sum=${hwm}kB VmRSS_sum=${rss}kB" \
    "loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)" >>"$OUT/$BACKEND-python-memory.txt"
}

# peer_run WORKERS: FastAPI + fastapi-users on $BACKEND's store under uvicorn --workers WORKERS,
# measured with the wrk commands of velro_side_by_side; stopped by PID, its database dropped.
# (Called in an `||` list, where bash ignores set -e: hence the explicit `|| return`.)
peer_run() {
  local workers=$1 name=python-w$1 url dbname= status=0
  case $BACKEND in
    sqlite) url="sqlite+aiosqlite:///$TMP/peer-$name.db" ;;
    postgres)
      dbname=peer_w$workers
      psql_admin "DROP DATABASE IF EXISTS $dbname" || return 1
      psql_admin "CREATE DATABASE $dbname" || return 1
      url="postgresql+asyncpg://postgres@127.0.0.1:$PGPORT/$dbname"
      ;;
  esac
  # Tables first, once, so that workers do not race on CREATE TABLE.
  (cd "$BENCH/python" && DATABASE_URL=$url "$VENV/bin/python" -c 'import asyncio, app
async def main():
    async with app.engine.begin() as c: await c.run_sync(app.Base.metadata.create_all)
    await app.engine.dispose()
asyncio.run(main())') || return 1
  local port; port=$(free_port)
  (cd "$BENCH/python" && DATABASE_URL=$url exec "$VENV/bin/uvicorn" app:app --host 127.0.0.1 \
    --port "$port" --workers "$workers" --loop uvloop --http httptools --no-access-log \
    --log-level warning) >"$OUT/$BACKEND-$name-server.log" 2>&1 &
  local pid=$! p
  PIDS+=("$pid")
  peer_measure "$name" "$pid" "http://127.0.0.1:$port" "${url%%:*}" || status=1
  local children; children=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
  stop_pid "$pid"
  for p in $children; do stop_pid "$p"; done  # uvicorn's supervisor stops them; just in case
  if [[ -n $dbname ]]; then psql_admin "DROP DATABASE $dbname WITH (FORCE)" || status=1; fi
  return $status
}

# peer_measure NAME PID BASE_URL DRIVER: the peer's account and token, then the three wrk runs.
peer_measure() {
  local name=$1 pid=$2 base=$3 p form token
  wait_http "$base/docs" 60 || return 1
  log "$BACKEND $name: uvicorn --workers ${name#python-w} on $base (pid $pid), $4"
  for p in $(cat /proc/"$pid"/task/*/children 2>/dev/null || true); do PIDS+=("$p"); done
  peer_memory "$pid" "$name start"
  curl -fsS -X POST "$base/auth/register" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$SBS_EMAIL\", \"password\": \"$SBS_PASSWORD\"}" >/dev/null || return 1
  form=$(python3 -c 'import sys, urllib.parse as u; print(u.urlencode({"username": sys.argv[1], "password": sys.argv[2]}))' \
    "$SBS_EMAIL" "$SBS_PASSWORD")
  token=$(curl -fsS -X POST "$base/auth/jwt/login" -H 'Content-Type: application/x-www-form-urlencoded' \
    --data "$form" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])') || return 1
  curl -fsS "$base/users/me" -H "Authorization: Bearer $token" >"$OUT/$BACKEND-$name-me-response.txt" || return 1
  # shellcheck disable=SC2046
  wrk_cmd "$name-me-wrk" "$base/users/me" $(wrk_me_opts) -H "Authorization: Bearer $token"
  peer_memory "$pid" "$name me-wrk"
  # shellcheck disable=SC2046
  WRK_SCRIPT=$BENCH/python/login.lua WRK_BODY=$form WRK_CONTENT_TYPE=application/x-www-form-urlencoded \
    wrk_cmd "$name-login-wrk-c8" "$base/auth/jwt/login" $(wrk_hash_opts)
  peer_memory "$pid" "$name login-wrk-c8"
  settle
  # shellcheck disable=SC2046
  WRK_SCRIPT=$BENCH/python/register.lua WRK_PASSWORD=$SBS_PASSWORD \
    wrk_cmd "$name-register-wrk-c8" "$base/auth/register" $(wrk_hash_opts)
  peer_memory "$pid" "$name register-wrk-c8"
}

stop_pid() {
  kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

# --- runs ----------------------------------------------------------------------------------
for BACKEND in $BACKENDS; do
  case $BACKEND in
    sqlite)
      start_server sqlite
      ;;
    postgres)
      [[ -z "$PGDATA" ]] && start_postgres
      [[ -z "${REDIS_PORT:-}" ]] && start_redis
      start_server postgres DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/velro" \
        REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
      ;;
    *) log "unknown backend $BACKEND"; exit 2 ;;
  esac
  if [[ $PEER_ONLY == 1 ]]; then memory start; velro_side_by_side; else run_suite; fi
  stop_server
  if [[ $PYTHON_PEER == 1 ]]; then
    for w in $PEER_WORKERS; do
      peer_run "$w" || log "$BACKEND python-w$w: the peer's run failed (see $BACKEND-python-w$w-server.log)"
    done
  fi
done

python3 "$BENCH/summarize.py" "$OUT" >"$OUT/summary.md"
cat "$OUT/summary.md"
log "results in $OUT"
