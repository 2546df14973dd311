# Shared by the fault scripts (sourced, not run): throwaway PostgreSQL, Redis and velro
# instances on free 127.0.0.1 ports, each started and stopped by its PID; the mixed load
# (mixload.py) in the background; event marks; and clean-up of everything this run started.
#
# Settings (environment):
#   FAULT_NO_BUILD=1      use target/release/velro as it is (default: cargo build --release first)
#   FAULT_SERVER_BIN      a prebuilt velro binary
#   FAULT_KEEP=1          keep the run's temporary folder (logs, events) instead of deleting it
#   FAULT_NICE=10         niceness of the servers and the load (the machine may be shared)

set -euo pipefail

FAULTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$FAULTS/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
NICE=${FAULT_NICE:-10}
TMP=$(mktemp -d /tmp/velro-fault.XXXXXX)
chmod 755 "$TMP"
MARKS=$TMP/marks.txt
: >"$MARKS"
PIDS=()
PGDATA=
MOUNTS=()
JWT_SECRET=fault-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz
SERVICE_KEY=fault-service-key-0123456789abcdefghijklmnopqrstuv

log() { printf '[%s %s] %s\n' "${FAULT_NAME:-fault}" "$(date -u +%H:%M:%S.%3N)" "$*" >&2; }

# mark NAME: a timestamped event (fault injected, dependency back, ...) for report.py.
mark() { printf '%s %s\n' "$1" "$(date +%s.%N)" >>"$MARKS"; log "mark $1"; }

stop_pid() { # PID [seconds]: SIGTERM, wait, then SIGKILL; only a PID this script started
  local pid=$1 secs=${2:-15}
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((secs * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  set +e
  # Newest first: the load and the servers before the databases they use.
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}" 5; done
  if [[ -n $PGDATA && -f $PGDATA/postmaster.pid ]]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
  fi
  for dir in "${MOUNTS[@]}"; do umount "$dir" 2>/dev/null; done
  if [[ ${FAULT_KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # URL SECONDS: until it answers 2xx
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  log "no answer from $1 within $2 s"
  return 1
}

build() {
  if [[ -n ${FAULT_SERVER_BIN:-} ]]; then SERVER_BIN=$FAULT_SERVER_BIN; return; fi
  if [[ ${FAULT_NO_BUILD:-0} != 1 ]]; then
    log "nice -n 10 cargo build --release -p velro -p velro-load --locked"
    (cd "$ROOT" && nice -n 10 cargo build --release -p velro -p velro-load --locked)
  fi
  SERVER_BIN=$ROOT/target/release/velro
  [[ -x $SERVER_BIN ]] || { log "no server binary at $SERVER_BIN"; exit 2; }
}

# --- PostgreSQL (as the postgres user when root, like velro-pgtest) ------------------------
pg_run() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() {
  PGPORT=$(free_port)
  mkdir -p "$TMP/pg"
  [[ $(id -u) == 0 ]] && chown postgres "$TMP/pg"
  PGDATA=$TMP/pg/data
  PGLOG=$TMP/pg/server.log
  pg_run "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres >"$TMP/pg/initdb.log" 2>&1
  pg_ctl_start
  psql_admin 'CREATE DATABASE velro'
  DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/velro"
  log "PostgreSQL on 127.0.0.1:$PGPORT (pid $(pg_pid))"
}

pg_ctl_start() {
  pg_run "$PGBIN/pg_ctl" -D "$PGDATA" -w -t 60 -l "$PGLOG" \
    -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null
}

pg_ctl() { pg_run "$PGBIN/pg_ctl" -D "$PGDATA" -w -t 60 "$@" >/dev/null; }

pg_pid() { head -1 "$PGDATA/postmaster.pid" 2>/dev/null; }

psql_admin() { # SQL: prints the result, unaligned, no headers
  PGOPTIONS='-c client_min_messages=warning' pg_run "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" \
    -U postgres -d "${PGDATABASE:-postgres}" -v ON_ERROR_STOP=1 -qAtc "$1"
}

# --- Redis ---------------------------------------------------------------------------------
start_redis() { # [PORT]: a fresh, empty Redis (no persistence)
  REDIS_PORT=${1:-${REDIS_PORT:-$(free_port)}}
  nice -n "$NICE" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    >>"$TMP/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  log "Redis on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"
}

# --- velro ---------------------------------------------------------------------------------
# start_velro NAME [VAR=value ...]: sets VELRO_PID_<NAME>, VELRO_URL_<NAME>; log in $TMP/NAME.log.
# Rate limits stay on, scaled up (all load comes from one IP), so that the limiter's Redis path
# is exercised too. Access lines are off (info for the rest: circuit, pool, shutdown).
start_velro() {
  local name=$1 port; shift
  port=$(eval "echo \${VELRO_PORT_$name:-}")
  [[ -n $port ]] || port=$(free_port)
  env VELRO_BIND="127.0.0.1:$port" VELRO_DATA_DIR="${FAULT_DATA_DIR:-$TMP/data-$name}" \
    VELRO_JWT_SECRET="$JWT_SECRET" VELRO_SERVICE_KEY="$SERVICE_KEY" \
    VELRO_RATE_LIMIT_SCALE=1000 RUST_LOG='info,velro::access=warn' NO_COLOR=1 "$@" \
    nice -n "$NICE" "$SERVER_BIN" serve >>"$TMP/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  eval "VELRO_PID_$name=$pid VELRO_PORT_$name=$port VELRO_URL_$name=http://127.0.0.1:$port"
  wait_http "http://127.0.0.1:$port/health" 60 || { tail -5 "$TMP/$name.log" >&2; return 1; }
  log "velro $name on 127.0.0.1:$port (pid $pid)"
}

plain_log() { sed 's/\x1b\[[0-9;]*m//g' "$1"; } # FILE: a log without colour codes

velro_pid() { eval "echo \$VELRO_PID_$1"; }
velro_url() { eval "echo \$VELRO_URL_$1"; }

# --- load ----------------------------------------------------------------------------------
# start_load DIR [mixload options]: background mixed load; returns once its setup is done
# and the paced load has begun.
start_load() {
  local dir=$1; shift
  mkdir -p "$dir"
  nice -n "$NICE" python3 "$FAULTS/mixload.py" load --out "$dir" "$@" >"$dir/mixload.log" 2>&1 &
  LOAD_PID=$!
  PIDS+=("$LOAD_PID")
  for _ in $(seq 1200); do
    [[ -f $dir/load-started ]] && { log "load running (pid $LOAD_PID): $*"; return 0; }
    kill -0 "$LOAD_PID" 2>/dev/null || { cat "$dir/mixload.log" >&2; return 1; }
    sleep 0.1
  done
  log "load setup did not finish"; return 1
}

wait_load() { # waits for the load to end by itself (its --duration bounds it)
  wait "$LOAD_PID" || log "mixload exited with $?"
}

report() { # MODE DIR [options]: prints the summary and the verdict; exit status 0 = PASS
  python3 "$FAULTS/report.py" "$1" "$2" --marks "$MARKS" "${@:3}"
}

# count_acked_in_db DIR: how many of the acknowledged registrations the database holds.
count_acked_postgres() {
  local file=$1 list
  list=$(sed "s/.*/'&'/" "$file" | paste -sd, -)
  [[ -n $list ]] || { echo 0; return; }
  PGDATABASE=velro psql_admin "SELECT count(*) FROM users WHERE email IN ($list)"
}

count_acked_sqlite() { # FILE DB
  python3 - "$1" "$2" <<'PY'
import sqlite3, sys
emails = [l.strip() for l in open(sys.argv[1]) if l.strip()]
db = sqlite3.connect(f"file:{sys.argv[2]}?mode=ro", uri=True)
have = {r[0] for r in db.execute("SELECT email FROM users")}
print(sum(1 for e in emails if e in have))
PY
}
