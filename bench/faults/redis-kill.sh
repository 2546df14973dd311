#!/usr/bin/env bash
# Fault 3: Redis killed (SIGKILL) and restarted under a mixed load, two velro instances sharing
# one PostgreSQL and one Redis (issue 11). mixload.py spreads its workers over both instances
# and polls /health/ready and /metrics (velro_cache_circuit_open, velro_cache_pubsub_connected)
# every 100 ms. Redis is killed mid-load and started again, empty, on the same port after
# FAULT_REDIS_DOWN_SECS (default 14: longer than the L1 lifetime, so that the staleness probe can
# finish while Redis is away). Three probes (mixload.py probe-logout): a logout on A while Redis
# is away, polled on B until refused (bounded by the L1 lifetime, 10 s by default); the same once
# both instances re-subscribed (their circuits may still be open: reported, bounded by 1 s); and
# once both circuits closed (cross-instance invalidation resumed: under 250 ms here).
# Checks: 0 failed requests, the circuit opened and closed on both instances, both probes.
# About 50 s plus the build.
#
#   bench/faults/redis-kill.sh
FAULT_NAME=redis-kill
source "$(dirname "$0")/lib.sh"
DOWN=${FAULT_REDIS_DOWN_SECS:-14}
L1_MS=${FAULT_L1_TTL_MS:-10000}

build
start_postgres
start_redis
common=(DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" VELRO_CACHE_L1_TTL_MS="$L1_MS")
start_velro a "${common[@]}"
start_velro b "${common[@]}"
A=$(velro_url a) B=$(velro_url b)
LOAD=$TMP/load
start_load "$LOAD" --host "$A" --host "$B" --duration $((DOWN + 30)) --metrics-poll-ms 100

sleep 8
mark redis_kill
kill -KILL "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
log "Redis killed (pid $REDIS_PID)"
# The circuit opens on the first failed calls; the probe starts once it has.
sleep 1
python3 "$FAULTS/mixload.py" probe-logout --a "$A" --b "$B" --timeout $((L1_MS / 1000 + 5)) \
  >"$TMP/probe-during.json"
log "probe while Redis is away: $(cat "$TMP/probe-during.json")"
remaining=$(python3 -c "import time; print(max(0.0, $(grep redis_kill "$MARKS" | cut -d' ' -f2) + $DOWN - time.time()))")
sleep "$remaining"
start_redis "$REDIS_PORT"
mark redis_back

# Invalidation resumes once both instances have re-subscribed: a first probe then (the
# circuit may still be open: an invalidation Redis could not take is retried every 500 ms),
# and a second once both circuits have closed again.
wait_metric() { # NAME VALUE: until both instances export it
  local name
  for name in a b; do
    for _ in $(seq 100); do
      curl -fsS "$(velro_url $name)/metrics" 2>/dev/null | grep -q "^$1 $2" && break
      sleep 0.1
    done
  done
}
wait_metric velro_cache_pubsub_connected 1
mark resubscribed
python3 "$FAULTS/mixload.py" probe-logout --a "$A" --b "$B" --timeout 5 --interval-ms 5 \
  >"$TMP/probe-resubscribed.json"
log "probe after both re-subscribed: $(cat "$TMP/probe-resubscribed.json")"
wait_metric velro_cache_circuit_open 0
mark circuits_closed
python3 "$FAULTS/mixload.py" probe-logout --a "$A" --b "$B" --timeout 5 --interval-ms 5 \
  >"$TMP/probe-after.json"
log "probe after both circuits closed: $(cat "$TMP/probe-after.json")"

wait_load
for name in a b; do
  echo "--- instance $name: cache log lines" >&2
  plain_log "$TMP/$name.log" | grep -iE 'circuit|redis|pub/?sub|feed' | cut -c1-200 | head -12 >&2 || true
done
report redis-kill "$LOAD" --title "Redis SIGKILLed for ${DOWN} s under load, two instances" \
  --fact l1_ttl_secs=$((L1_MS / 1000)) --fact max_lag_ms=250 \
  --fact probe_resubscribed="$(cat "$TMP/probe-resubscribed.json")" \
  --fact probe_during="$(cat "$TMP/probe-during.json")" --fact probe_after="$(cat "$TMP/probe-after.json")"
