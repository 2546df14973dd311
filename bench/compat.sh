#!/usr/bin/env bash
# The Supabase (GoTrue) compatibility endpoints beside their v1 equivalents, measured in one run
# with one tool (velro-load) against one release server on 127.0.0.1 (SQLite in a throwaway
# folder, the default Argon2 cost, rate limits off so that sign-in is not throttled):
#
#   sign-in   POST /api/v1/auth/login      vs  POST /auth/v1/token?grant_type=password
#   refresh   POST /api/v1/auth/refresh    vs  POST /auth/v1/token?grant_type=refresh_token
#   get user  GET  /api/v1/auth/me         vs  GET  /auth/v1/user
#
# Each pair runs alternately, v1 then Supabase, ROUNDS times, so both see the same machine; the
# table gives each side's mean req/s and p50/p99 over the rounds, and the ratio Supabase ÷ v1.
# Every run is bounded in time (-d SECS) and in count (--max-operations MAX_OPS). Stops only
# what it started.
#
#   bench/compat.sh                       builds (release) and runs; writes bench/results/compat-<time>/
#   SECS=10 ROUNDS=3 bench/compat.sh      longer
#   SERVER_BIN=… LOAD_BIN=… bench/compat.sh   prebuilt binaries
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SECS=${SECS:-8}
ROUNDS=${ROUNDS:-2}
MAX_OPS=${MAX_OPS:-200000}
# Sign-in is hash-bound: a few users saturate the hash pool; the cheap calls get more.
LOGIN_USERS=${LOGIN_USERS:-8}
USERS=${USERS:-50}
OUT=${1:-bench/results/compat-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"

if [[ -z ${SERVER_BIN:-} || -z ${LOAD_BIN:-} ]]; then
  echo "compat: cargo build --release -p velro -p velro-load" >&2
  cargo build --release --locked -p velro --bin velro -p velro-load --bin velro-load --quiet
fi
SERVER_BIN=${SERVER_BIN:-target/release/velro}
LOAD_BIN=${LOAD_BIN:-target/release/velro-load}

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOST="http://127.0.0.1:$PORT"
# The listen address is VELRO_BIND (not SERVER_BIND: with an unknown name the server listened
# on its default 127.0.0.1:8000 while the check below polled $PORT, and timed out).
env VELRO_BIND="127.0.0.1:$PORT" VELRO_DATA_DIR="$TMP/data" VELRO_RATE_LIMITS=off \
  VELRO_LOG_LEVEL=warn "$SERVER_BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
  curl -sf "$HOST/health" >/dev/null 2>&1 && break
  # A server that exited (bad setting, port taken) is reported at once, with its log.
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
curl -sf "$HOST/health" >/dev/null || {
  cat "$OUT/server.log" >&2
  echo "compat: the server did not start (not answering $HOST/health)" >&2
  exit 1
}

{
  echo "date: $(date -u +%FT%TZ)"
  echo "git_head: $(git rev-parse HEAD 2>/dev/null || echo n/a)"
  echo "cpus: $(nproc)"
  echo "loadavg_at_start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "secs: $SECS rounds: $ROUNDS max_ops: $MAX_OPS login_users: $LOGIN_USERS users: $USERS"
  echo "server: $SERVER_BIN (SQLite, default Argon2, rate limits off), pid $SERVER_PID"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

for round in $(seq "$ROUNDS"); do
  for scenario in login refresh me; do
    users=$USERS
    [[ $scenario == login ]] && users=$LOGIN_USERS
    for surface in v1 supabase; do
      echo "compat: round $round $scenario on $surface (-u $users -d $SECS)" >&2
      timeout $((SECS + 120)) "$LOAD_BIN" "$scenario" --surface "$surface" --host "$HOST" \
        -u "$users" -d "$SECS" --max-operations "$MAX_OPS" \
        --report-json "$OUT/$scenario-$surface-$round.json" >"$OUT/$scenario-$surface-$round.txt"
    done
  done
done
echo "loadavg_at_end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

python3 - "$OUT" "$ROUNDS" >"$OUT/summary.md" <<'EOF'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
pairs = [
    ("sign-in", "login", "POST /api/v1/auth/login", "POST /auth/v1/token?grant_type=password"),
    ("refresh", "refresh", "POST /api/v1/auth/refresh", "POST /auth/v1/token?grant_type=refresh_token"),
    ("get user", "me", "GET /api/v1/auth/me", "GET /auth/v1/user"),
]
def figures(scenario, surface):
    rates, p50s, p99s, errors = [], [], [], 0
    for r in range(1, rounds + 1):
        report = json.load(open(f"{out}/{scenario}-{surface}-{r}.json"))
        [endpoint] = report["endpoints"]
        rates.append(endpoint["throughput_per_sec"])
        p50s.append(endpoint["p50_ms"])
        p99s.append(endpoint["p99_ms"])
        errors += endpoint["errors"]
    mean = lambda xs: sum(xs) / len(xs)
    return mean(rates), rates, mean(p50s), mean(p99s), errors
print("| operation | v1 req/s (rounds) | Supabase req/s (rounds) | Supabase ÷ v1 req/s | v1 p50 / p99 ms | Supabase p50 / p99 ms | errors v1 / Supabase |")
print("|---|---|---|---:|---|---|---|")
for label, scenario, v1_route, sb_route in pairs:
    v1 = figures(scenario, "v1")
    sb = figures(scenario, "supabase")
    rounds_text = lambda f: f"{f[0]:,.0f} ({' / '.join(f'{x:,.0f}' for x in f[1])})"
    ratio = sb[0] / v1[0] if v1[0] else float("nan")
    print(f"| {label}: `{v1_route}` vs `{sb_route}` | {rounds_text(v1)} | {rounds_text(sb)} | {ratio:.2f} | {v1[2]:.2f} / {v1[3]:.2f} | {sb[2]:.2f} / {sb[3]:.2f} | {v1[4]} / {sb[4]} |")
EOF
cat "$OUT/summary.md"
