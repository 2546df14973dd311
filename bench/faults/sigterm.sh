#!/usr/bin/env bash
# Fault 4: SIGTERM during load (a deploy), on SQLite and on PostgreSQL (issue 11). For each
# backend: velro under a write-heavy mixed load (registrations, refreshes, token checks); SIGTERM
# 6 s in; the load keeps sending for 3 s more (new connections must be refused cleanly); then
# velro is started again on the same database and the script counts how many acknowledged (201)
# registrations the database holds, and presents every session's last acknowledged refresh token
# again (200 or refresh_token_reused: the rotation was stored; refresh_token_invalid: lost).
# report.py splits requests into answered before, in flight at, and sent after the signal.
# About 30 s per backend plus the build.
#
#   bench/faults/sigterm.sh                 FAULT_BACKENDS="sqlite postgres" (default)
FAULT_NAME=sigterm
source "$(dirname "$0")/lib.sh"
BACKENDS=${FAULT_BACKENDS:-sqlite postgres}
GRACE=${FAULT_GRACE_SECS:-10}

build
status=0
for backend in $BACKENDS; do
  FAULT_NAME=sigterm-$backend
  : >"$MARKS"
  env_db=()
  if [[ $backend == postgres ]]; then
    [[ -n $PGDATA ]] || start_postgres
    env_db=(DATABASE_URL="$DATABASE_URL")
  fi
  name=$backend
  start_velro "$name" "${env_db[@]}" VELRO_SHUTDOWN_GRACE_SECS="$GRACE"
  pid=$(velro_pid "$name") url=$(velro_url "$name")
  LOAD=$TMP/load-$backend
  start_load "$LOAD" --host "$url" --duration 40 --me-workers 2 --me-rate 20 \
    --register-workers 3 --register-rate 4 --refresh-workers 3 --refresh-rate 5 --login-workers 0

  sleep 6
  mark sigterm
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
  mark exited
  wait "$pid" && exit_status=0 || exit_status=$?
  log "velro exited with status $exit_status"
  sleep 3
  kill -TERM "$LOAD_PID"
  wait_load

  # The same database, the same port: a restarted deploy.
  start_velro "$name" "${env_db[@]}"
  acked=$(wc -l <"$LOAD/acked-registrations.txt")
  if [[ $backend == postgres ]]; then
    in_db=$(count_acked_postgres "$LOAD/acked-registrations.txt")
  else
    in_db=$(count_acked_sqlite "$LOAD/acked-registrations.txt" "$TMP/data-$name/velro.db")
  fi
  refresh_check=$(python3 "$FAULTS/mixload.py" check-refresh --host "$(velro_url "$name")" \
    --chains "$LOAD/refresh-chains.json")
  echo "--- $backend: shutdown log lines" >&2
  plain_log "$TMP/$name.log" | grep -iE 'shutting down|drain|stopped|grace' | cut -c1-200 >&2 || true
  report sigterm "$LOAD" --title "SIGTERM under load on $backend (exit status $exit_status)" \
    --fact grace_secs="$GRACE" --fact acked="$acked" --fact acked_in_db="$in_db" \
    --fact refresh_check="$refresh_check" || status=1
  stop_pid "$(velro_pid "$name")"
done
exit $status
