#!/usr/bin/env bash
# Hot sessions whose L1 entries expire under load (issue 11, the cache stampede): GET /me on the
# open model with a short L1 lifetime, one server binary after the other, SQLite, no Redis (so
# store lookups = l1 misses - coalesced waits). Prints, per binary, the load report's summary and
# the cache counters from /metrics.
#
#   bench/stampede.sh BIN [BIN...]      e.g. a build of the base and one of the change
#   STAMPEDE_USERS=2000 STAMPEDE_RATE=5000 STAMPEDE_SECS=15 STAMPEDE_L1_TTL_MS=1000
#   STAMPEDE_LOAD_BIN=target/release/velro-load
# velro-load's `me` shares min(users, 100) sessions of one account among its users.
set -euo pipefail
LOAD=${STAMPEDE_LOAD_BIN:-target/release/velro-load}
USERS=${STAMPEDE_USERS:-2000}
RATE=${STAMPEDE_RATE:-5000}
SECS=${STAMPEDE_SECS:-15}
TTL=${STAMPEDE_L1_TTL_MS:-1000}
JWT_SECRET=bench-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz
SERVICE_KEY=bench-service-key-0123456789abcdefghijklmnopqrstuv

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

for bin in "$@"; do
  tmp=$(mktemp -d)
  port=$(free_port)
  env VELRO_BIND=127.0.0.1:$port VELRO_DATA_DIR="$tmp" VELRO_JWT_SECRET=$JWT_SECRET \
    VELRO_SERVICE_KEY=$SERVICE_KEY VELRO_LOG_LEVEL=warn VELRO_RATE_LIMITS=off \
    VELRO_CACHE_L1_TTL_MS="$TTL" "$bin" serve >"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.1; done
  echo "== $bin (L1 TTL ${TTL} ms; load average $(cut -d' ' -f1-3 /proc/loadavg))"
  timeout $((SECS + 300)) "$LOAD" me --host "http://127.0.0.1:$port" -u "$USERS" --rate "$RATE" \
    -d "$SECS" --report-json "$tmp/report.json" >"$tmp/load.txt" 2>&1 || echo "velro-load exited $?"
  tail -n 25 "$tmp/load.txt"
  curl -fsS "http://127.0.0.1:$port/metrics" \
    | grep -E '^velro_cache_(lookups|coalesced)_total|^velro_http_requests_total\{.*me' || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
done
