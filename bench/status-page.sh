#!/usr/bin/env bash
# Status page render time, server-side: a release velro on SQLite with a full 90-day history
# (one sample per component and minute, 648,000 rows) and four incidents (three open, one
# resolved), then REQUESTS GETs of /status from CONCURRENCY keep-alive clients. The figures are
# the access log's `duration_ms` for route /status (from the request's arrival at the service's
# middleware to its response, rendering included; not the network). Stops only what it started.
#   cargo build --release -p velro && BIN=target/release/velro bench/status-page.sh
set -euo pipefail
BIN=${BIN:-target/release/velro}
REQUESTS=${REQUESTS:-3000} CONCURRENCY=${CONCURRENCY:-4} PORT=${PORT:-18093}
KEY=bench-service-key-0123456789abcdefghijklmnop
TMP=$(mktemp -d)
PID=
trap '[[ -n $PID ]] && kill "$PID" 2>/dev/null; [[ -n ${KEEP:-} ]] || rm -rf "$TMP"' EXIT

VELRO_DATA_DIR="$TMP/data" "$BIN" migrate >"$TMP/migrate.log" 2>&1 || { cat "$TMP/migrate.log"; exit 1; }
# 90 days of minutes for each component; an outage hour on two days.
now=$(($(date +%s) / 60))
sqlite3 "$TMP/data/velro.db" <<SQL
WITH RECURSIVE m(minute) AS (SELECT $now - 90 * 1440 UNION ALL SELECT minute + 1 FROM m WHERE minute < $now - 1)
INSERT INTO status_samples (component, minute, state, reason)
SELECT c.name, m.minute,
       CASE WHEN c.name IN ('auth_api', 'database') AND m.minute BETWEEN $now - 23 * 1440 AND $now - 23 * 1440 + 59 THEN 3 ELSE 0 END,
       'Operational'
FROM m, (SELECT 'auth_api' AS name UNION ALL SELECT 'token_checks' UNION ALL SELECT 'database'
         UNION ALL SELECT 'cache' UNION ALL SELECT 'email') AS c;
SQL
echo "samples: $(sqlite3 "$TMP/data/velro.db" 'SELECT count(*) FROM status_samples')"

BIND=127.0.0.1:$PORT VELRO_DATA_DIR="$TMP/data" VELRO_SERVICE_KEY=$KEY VELRO_LOG_FORMAT=json \
  VELRO_MIGRATE_ON_START=false "$BIN" serve --bind "127.0.0.1:$PORT" >"$TMP/server.log" 2>&1 &
PID=$!
up=
for _ in $(seq ${WAIT_TICKS:-600}); do curl -sf "127.0.0.1:$PORT/health" >/dev/null && { up=1; break; }; sleep 0.1; done
[[ -n $up ]] || { tail -5 "$TMP/server.log"; echo "no answer on port $PORT" >&2; exit 1; }
started_at=$(date +%s.%N)
incident() { # STATUS IMPACT TITLE
  curl -fsS -o /dev/null -X POST "127.0.0.1:$PORT/api/v1/admin/incidents" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d "{\"title\": \"$3\", \"status\": \"$1\", \"impact\": \"$2\",
    \"message\": \"Sign-in takes up to 30 s for some users; we are on it. Updates every hour.\",
    \"components\": [\"auth_api\", \"database\"]}"
}
incident investigating major "Sign-in is slow for some users"
incident identified minor "Password-reset mail is late"
incident monitoring minor "Token checks were slow"
ID=$(curl -fsS -X POST "127.0.0.1:$PORT/api/v1/admin/incidents" -H "authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d '{"title": "Resolved earlier", "status": "investigating",
  "impact": "major", "message": "x"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
curl -fsS -o /dev/null -X PATCH "127.0.0.1:$PORT/api/v1/admin/incidents/$ID" -H "authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d '{"status": "resolved", "message": "Fixed."}'
# The sampler reads the whole history once, in the background, when the service starts.
for _ in $(seq 120); do
  bars=$(curl -fsS "127.0.0.1:$PORT/status.json" | python3 -c 'import json, sys
s = json.load(sys.stdin)
print(sum(1 for c in s["components"] for d in c["history"] if d["state"]), "of",
      sum(len(c["history"]) for c in s["components"]), "from_memory", s["from_memory"])')
  [[ $bars == 450\ of* ]] && break
  sleep 1
done
bytes=$(curl -fsS "127.0.0.1:$PORT/status" | wc -c)
echo "page: $bytes bytes, day bars with data: $bars"
grep -o '"message":"slow statement[^}]*elapsed":"[^"]*"' "$TMP/server.log" | sed 's/.*"elapsed":/history read took /' || true

timeout 300 python3 - "$PORT" "$REQUESTS" "$CONCURRENCY" <<'PY'
import http.client, sys, threading, time
port, total, clients = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
left = [total]; lock = threading.Lock(); failures = []
def client():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while True:
        with lock:
            if left[0] == 0: return
            left[0] -= 1
        conn.request("GET", "/status")
        response = conn.getresponse(); response.read()
        if response.status != 200: failures.append(response.status)
started = time.monotonic()
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(f"client: {total} requests in {time.monotonic() - started:.1f} s, {len(failures)} not 200")
PY
sleep 0.5
python3 - "$TMP/server.log" <<'PY'
import json, sys
durations = []
for line in open(sys.argv[1]):
    try: entry = json.loads(line)
    except ValueError: continue
    fields = entry.get("fields", entry)
    if fields.get("route") == "/status" and "duration_ms" in fields:
        durations.append(float(fields["duration_ms"]))
durations.sort()
def q(p): return durations[min(len(durations) - 1, int(p * len(durations)))]
print(f"server-side /status ({len(durations)} requests): p50 {q(0.5):.3f} ms, p90 {q(0.9):.3f} ms, "
      f"p99 {q(0.99):.3f} ms, max {durations[-1]:.3f} ms")
PY
