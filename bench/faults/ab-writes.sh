#!/usr/bin/env bash
# A/B of two velro binaries on SQLite writes: `velro-load refresh` (one rotating session per
# user: a write transaction per request), served alternately for ROUNDS rounds so that both see
# the same machine. Made to price the SQLite writer's after_release check (a ping per released
# write connection). Stops only what it started.
#   OLD_BIN=/path/to/velro-before NEW_BIN=target/release/velro bench/faults/ab-writes.sh
#   ROUNDS=3 SECS=8 USERS=20 LOAD_BIN=target/release/velro-load
set -euo pipefail
: "${OLD_BIN:?path of the first binary}" "${NEW_BIN:?path of the second binary}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=${ROUNDS:-3} SECS=${SECS:-8} USERS=${USERS:-20}
LOAD_BIN=${LOAD_BIN:-$ROOT/target/release/velro-load}
TMP=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
start() { # BIN PORT
  VELRO_BIND=127.0.0.1:$2 VELRO_DATA_DIR="$TMP/data-$2" VELRO_RATE_LIMITS=off VELRO_LOG_LEVEL=warn \
    nice -n 10 "$1" serve >"$TMP/server-$2.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do curl -sf "127.0.0.1:$2/health" >/dev/null && return; sleep 0.1; done
  echo "no answer on port $2" >&2; exit 1
}
start "$OLD_BIN" 18093
start "$NEW_BIN" 18094
for round in $(seq "$ROUNDS"); do
  for port in 18093 18094; do
    which=old; [[ $port == 18094 ]] && which=new
    timeout $((SECS + 120)) nice -n 10 "$LOAD_BIN" refresh --host "http://127.0.0.1:$port" \
      -u "$USERS" -d "$SECS" --report-json "$TMP/r.json" >/dev/null 2>&1
    python3 - "$TMP/r.json" "$round" "$which" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
e = next(e for e in r["endpoints"] if e["name"] == "refresh")
print(f"round {sys.argv[2]} {sys.argv[3]}: refresh {e['throughput_per_sec']:.0f}/s p50 {e['p50_ms']:.2f} ms "
      f"p99 {e['p99_ms']:.2f} ms errors {e['errors']} (loadavg {open('/proc/loadavg').read().split()[0]})")
PY
  done
done
