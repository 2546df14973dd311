#!/usr/bin/env bash
# Soak of the purge (issue 11, "Data that stays bounded"): a release build of velro with a short
# purge interval and retention, a steady mix of sign-ups, logins, refreshes and logouts from
# velro-load, and the database's size sampled every few seconds, printed as a series.
#
# The mix, for SOAK_SECS, from two velro-load processes at once:
#   journey  SOAK_JOURNEY_USERS users, register -> login -> me x3 -> profile -> refresh -> me ->
#            logout, SOAK_THINK_MS between steps: every journey leaves a logged-out session
#            (two refresh tokens) and a registration session that expires after
#            SOAK_REFRESH_TTL_SECS, plus one user (users are the system of record, never purged)
#   login    SOAK_LOGIN_RATE logins/s to one account: sessions never logged out, which expire
# Sampled: the SQLite file and its -wal (bytes; on PostgreSQL the database's size and the dead
# tuples of sessions + refresh_tokens that autovacuum has not reclaimed yet), the rows per table,
# the bytes per table (SQLite's dbstat; PostgreSQL's pg_total_relation_size, indexes and TOAST
# included), the server's RSS, and the rows the purge removed so far (velro_purge_rows_total).
#
# Settings (environment):
#   SOAK_SECS=240  SOAK_SAMPLE_SECS=15  SOAK_BACKENDS="sqlite"  (or "sqlite postgres")
#   SOAK_PURGE_INTERVAL_SECS=10  SOAK_PURGE_RETENTION_SECS=30  SOAK_REFRESH_TTL_SECS=60
#   SOAK_JOURNEY_USERS=4  SOAK_THINK_MS=100  SOAK_LOGIN_RATE=10
#   SOAK_NO_BUILD=1       use target/release/velro and target/release/velro-load as they are
# Hashing is cheap here (VELRO_ARGON2_MEMORY_KIB=1024, one iteration): the soak is about rows,
# and cheap hashes let the two shared cores write more of them. Rate limits are off.
# Everything started here listens on 127.0.0.1 and is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SOAK_SECS:-240}
EVERY=${SOAK_SAMPLE_SECS:-15}
BACKENDS=${SOAK_BACKENDS:-sqlite}
PURGE_INTERVAL=${SOAK_PURGE_INTERVAL_SECS:-10}
RETENTION=${SOAK_PURGE_RETENTION_SECS:-30}
REFRESH_TTL=${SOAK_REFRESH_TTL_SECS:-60}
JOURNEY_USERS=${SOAK_JOURNEY_USERS:-4}
THINK_MS=${SOAK_THINK_MS:-100}
LOGIN_RATE=${SOAK_LOGIN_RATE:-10}
# The retention must cover an access token's lifetime plus the leeway (5 s).
ACCESS_TTL=$(( RETENTION > 10 ? RETENTION - 5 : 5 ))
TMP=$(mktemp -d /tmp/velro-soak.XXXXXX)
PIDS=()
PGDATA=

log() { printf '[soak %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

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
    kill -TERM "$pgpid" 2>/dev/null || true
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

if [[ "${SOAK_NO_BUILD:-0}" != 1 ]]; then
  log "cargo build --release -p velro -p velro-load"
  (cd "$ROOT" && cargo build --release -p velro -p velro-load)
fi
SERVER_BIN=$ROOT/target/release/velro
LOAD_BIN=$ROOT/target/release/velro-load

start_postgres() {
  PGPORT=$(free_port)
  PGDATA=$TMP/pg/data
  mkdir -p "$TMP/pg"
  chown postgres "$TMP/pg"
  chmod 755 "$TMP"
  runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$PGDATA" -A trust -U postgres \
    >"$TMP/pg/initdb.log" 2>&1
  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -w -l "$TMP/pg/server.log" \
    -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1" start >>"$TMP/pg/initdb.log" 2>&1
  psql_velro postgres 'CREATE DATABASE velro' >/dev/null
  log "PostgreSQL 15 on 127.0.0.1:$PGPORT, default autovacuum settings"
}

psql_velro() { # database, SQL: unaligned, tab-separated rows
  PGOPTIONS='-c client_min_messages=warning' runuser -u postgres -- /usr/lib/postgresql/15/bin/psql \
    -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$1" -v ON_ERROR_STOP=1 -AtF $'\t' -qc "$2"
}

TABLES="users sessions refresh_tokens password_reset_tokens"

# One sample's columns after the time, for the backend in $BACKEND.
sample() {
  local rss purged counts sizes
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
  purged=$(curl -fsS "$HOST/metrics" 2>/dev/null \
    | awk '/^velro_purge_rows_total/ {s += $2} END {printf "%d", s}')
  local count_sql="SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions),
    (SELECT count(*) FROM sessions WHERE revoked_at IS NULL), (SELECT count(*) FROM refresh_tokens)"
  if [[ $BACKEND == sqlite ]]; then
    local db=$DATA/velro.db
    counts=$(sqlite3 -readonly -cmd '.timeout 5000' -separator ' ' "$db" "$count_sql")
    sizes=$(sqlite3 -readonly -cmd '.timeout 5000' -separator ' ' "$db" \
      "SELECT COALESCE(SUM(pgsize) FILTER (WHERE tbl_name IN ('sessions', 'refresh_tokens')), 0),
              COALESCE(SUM(pgsize) FILTER (WHERE tbl_name = 'users'), 0)
       FROM dbstat JOIN sqlite_schema USING (name)")
    printf '%10d %9d %9s %9s %8s %8s %8s %9s %9s %10s\n' \
      "$(stat -c %s "$db")" "$(stat -c %s "$db-wal" 2>/dev/null || echo 0)" \
      $counts $sizes "$rss" "$purged"
  else
    counts=$(psql_velro velro "$count_sql" | tr '\t' ' ')
    sizes=$(psql_velro velro "SELECT
        pg_total_relation_size('sessions') + pg_total_relation_size('refresh_tokens'),
        pg_total_relation_size('users'), pg_database_size('velro'),
        (SELECT sum(n_dead_tup) FROM pg_stat_user_tables
         WHERE relname IN ('sessions', 'refresh_tokens'))" | tr '\t' ' ')
    printf '%10s %9s %9s %9s %8s %8s %8s %9s %9s %10s\n' \
      "$(echo "$sizes" | cut -d' ' -f3)" "$(echo "$sizes" | cut -d' ' -f4)" $counts \
      $(echo "$sizes" | cut -d' ' -f1-2) "$rss" "$purged"
  fi
}

for BACKEND in $BACKENDS; do
  PORT=$(free_port)
  HOST=http://127.0.0.1:$PORT
  DATA=$TMP/$BACKEND
  mkdir -p "$DATA"
  ENV=(
    VELRO_DATA_DIR="$DATA" VELRO_BIND="127.0.0.1:$PORT" VELRO_LOG_LEVEL=warn
    VELRO_RATE_LIMITS=off VELRO_ARGON2_MEMORY_KIB=1024 VELRO_ARGON2_ITERATIONS=1
    VELRO_PURGE_INTERVAL_SECS="$PURGE_INTERVAL" VELRO_PURGE_RETENTION_SECS="$RETENTION"
    VELRO_ACCESS_TOKEN_TTL_SECS="$ACCESS_TTL" VELRO_REFRESH_TOKEN_TTL_SECS="$REFRESH_TTL"
    VELRO_REMEMBER_ME_REFRESH_TOKEN_TTL_SECS="$REFRESH_TTL"
  )
  if [[ $BACKEND == postgres ]]; then
    [[ -n $PGDATA ]] || start_postgres
    ENV+=(DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/velro")
  fi
  env "${ENV[@]}" "$SERVER_BIN" serve >"$TMP/server-$BACKEND.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_http "$HOST/health" 60
  echo
  echo "== $BACKEND: ${SECS} s, purge every ${PURGE_INTERVAL} s, retention ${RETENTION} s," \
    "refresh tokens live ${REFRESH_TTL} s, access tokens ${ACCESS_TTL} s"
  echo "   journey: $JOURNEY_USERS users, think ${THINK_MS} ms; login: $LOGIN_RATE/s"
  nice -n 5 "$LOAD_BIN" journey --host "$HOST" --users "$JOURNEY_USERS" --think-ms "$THINK_MS" \
    --duration-secs "$SECS" >"$TMP/journey-$BACKEND.txt" 2>&1 &
  PIDS+=("$!")
  JOURNEY_PID=$!
  nice -n 5 "$LOAD_BIN" login --host "$HOST" --users 4 --rate "$LOGIN_RATE" \
    --duration-secs "$SECS" >"$TMP/login-$BACKEND.txt" 2>&1 &
  PIDS+=("$!")
  LOGIN_PID=$!
  if [[ $BACKEND == sqlite ]]; then
    printf '%6s %10s %9s %9s %9s %9s %8s %8s %8s %9s %10s\n' t_s db_bytes wal_bytes users \
      sessions live refresh sess+tok_B users_B rss_kib purged
  else
    printf '%6s %10s %9s %9s %9s %9s %8s %8s %8s %9s %10s\n' t_s db_bytes dead_tup users \
      sessions live refresh sess+tok_B users_B rss_kib purged
  fi
  START=$(date +%s)
  while kill -0 "$JOURNEY_PID" 2>/dev/null || kill -0 "$LOGIN_PID" 2>/dev/null; do
    printf '%6d ' $(( $(date +%s) - START ))
    sample
    sleep "$EVERY"
  done
  printf '%6d ' $(( $(date +%s) - START ))
  sample
  for scenario in journey login; do
    echo "-- velro-load $scenario ($BACKEND):"
    grep -Ei 'requests|errors|failed|status|ops|journeys|p99' "$TMP/$scenario-$BACKEND.txt" \
      | head -20 || tail -20 "$TMP/$scenario-$BACKEND.txt"
  done
  echo "-- server warnings and errors:"
  grep -Ei 'warn|error' "$TMP/server-$BACKEND.log" | grep -v 'RATE LIMITS' | head -10 || true
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
done
