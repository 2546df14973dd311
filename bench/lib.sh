# Shared by bench/me-floor.sh, bench/me-instructions.sh and bench/conns.sh (sourced, not run): a
# temporary folder TMP, removed on exit; PIDS, the processes this run started, stopped on exit
# (SIGTERM to all, then SIGKILL to any still there after 5 s); free ports; CPU pinning. The
# sourcing script sets BENCH_NAME (the temporary folder's prefix) first.

set -euo pipefail

TMP=$(mktemp -d "/tmp/velro-${BENCH_NAME:-bench}.XXXXXX")
PIDS=()

cleanup() {
  local status=$? pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pin() { # CPUS COMMAND...: taskset when CPUS is set
  local cpus=$1
  shift
  if [[ -n $cpus ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
