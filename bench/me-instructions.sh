#!/usr/bin/env bash
# GET /api/v1/auth/me against its floor, counted in user-space instructions per request rather
# than requests per second (issue 11, "Less overhead per request"). Each server runs under
# valgrind's callgrind; after a warm-up the counters are zeroed, wrk sends requests for
# INSN_SECS, the counters are dumped, and the script prints instructions per request for
# `velro serve` (SQLite, cache on) and `velro-floor`, and their ratio. The counts do not depend
# on the machine's speed or on other load, so two builds compare exactly where me-floor.sh's
# req/s scatter by ±0.07; they leave out the kernel (the socket's system calls), which both
# servers share, and say nothing about how fast the instructions run.
#
# Needs valgrind (apt-get install -y valgrind). Settings (environment):
#   INSN_SECS=5  INSN_CONNS=20
#   INSN_SERVER_BIN / INSN_FLOOR_BIN   the binaries (default target/release/velro and
#                          target/release/velro-floor; build them with
#                          `cargo build --release -p velro --bins`)
#   INSN_OUT=<dir>         keep the callgrind files there (callgrind_annotate --inclusive=yes
#                          FILE lists where the instructions go); default a temporary folder
# Both servers listen on free 127.0.0.1 ports and are stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${INSN_SECS:-5}
CONNS=${INSN_CONNS:-20}
SERVER_BIN=${INSN_SERVER_BIN:-$ROOT/target/release/velro}
FLOOR_BIN=${INSN_FLOOR_BIN:-$ROOT/target/release/velro-floor}
BENCH_NAME=insn
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
OUT=${INSN_OUT:-$TMP}
mkdir -p "$OUT"

for tool in valgrind callgrind_control callgrind_annotate wrk; do
  if ! command -v "$tool" >/dev/null; then
    echo "needs $tool (apt-get install -y valgrind wrk)" >&2
    exit 1
  fi
done
for bin in "$SERVER_BIN" "$FLOOR_BIN"; do
  [[ -x $bin ]] || { echo "no binary at $bin: cargo build --release -p velro --bins" >&2; exit 1; }
done

# A user and a token from a native server on the same data folder, which both servers read.
DATA=$TMP/data
mkdir -p "$DATA"
export VELRO_DATA_DIR=$DATA VELRO_RATE_LIMITS=off VELRO_LOG_LEVEL=warn
PORT=$(free_port)
VELRO_BIND="127.0.0.1:$PORT" "$SERVER_BIN" serve >"$OUT/setup.log" 2>&1 &
SETUP_PID=$!
PIDS+=("$SETUP_PID")
for _ in $(seq 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health" 2>/dev/null && break
  sleep 0.1
done
TOKEN=$(me_token "$PORT" insn@example.com)
kill -TERM "$SETUP_PID"
wait "$SETUP_PID" || true

count() { # NAME COMMAND...: prints instructions per request
  local name=$1 port pid requests total
  shift
  port=$(free_port)
  VELRO_BIND="127.0.0.1:$port" valgrind --tool=callgrind \
    --callgrind-out-file="$OUT/$name.callgrind" "$@" >"$OUT/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_me "$port" "$TOKEN" 600 # valgrind starts slowly
  wrk -t1 -c"$CONNS" -d3s -H "authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$port/api/v1/auth/me" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  requests=$(wrk -t1 -c"$CONNS" -d"${SECS}s" -H "authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$port/api/v1/auth/me" | awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -TERM "$pid"
  wait "$pid" || true
  total=$(callgrind_annotate "$(ls -t "$OUT/$name.callgrind".* | head -1)" 2>/dev/null \
    | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo $((total / requests))
}

floor=$(count floor "$FLOOR_BIN")
me=$(count me "$SERVER_BIN" serve)
printf '%-8s %14s\n' server 'instr/request'
printf '%-8s %14d\n' me "$me" floor "$floor"
printf 'ratio floor/me: %.3f\n' "$(echo "$floor / $me" | bc -l)"
