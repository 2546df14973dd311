#!/usr/bin/env bash
# A/B of two velro binaries on SQLite: GET /health and GET /me (cache on), wrk -t1 -c100, served
# alternately for ROUNDS rounds, so both see the same machine. Stops only what it started.
#   OLD_BIN=/path/to/velro-before NEW_BIN=target/release/velro bench/ab-serve.sh
set -euo pipefail
: "${OLD_BIN:?path of the first binary}" "${NEW_BIN:?path of the second binary}"
ROUNDS=${ROUNDS:-3} SECS=${SECS:-8}
TMP=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$TMP"' EXIT
start() { # BIN PORT
  VELRO_BIND=127.0.0.1:$2 VELRO_DATA_DIR="$TMP/data-$2" VELRO_RATE_LIMITS=off VELRO_LOG_LEVEL=warn \
    "$1" serve >"$TMP/server-$2.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do curl -sf "127.0.0.1:$2/health" >/dev/null && return; sleep 0.1; done
  echo "no answer on port $2" >&2; exit 1
}
token() { # PORT
  curl -fsS -X POST "http://127.0.0.1:$1/api/v1/auth/register" -H 'Content-Type: application/json' \
    -d "{\"email\": \"ab$RANDOM$RANDOM@example.com\", \"password\": \"velro load test passphrase 42\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
rps() { awk '/Requests\/sec/ {print $2}'; }
start "$OLD_BIN" 18091
start "$NEW_BIN" 18092
declare -A TOKEN=([18091]=$(token 18091) [18092]=$(token 18092))
for round in $(seq "$ROUNDS"); do
  for port in 18091 18092; do
    which=old; [[ $port == 18092 ]] && which=new
    health=$(timeout $((SECS + 20)) wrk -t1 -c100 -d"${SECS}s" "http://127.0.0.1:$port/health" | rps)
    me=$(timeout $((SECS + 20)) wrk -t1 -c100 -d"${SECS}s" -H "Authorization: Bearer ${TOKEN[$port]}" \
      "http://127.0.0.1:$port/api/v1/auth/me" | rps)
    echo "round $round $which health $health me $me"
  done
done
