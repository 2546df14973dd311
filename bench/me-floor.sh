#!/usr/bin/env bash
# GET /api/v1/auth/me against its floor (issue 11, "Less overhead per request"): `velro serve`
# (SQLite, cache on) and `velro-floor` (a bare axum handler that only verifies the same HS256
# access token with the same key, crates/velro/src/bin/velro-floor.rs) side by side, the same
# token, the same wrk command, alternately for FLOOR_ROUNDS rounds; prints req/s of each and the
# ratio me / floor per round and over all rounds. Optionally records a perf profile of the
# server during one extra wrk run (FLOOR_PERF=1; perf must be allowed: root or
# kernel.perf_event_paranoid <= 1).
#
# Settings (environment):
#   FLOOR_ROUNDS=3  FLOOR_SECS=8  FLOOR_CONNS=50  FLOOR_THREADS=1 (wrk -t)
#   FLOOR_LOG_LEVEL=warn   the server's VELRO_LOG_LEVEL (info: the access log line on stdout,
#                          written to a file here)
#   FLOOR_SERVER_CPUS / FLOOR_WRK_CPUS   taskset CPU lists (default: no pinning)
#   FLOOR_PERF=1           also `perf record -g` the server for FLOOR_SECS; report in the output dir
#   FLOOR_PERF_ARGS='-F 999 -g'   perf record's sampling options ('-F 199 --call-graph dwarf' attributes
#                          time to Rust callers, which carry no frame pointers)
#   FLOOR_OUT=<dir>        keep logs and the perf report there (default: a temporary folder)
#   FLOOR_NO_BUILD=1       use target/release/velro and target/release/velro-floor as they are
#   FLOOR_SERVER_BIN / FLOOR_FLOOR_BIN   other binaries (an A/B of two builds)
# Both servers listen on free 127.0.0.1 ports and are stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${FLOOR_ROUNDS:-3}
SECS=${FLOOR_SECS:-8}
CONNS=${FLOOR_CONNS:-50}
THREADS=${FLOOR_THREADS:-1}
LEVEL=${FLOOR_LOG_LEVEL:-warn}
BENCH_NAME=floor
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
OUT=${FLOOR_OUT:-$TMP}
mkdir -p "$OUT"

wait_http() {
  for _ in $(seq 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "no answer from $1" >&2; return 1
}

if [[ "${FLOOR_NO_BUILD:-0}" != 1 && -z "${FLOOR_SERVER_BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release -p velro --bins)
fi
SERVER_BIN=${FLOOR_SERVER_BIN:-$ROOT/target/release/velro}
FLOOR_BIN=${FLOOR_FLOOR_BIN:-$ROOT/target/release/velro-floor}

DATA=$TMP/data
mkdir -p "$DATA"
SERVER_PORT=$(free_port)
FLOOR_PORT=$(free_port)
COMMON=(VELRO_DATA_DIR="$DATA" VELRO_RATE_LIMITS=off)
env "${COMMON[@]}" VELRO_BIND="127.0.0.1:$SERVER_PORT" VELRO_LOG_LEVEL="$LEVEL" \
  ${FLOOR_SERVER_CPUS:+taskset -c $FLOOR_SERVER_CPUS} "$SERVER_BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_http "http://127.0.0.1:$SERVER_PORT/health"
# The server wrote the key file first; the floor reads the same one.
env "${COMMON[@]}" VELRO_BIND="127.0.0.1:$FLOOR_PORT" \
  ${FLOOR_SERVER_CPUS:+taskset -c $FLOOR_SERVER_CPUS} "$FLOOR_BIN" >"$OUT/floor.log" 2>&1 &
FLOOR_PID=$!
PIDS+=("$FLOOR_PID")
TOKEN=$(me_token "$SERVER_PORT" floor@example.com)
for port in "$SERVER_PORT" "$FLOOR_PORT"; do wait_me "$port" "$TOKEN"; done

run_wrk() { # PORT SECS: prints req/s
  wrk_me "$1" "$TOKEN" "$2" "$CONNS" "$THREADS" "$OUT/wrk.txt" "${FLOOR_WRK_CPUS:-}"
}

echo "wrk -t$THREADS -c$CONNS -d${SECS}s, log level $LEVEL, server cpus ${FLOOR_SERVER_CPUS:-any}," \
  "wrk cpus ${FLOOR_WRK_CPUS:-any}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
run_wrk "$SERVER_PORT" 2 >/dev/null # warm-up (caches, allocator)
run_wrk "$FLOOR_PORT" 2 >/dev/null
printf '%5s %12s %12s %7s\n' round me_req_s floor_req_s ratio
sum_me=0 sum_floor=0
for round in $(seq "$ROUNDS"); do
  me=$(run_wrk "$SERVER_PORT" "$SECS")
  floor=$(run_wrk "$FLOOR_PORT" "$SECS")
  printf '%5d %12.0f %12.0f %7.3f\n' "$round" "$me" "$floor" "$(echo "$me / $floor" | bc -l)"
  sum_me=$(echo "$sum_me + $me" | bc -l)
  sum_floor=$(echo "$sum_floor + $floor" | bc -l)
done
printf '%5s %12.0f %12.0f %7.3f\n' mean "$(echo "$sum_me / $ROUNDS" | bc -l)" \
  "$(echo "$sum_floor / $ROUNDS" | bc -l)" "$(echo "$sum_me / $sum_floor" | bc -l)"
echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER_PID/status")"

if [[ "${FLOOR_PERF:-0}" == 1 ]]; then
  perf record ${FLOOR_PERF_ARGS:--F 999 -g} -p "$SERVER_PID" -o "$OUT/perf.data" -- sleep "$SECS" \
    >/dev/null 2>"$OUT/perf-record.log" &
  PERF_PID=$!
  sleep 0.3
  run_wrk "$SERVER_PORT" "$SECS" >/dev/null
  wait "$PERF_PID" || true
  perf report -i "$OUT/perf.data" --no-children --sort symbol --percent-limit 0.7 --stdio \
    -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45 >"$OUT/perf-top.txt" || true
  perf report -i "$OUT/perf.data" --children --sort symbol --percent-limit 2 --stdio \
    -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 >"$OUT/perf-children.txt" || true
  echo "-- perf, self time (top items), server during one more wrk run:"
  cat "$OUT/perf-top.txt"
fi
