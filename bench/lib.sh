# Shared by bench/me-floor.sh, me-floor-ab.sh, me-instructions.sh and conns.sh (sourced, not
# run): a temporary folder TMP, removed on exit; PIDS, the processes this run started, stopped on
# exit (SIGTERM to all, then SIGKILL to any still there after 5 s); free ports; CPU pinning; a
# token for GET /me, waiting for /me, and wrk against it. The sourcing script sets BENCH_NAME
# (the temporary folder's prefix) first.

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

# GET /api/v1/auth/me with an access token, for the scripts that measure it.
ME_PATH=/api/v1/auth/me

me_token() { # PORT EMAIL: registers EMAIL on the server at PORT, prints its access token
  curl -fsS -H 'content-type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"bench passphrase for /me 42\"}" \
    "http://127.0.0.1:$1/api/v1/auth/register" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

wait_me() { # PORT TOKEN [TRIES]: until /me answers 200, every 0.1 s (default 300 tries)
  for _ in $(seq "${3:-300}"); do
    curl -fsS -o /dev/null -H "authorization: Bearer $2" \
      "http://127.0.0.1:$1$ME_PATH" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no answer from /me on port $1" >&2
  return 1
}

wrk_me() { # PORT TOKEN SECS CONNS THREADS OUT [CPUS]: prints req/s; fails if wrk saw errors
  pin "${7:-}" wrk -t"$5" -c"$4" -d"${3}s" -H "authorization: Bearer $2" \
    "http://127.0.0.1:$1$ME_PATH" >"$6"
  if grep -q 'Non-2xx\|Socket errors' "$6"; then
    echo "wrk saw errors on port $1:" >&2
    cat "$6" >&2
    return 1
  fi
  awk '/Requests\/sec/ {print $2}' "$6"
}
