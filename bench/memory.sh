#!/usr/bin/env bash
# The server's peak memory under a short version of bench/run.sh's sequence (issue 11,
# "Memory is part of the overhead"), for one or more server builds or environments, one after
# the other on the same machine: GET /me with wrk (100 connections), logins and sign-ups with 8
# users, 1000 logins/s against the hash pool (open model, mostly refused), a journey with 100
# users, then 2,000 keep-alive connections held (velro-load hold). After each step: VmRSS and
# VmHWM (/proc/PID/status) and smaps_rollup's Anonymous.
#
#   MEM_VARIANTS="base=/path/to/velro new=target/release/velro new-arena2=target/release/velro:MALLOC_ARENA_MAX=2"
#   MEM_SECS=10 (each step)  MEM_CONNS=2000
# A variant is NAME=BINARY[:ENV=VALUE,...]. SQLite, cache on, rate limits off, OWASP Argon2
# defaults. Servers on free 127.0.0.1 ports, stopped by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${MEM_SECS:-10}
CONNS=${MEM_CONNS:-2000}
VARIANTS=${MEM_VARIANTS:-new=$ROOT/target/release/velro}
LOAD_BIN=${MEM_LOAD_BIN:-$ROOT/target/release/velro-load}
TMP=$(mktemp -d /tmp/velro-mem.XXXXXX)
SERVER_PID=

cleanup() {
  local status=$?
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"; sleep 1; kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
mem() {
  printf '%8s %8s %8s' "$(awk '/^VmRSS/ {print int($2/1024)}' "/proc/$SERVER_PID/status")" \
    "$(awk '/^VmHWM/ {print int($2/1024)}' "/proc/$SERVER_PID/status")" \
    "$(awk '/^Anonymous:/ {print int($2/1024)}' "/proc/$SERVER_PID/smaps_rollup")"
}

echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); ${SECS} s per step"
printf '%-14s %-24s %8s %8s %8s\n' variant "after step" "RSS MiB" "HWM MiB" "anon MiB"
for variant in $VARIANTS; do
  name=${variant%%=*}
  rest=${variant#*=}
  bin=${rest%%:*}
  extra=()
  if [[ $rest == *:* ]]; then IFS=, read -r -a extra <<<"${rest#*:}"; fi
  port=$(free_port)
  host=http://127.0.0.1:$port
  rm -rf "$TMP/data"
  env VELRO_DATA_DIR="$TMP/data" VELRO_BIND="127.0.0.1:$port" VELRO_LOG_LEVEL=warn \
    VELRO_RATE_LIMITS=off "${extra[@]}" "$bin" serve >"$TMP/server-$name.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do curl -fsS -o /dev/null "$host/health" 2>/dev/null && break; sleep 0.1; done
  printf '%-14s %-24s %s\n' "$name" "start" "$(mem)"
  token=$(curl -fsS -H 'content-type: application/json' \
    -d '{"email":"mem@example.com","password":"memory bench passphrase"}' \
    "$host/api/v1/auth/register" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  wrk -t1 -c100 -d"${SECS}s" -H "authorization: Bearer $token" "$host/api/v1/auth/me" >/dev/null
  printf '%-14s %-24s %s\n' "$name" "me wrk -c100" "$(mem)"
  "$LOAD_BIN" login --host "$host" -u 8 -d "$SECS" >/dev/null
  printf '%-14s %-24s %s\n' "$name" "login -u 8" "$(mem)"
  "$LOAD_BIN" register --host "$host" -u 8 -d "$SECS" >/dev/null
  printf '%-14s %-24s %s\n' "$name" "register -u 8" "$(mem)"
  "$LOAD_BIN" login --host "$host" -u 200 --rate 1000 -d "$SECS" >/dev/null
  printf '%-14s %-24s %s\n' "$name" "login --rate 1000" "$(mem)"
  "$LOAD_BIN" journey --host "$host" -u 100 -d "$SECS" --think-ms 200 >/dev/null
  printf '%-14s %-24s %s\n' "$name" "journey -u 100" "$(mem)"
  "$LOAD_BIN" hold --host "$host" --connections "$CONNS" --active 0 -d 5 >/dev/null 2>&1
  printf '%-14s %-24s %s\n' "$name" "hold $CONNS conns" "$(mem)"
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=
done
