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
# and, for the realistic mix of issue 11's soak (each off at 0, the default):
#   me       SOAK_ME_RATE token checks/s (open model, 50 connections): most of the traffic
#   refresh  SOAK_REFRESH_RATE refreshes/s (open model, 20 rotating sessions)
#   password one password change every SOAK_PASSWORD_EVERY_SECS (curl, one account, back and
#            forth between two passwords; each also revokes the account's other sessions)
# Every velro-load process runs in segments of SOAK_SEGMENT_SECS (default: the whole run) with a
# JSON report each, so that bench/soak-summary.py can compare each endpoint's p99 in the first
# segment with the last; the samples are kept too, for the memory slope and the database size.
# Sampled: the SQLite file and its -wal (bytes; on PostgreSQL the database's size and the dead
# tuples of sessions + refresh_tokens that autovacuum has not reclaimed yet), the rows per table,
# the bytes per table (SQLite's dbstat; PostgreSQL's pg_total_relation_size, indexes and TOAST
# included), the server's RSS, and the rows the purge removed so far (velro_purge_rows_total).
#
# Settings (environment):
#   SOAK_SECS=240  SOAK_SAMPLE_SECS=15  SOAK_BACKENDS="sqlite"  (or "sqlite postgres")
#   SOAK_PURGE_INTERVAL_SECS=10  SOAK_PURGE_RETENTION_SECS=30  SOAK_REFRESH_TTL_SECS=60
#   SOAK_JOURNEY_USERS=4  SOAK_THINK_MS=100  SOAK_LOGIN_RATE=10
#   SOAK_ME_RATE=0  SOAK_REFRESH_RATE=0  SOAK_PASSWORD_EVERY_SECS=0  SOAK_SEGMENT_SECS=$SOAK_SECS
#   SOAK_ARGON2_MEMORY_KIB=1024  SOAK_ARGON2_ITERATIONS=1  (19456 and 2 for OWASP's, the default's)
#   SOAK_OUT=<dir>        keep the reports and samples there (default: deleted with the run)
#   SOAK_NO_BUILD=1       use target/release/velro and target/release/velro-load as they are
# Hashing is cheap by default (VELRO_ARGON2_MEMORY_KIB=1024, one iteration): the purge soak is
# about rows, and cheap hashes let the two shared cores write more of them. Rate limits are off.
# The realistic mix of issue 11 (10 minutes, real hashes), as RELIABILITY.md reports it:
#   SOAK_SECS=600 SOAK_SEGMENT_SECS=60 SOAK_SAMPLE_SECS=30 SOAK_ME_RATE=400 SOAK_REFRESH_RATE=40 \
#   SOAK_LOGIN_RATE=2 SOAK_JOURNEY_USERS=4 SOAK_THINK_MS=500 SOAK_PASSWORD_EVERY_SECS=5 \
#   SOAK_ARGON2_MEMORY_KIB=19456 SOAK_ARGON2_ITERATIONS=2 SOAK_OUT=/tmp/soak bench/soak-purge.sh
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
ME_RATE=${SOAK_ME_RATE:-0}
REFRESH_RATE=${SOAK_REFRESH_RATE:-0}
PASSWORD_EVERY=${SOAK_PASSWORD_EVERY_SECS:-0}
SEGMENT=${SOAK_SEGMENT_SECS:-$SECS}
ARGON2_MEMORY=${SOAK_ARGON2_MEMORY_KIB:-1024}
ARGON2_ITERATIONS=${SOAK_ARGON2_ITERATIONS:-1}
# The retention must cover an access token's lifetime plus the leeway (5 s).
ACCESS_TTL=$(( RETENTION > 10 ? RETENTION - 5 : 5 ))
# The token-check scenario signs in once per segment and checks that one access token until the
# segment ends: a segment longer than the token's life would count expired tokens' 401s.
if (( ME_RATE > 0 && SEGMENT > ACCESS_TTL )); then
  echo "soak: SOAK_SEGMENT_SECS=$SEGMENT is longer than the access tokens' ${ACCESS_TTL} s" \
    "(SOAK_PURGE_RETENTION_SECS - 5) while SOAK_ME_RATE is on; shorten the segments or raise" \
    "the retention" >&2
  exit 2
fi
TMP=$(mktemp -d /tmp/velro-soak.XXXXXX)
OUT=${SOAK_OUT:-$TMP/out}
mkdir -p "$OUT"
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
SERVER_BIN=${SOAK_SERVER_BIN:-$ROOT/target/release/velro}
LOAD_BIN=${SOAK_LOAD_BIN:-$ROOT/target/release/velro-load}

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

any_running() { local pid; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done; return 1; }

# segmented SCENARIO ARGS...: velro-load SCENARIO in segments of SEGMENT seconds until SECS have
# passed, one JSON report per segment ($OUT/SCENARIO-BACKEND-N.json).
segmented() {
  local scenario=$1 started=$SECONDS n=0 left
  shift
  while (( (left = SECS - (SECONDS - started)) > 0 )); do
    n=$((n + 1))
    nice -n 5 "$LOAD_BIN" "$scenario" --host "$HOST" "$@" \
      --duration-secs $(( left < SEGMENT ? left : SEGMENT )) \
      --report-json "$OUT/$scenario-$BACKEND-$(printf %02d "$n").json" \
      >>"$OUT/$scenario-$BACKEND.txt" 2>&1 || echo "velro-load $scenario failed" >>"$OUT/$scenario-$BACKEND.txt"
  done
}

# change_passwords: one account signs in and changes its password every PASSWORD_EVERY seconds,
# back and forth; one line per change: seconds since the start, status, seconds taken (a failed
# sign-in is logged as status "login-failed").
change_passwords() {
  local email="soak-password-$RANDOM$RANDOM@example.com" one="soak password one 1" \
    two="soak password two 2" token started=$SECONDS status
  curl -fsS -o /dev/null -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$one\"}" "$HOST/api/v1/auth/register"
  while (( SECONDS - started < SECS )); do
    token=$(curl -fsS -H 'content-type: application/json' \
      -d "{\"email\":\"$email\",\"password\":\"$one\"}" "$HOST/api/v1/auth/login" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null) \
      || { echo "$((SECONDS - started)) login-failed 0" >>"$OUT/password-$BACKEND.txt"; sleep "$PASSWORD_EVERY"; continue; }
    status=$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' -H "authorization: Bearer $token" \
      -H 'content-type: application/json' \
      -d "{\"current_password\":\"$one\",\"new_password\":\"$two\"}" \
      "$HOST/api/v1/auth/change-password" || echo "000 0")
    echo "$((SECONDS - started)) $status" >>"$OUT/password-$BACKEND.txt"
    [[ ${status%% *} == 200 ]] && { local t=$one; one=$two; two=$t; }
    sleep "$PASSWORD_EVERY"
  done
}

for BACKEND in $BACKENDS; do
  PORT=$(free_port)
  HOST=http://127.0.0.1:$PORT
  DATA=$TMP/$BACKEND
  mkdir -p "$DATA"
  ENV=(
    VELRO_DATA_DIR="$DATA" VELRO_BIND="127.0.0.1:$PORT" VELRO_LOG_LEVEL=warn
    VELRO_RATE_LIMITS=off VELRO_ARGON2_MEMORY_KIB="$ARGON2_MEMORY"
    VELRO_ARGON2_ITERATIONS="$ARGON2_ITERATIONS"
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
  LOADERS=()
  segmented journey --users "$JOURNEY_USERS" --think-ms "$THINK_MS" &
  LOADERS+=("$!")
  segmented login --users 4 --rate "$LOGIN_RATE" &
  LOADERS+=("$!")
  if [[ $ME_RATE != 0 ]]; then
    segmented me --users 50 --rate "$ME_RATE" &
    LOADERS+=("$!")
  fi
  if [[ $REFRESH_RATE != 0 ]]; then
    segmented refresh --users 20 --rate "$REFRESH_RATE" &
    LOADERS+=("$!")
  fi
  if [[ $PASSWORD_EVERY != 0 ]]; then
    change_passwords &
    LOADERS+=("$!")
  fi
  PIDS+=("${LOADERS[@]}")
  echo "   me: ${ME_RATE}/s, refresh: ${REFRESH_RATE}/s, password change every ${PASSWORD_EVERY} s," \
    "segments of ${SEGMENT} s, Argon2 ${ARGON2_MEMORY} KiB x ${ARGON2_ITERATIONS}"
  if [[ $BACKEND == sqlite ]]; then
    printf '%6s %10s %9s %9s %9s %9s %8s %8s %8s %9s %10s\n' t_s db_bytes wal_bytes users \
      sessions live refresh sess+tok_B users_B rss_kib purged
  else
    printf '%6s %10s %9s %9s %9s %9s %8s %8s %8s %9s %10s\n' t_s db_bytes dead_tup users \
      sessions live refresh sess+tok_B users_B rss_kib purged
  fi
  START=$(date +%s)
  while any_running "${LOADERS[@]}"; do
    printf '%6d ' $(( $(date +%s) - START ))
    sample
    sleep "$EVERY"
  done | tee "$OUT/samples-$BACKEND.txt"
  printf '%6d ' $(( $(date +%s) - START )) | tee -a "$OUT/samples-$BACKEND.txt"
  sample | tee -a "$OUT/samples-$BACKEND.txt"
  python3 "$ROOT/bench/soak-summary.py" "$OUT" "$BACKEND" || true
  echo "-- server warnings and errors:"
  grep -Ei 'warn|error' "$TMP/server-$BACKEND.log" | grep -v 'RATE LIMITS' | head -10 || true
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
done
