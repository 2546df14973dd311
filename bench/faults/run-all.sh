#!/usr/bin/env bash
# Every fault script in turn (one build first), each output kept in
# bench/faults/results/<UTC stamp>/<script>.txt (git-ignored); prints each verdict line and
# exits non-zero when any script failed. About 6 minutes plus the build.
#
#   bench/faults/run-all.sh                 FAULT_ONLY="pg-restart redis-kill" to run a subset
set -uo pipefail
FAULTS=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$FAULTS/../.." && pwd)
SCRIPTS=${FAULT_ONLY:-pg-restart pg-unreachable-start redis-kill sigterm kill9 disk-full}
OUT=$FAULTS/results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
if [[ ${FAULT_NO_BUILD:-0} != 1 && -z ${FAULT_SERVER_BIN:-} ]]; then
  (cd "$ROOT" && nice -n 10 cargo build --release -p velro -p velro-load --locked) || exit 2
fi
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git_head: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo n/a)"
  echo "nproc: $(nproc); loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
status=0
for script in $SCRIPTS; do
  echo "### $script (loadavg $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$OUT/verdicts.txt"
  FAULT_NO_BUILD=1 timeout 600 "$FAULTS/$script.sh" >"$OUT/$script.txt" 2>&1 || status=1
  grep -E '^== |VERDICT' "$OUT/$script.txt" | tee -a "$OUT/verdicts.txt"
done
echo "outputs in $OUT"
exit $status
