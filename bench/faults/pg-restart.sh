#!/usr/bin/env bash
# Fault 1: PostgreSQL restarted under a mixed load (issue 11). One velro instance on a throwaway
# PostgreSQL and Redis; mixload.py runs token checks (/me), registrations, refreshes and logins,
# and polls /health/ready every 100 ms. Mid-load: `pg_ctl restart -m fast`; later
# `pg_ctl stop -m fast`, 8 s down, `pg_ctl start`. report.py then checks that failures were 503
# overloaded/timeout and fast, that /me kept answering 200, that the pool recovered within 5 s of
# PostgreSQL's return and that /health/ready reported both. About 45 s plus the build.
#
#   bench/faults/pg-restart.sh            (FAULT_NO_BUILD=1 to skip the build; see lib.sh)
#   FAULT_DOWN_SECS=8 FAULT_REDIS=0 ...   stop length; without Redis (L1 only)
FAULT_NAME=pg-restart
source "$(dirname "$0")/lib.sh"
DOWN=${FAULT_DOWN_SECS:-8}

build
start_postgres
env_redis=()
if [[ ${FAULT_REDIS:-1} == 1 ]]; then start_redis; env_redis=(REDIS_URL="$REDIS_URL"); fi
start_velro a DATABASE_URL="$DATABASE_URL" "${env_redis[@]}"
URL=$(velro_url a)
LOAD=$TMP/load
start_load "$LOAD" --host "$URL" --duration $((DOWN + 32))

sleep 8
mark restart_begin
pg_ctl restart -m fast
mark restart_done
log "PostgreSQL restarted (pid $(pg_pid))"

sleep 10
mark stop_begin
pg_ctl stop -m fast
mark stop_done
sleep "$DOWN"
mark start_begin
pg_ctl_start
mark start_done
log "PostgreSQL back (pid $(pg_pid))"

wait_load
echo "--- server log lines at WARN/ERROR (counted):" >&2
plain_log "$TMP/a.log" | grep -E ' (WARN|ERROR) ' | sed -E 's/^[^ ]+ +//; s/request\{[^}]*\}/request/' \
  | cut -c1-220 | sort | uniq -c | sort -rn | head -8 >&2 || true
report pg-restart "$LOAD" --title "PostgreSQL restarted and stopped ${DOWN} s under load (Redis: ${FAULT_REDIS:-1})" \
  --fact max_failed_secs="${FAULT_MAX_FAILED_SECS:-3.0}" --fact max_recovery_secs=5
