#!/usr/bin/env bash
# Benchmarks of the Velro auth service on this machine: builds release, starts the server on
# SQLite and then on PostgreSQL + Redis (throwaway instances on free 127.0.0.1 ports), runs the
# scenarios (velro-load for journeys and per-endpoint runs, wrk for raw /health and /me
# throughput), stops everything it started by PID, and writes bench/results/<UTC stamp>/
# (JSON, text, and summary.md from bench/summarize.py).
#
# Settings (environment):
#   BENCH_SECS=15          length of each single-endpoint run
#   BENCH_JOURNEY_SECS=30  length of each journey run (the issue's target run is 60)
#   BENCH_BACKENDS="sqlite postgres"
#   BENCH_LOG_LEVEL=warn   server log level (info logs one line per request)
#   BENCH_SERVER_BIN, BENCH_LOAD_BIN  prebuilt binaries instead of `cargo build --release`
#   BENCH_PYTHON=1         also run the FastAPI + fastapi-users peer (bench/python), if set up
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
SECS=${BENCH_SECS:-15}
JOURNEY_SECS=${BENCH_JOURNEY_SECS:-30}
BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$BENCH/results/$STAMP
TMP=$(mktemp -d /tmp/velro-bench.XXXXXX)
mkdir -p "$OUT"

SERVICE_KEY=bench-service-key-0123456789abcdefghijklmnopqrstuv
JWT_SECRET=bench-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz
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
if [[ -z "${BENCH_SERVER_BIN:-}" || -z "${BENCH_LOAD_BIN:-}" ]]; then
  log "cargo build --release -p velro -p velro-load"
  (cd "$ROOT" && cargo build --release -p velro -p velro-load)
fi
SERVER_BIN=${BENCH_SERVER_BIN:-$ROOT/target/release/velro}
LOAD_BIN=${BENCH_LOAD_BIN:-$ROOT/target/release/velro-load}

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
  runuser -u postgres -- /usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -p "$PGPORT" -U postgres \
    -qc 'CREATE DATABASE velro' >/dev/null
  log "PostgreSQL on 127.0.0.1:$PGPORT (pid $(head -1 "$PGDATA/postmaster.pid"))"
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

# wrk_run NAME PATH [wrk options]: one bounded wrk run, /metrics scraped before and after.
wrk_run() {
  local name=$1 path=$2; shift 2
  log "$BACKEND $name: wrk $* $path"
  curl -fsS "$HOST/metrics" >"$OUT/$BACKEND-$name.metrics-before" || true
  timeout $(( SECS + 60 )) wrk --latency -s "$BENCH/wrk/report.lua" "$@" "$HOST$path" \
    >"$OUT/$BACKEND-$name.wrk.txt" 2>&1 || log "$BACKEND $name: wrk exited with $?"
  curl -fsS "$HOST/metrics" >"$OUT/$BACKEND-$name.metrics-after" || true
  grep -v WRK_JSON "$OUT/$BACKEND-$name.wrk.txt" | head -20 >&2
  memory "$name"
}

token() { # a fresh account's access token
  curl -fsS -X POST "$HOST/api/v1/auth/register" -H 'Content-Type: application/json' \
    -d "{\"email\": \"wrk-$RANDOM$RANDOM@example.com\", \"password\": \"velro load test passphrase 42\"}" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

run_suite() {
  memory start
  # Raw single-endpoint throughput: wrk, one thread (one core at most), 100 connections.
  wrk_run health-wrk /health -t1 -c100 -d"${SECS}s"
  local access; access=$(token)
  cache_flag on
  wrk_run me-wrk-cache-on /api/v1/auth/me -t1 -c100 -d"${SECS}s" -H "Authorization: Bearer $access"
  cache_flag off
  wrk_run me-wrk-cache-off /api/v1/auth/me -t1 -c100 -d"${SECS}s" -H "Authorization: Bearer $access"
  cache_flag on
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
  # Overload: 1000 concurrent logins.
  load overload-login-c1000 login -u 1000 -d 10 --timeout-secs 30
}

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
  run_suite
  stop_server
done

if [[ "${BENCH_PYTHON:-0}" == 1 && -x "$BENCH/python/run-peer.sh" ]]; then
  BENCH_OUT=$OUT LOAD_BIN=$LOAD_BIN SECS=$SECS "$BENCH/python/run-peer.sh" || log "python peer failed"
fi

python3 "$BENCH/summarize.py" "$OUT" >"$OUT/summary.md"
cat "$OUT/summary.md"
log "results in $OUT"
