#!/usr/bin/env bash
# A/B of the hashing threads' niceness: a journey (100 users, 1 s think time) with each value in
# NICENESS, one after the other, on the database and Redis given (or SQLite when DATABASE_URL is
# unset). Stops only what it started.
#   DATABASE_URL=postgres://… REDIS_URL=redis://… [BENCH_SERVER_BIN=…] bench/ab-niceness.sh
set -euo pipefail
BIN=${BENCH_SERVER_BIN:-target/release/velro} LOAD=${BENCH_LOAD_BIN:-target/release/velro-load}
SECS=${SECS:-30} NICENESS=${NICENESS:-"10 0"}
TMP=$(mktemp -d)
PID=
trap '[[ -n $PID ]] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
for nice in $NICENESS; do
  VELRO_BIND=127.0.0.1:18101 VELRO_DATA_DIR="$TMP/data-$nice" VELRO_RATE_LIMITS=off VELRO_LOG_LEVEL=warn \
    VELRO_CACHE_NAMESPACE="ab-$nice-$RANDOM" VELRO_HASH_NICENESS=$nice "$BIN" serve >"$TMP/server-$nice.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:18101/health >/dev/null && break; sleep 0.1; done
  curl -sf 127.0.0.1:18101/health >/dev/null || { cat "$TMP/server-$nice.log" >&2; exit 1; }
  echo "== niceness $nice"
  timeout $((SECS + 90)) "$LOAD" journey --host http://127.0.0.1:18101 -u 100 -d "$SECS" --think-ms 1000 \
    --hatch-rate 20 | grep -E '^(login|register|me|refresh|logout|profile) '
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
done
