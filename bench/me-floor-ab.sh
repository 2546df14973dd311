#!/usr/bin/env bash
# GET /api/v1/auth/me against its floor for two server builds at once (issue 11, "Less overhead
# per request"), when the change to measure is smaller than the drift between two
# bench/me-floor.sh runs. Base, new and `velro-floor` all serve the same token on the same data
# folder; each round runs one wrk (-t1 -cCONNS, unpinned: the issue's measure) against each of
# them, in an order that rotates every round, so all three see the same machine on average.
# Prints every round's req/s, then for base and new: sum of /me's req/s over the floor's, the
# median and the standard deviation of the per-round ratios, and new over base per round.
#
#   ABF_BASE_BIN=/tmp/velro-base bench/me-floor-ab.sh
#
# Settings (environment):
#   ABF_BASE_BIN (required)  ABF_NEW_BIN (default target/release/velro)
#   ABF_FLOOR_BIN (default target/release/velro-floor)
#   ABF_ROUNDS=24  ABF_SECS=3 (whole seconds, wrk -d)  ABF_CONNS=50
# The servers listen on free 127.0.0.1 ports and are stopped by PID on exit. About
# ROUNDS x (3 x SECS + 1) seconds in all.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE_BIN=${ABF_BASE_BIN:?set ABF_BASE_BIN to the base build of velro}
NEW_BIN=${ABF_NEW_BIN:-$ROOT/target/release/velro}
FLOOR_BIN=${ABF_FLOOR_BIN:-$ROOT/target/release/velro-floor}
ROUNDS=${ABF_ROUNDS:-24}
SECS=${ABF_SECS:-3}
CONNS=${ABF_CONNS:-50}
BENCH_NAME=floor-ab
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for bin in "$BASE_BIN" "$NEW_BIN" "$FLOOR_BIN"; do
  [[ -x $bin ]] || { echo "no binary at $bin: cargo build --release -p velro --bins" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }

export VELRO_DATA_DIR=$TMP/data VELRO_RATE_LIMITS=off VELRO_LOG_LEVEL=warn
mkdir -p "$VELRO_DATA_DIR"
NAMES=(base new floor)
declare -A PORT
for name in "${NAMES[@]}"; do PORT[$name]=$(free_port); done
# Base starts first and writes the key file the other two read.
VELRO_BIND="127.0.0.1:${PORT[base]}" "$BASE_BIN" serve >"$TMP/base.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:${PORT[base]}/health" 2>/dev/null && break
  sleep 0.1
done
VELRO_BIND="127.0.0.1:${PORT[new]}" "$NEW_BIN" serve >"$TMP/new.log" 2>&1 &
PIDS+=("$!")
VELRO_BIND="127.0.0.1:${PORT[floor]}" "$FLOOR_BIN" >"$TMP/floor.log" 2>&1 &
PIDS+=("$!")
TOKEN=$(me_token "${PORT[base]}" floor-ab@example.com)
for name in "${NAMES[@]}"; do wait_me "${PORT[$name]}" "$TOKEN"; done

run_wrk() { # NAME SECS: prints req/s
  wrk_me "${PORT[$1]}" "$TOKEN" "$2" "$CONNS" 1 "$TMP/wrk.txt"
}

echo "wrk -t1 -c$CONNS -d${SECS}s per server per round, $ROUNDS rounds; load average" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
for name in "${NAMES[@]}"; do run_wrk "$name" 2 >/dev/null; done # warm-up
for round in $(seq "$ROUNDS"); do
  line="$round"
  for k in 0 1 2; do
    name=${NAMES[$(((k + round) % 3))]}
    line="$line $name=$(run_wrk "$name" "$SECS")"
  done
  echo "$line" | tee -a "$TMP/rounds.txt"
done

python3 - "$TMP/rounds.txt" <<'EOF'
import statistics
import sys

rows = []
for line in open(sys.argv[1]):
    rows.append({k: float(v) for k, v in (item.split("=") for item in line.split()[1:])})
floor = sum(row["floor"] for row in rows)
for name in ("base", "new"):
    ratios = [row[name] / row["floor"] for row in rows]
    print(f"{name:5} req/s, me over floor: sum {sum(row[name] for row in rows) / floor:.3f}"
          f"  median {statistics.median(ratios):.3f}  sd {statistics.stdev(ratios):.3f}"
          f"  range {min(ratios):.3f}-{max(ratios):.3f}  rounds {len(ratios)}")
gain = statistics.median(row["new"] / row["base"] for row in rows)
print(f"new over base, median per round: {gain:.3f}")
EOF
