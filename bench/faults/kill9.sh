#!/usr/bin/env bash
# Fault 5: kill -9 mid-write, on SQLite and on PostgreSQL (issue 11). Under a write-heavy mixed
# load, 6 s in:
#   sqlite    velro is SIGKILLed (the database is embedded: its process is the one that dies);
#   postgres  velro AND every PostgreSQL process (the postmaster and its children, by PID) are
#             SIGKILLed at the same instant: a crash of the whole box, short of power loss.
# Then PostgreSQL is started (crash recovery: its log must say the database system is ready,
# and pg_amcheck must find no corrupt heap or index), velro is started on the same database,
# SQLite's file is checked with PRAGMA integrity_check (after velro reopened it and recovered
# its WAL), every acknowledged (201) registration is looked up, and every session's last
# acknowledged refresh token is presented again. About 25 s per backend plus the build.
#
# What this does not cover: power loss. SQLite runs with synchronous=NORMAL in WAL mode, which is
# durable across a process crash (the WAL is in the OS's page cache) but may lose the last
# transactions on power loss; PostgreSQL runs with its defaults (fsync on, synchronous_commit on).
#
#   bench/faults/kill9.sh                   FAULT_BACKENDS="sqlite postgres" (default)
FAULT_NAME=kill9
source "$(dirname "$0")/lib.sh"
BACKENDS=${FAULT_BACKENDS:-sqlite postgres}

build
status=0
for backend in $BACKENDS; do
  FAULT_NAME=kill9-$backend
  : >"$MARKS"
  env_db=()
  if [[ $backend == postgres ]]; then
    [[ -n $PGDATA ]] || start_postgres
    env_db=(DATABASE_URL="$DATABASE_URL")
  fi
  name=$backend
  start_velro "$name" "${env_db[@]}"
  pid=$(velro_pid "$name")
  LOAD=$TMP/load-$backend
  start_load "$LOAD" --host "$(velro_url "$name")" --duration 40 --me-workers 2 --me-rate 20 \
    --register-workers 3 --register-rate 4 --refresh-workers 3 --refresh-rate 5 --login-workers 0

  sleep 6
  facts=()
  if [[ $backend == postgres ]]; then
    pm=$(pg_pid)
    children=$(pgrep -P "$pm" | tr '\n' ' ')
    mark kill
    # shellcheck disable=SC2086
    kill -KILL "$pid" "$pm" $children
    log "SIGKILLed velro ($pid) and PostgreSQL ($pm; children $children)"
  else
    mark kill
    kill -KILL "$pid"
    log "SIGKILLed velro ($pid)"
  fi
  wait "$pid" 2>/dev/null || true
  sleep 1
  kill -TERM "$LOAD_PID"
  wait_load

  if [[ $backend == postgres ]]; then
    for _ in $(seq 50); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
    log_lines_before=$(wc -l <"$PGLOG")
    pg_ctl_start
    recovery_log=$(tail -n +"$((log_lines_before + 1))" "$PGLOG")
    echo "--- PostgreSQL's log after the crash:" >&2
    grep -E 'not properly shut down|redo|ready to accept|PANIC|FATAL' <<<"$recovery_log" | cut -c1-200 >&2 || true
    if grep -q 'ready to accept connections' <<<"$recovery_log" && ! grep -q PANIC <<<"$recovery_log"; then
      amcheck=$(pg_run "$PGBIN/pg_amcheck" -h 127.0.0.1 -p "$PGPORT" -U postgres -d velro \
        --install-missing --heapallindexed 2>&1 && echo "pg_amcheck: no corruption (exit 0)" || echo "pg_amcheck exit $?")
      echo "$amcheck" | tail -3 >&2
      if [[ $amcheck == *"exit 0"* ]]; then
        facts+=(--fact "integrity=ok")
      else
        facts+=(--fact "integrity=pg_amcheck: $(tail -1 <<<"$amcheck")")
      fi
    else
      facts+=(--fact "integrity=PostgreSQL did not start cleanly")
    fi
  fi

  start_velro "$name" "${env_db[@]}"
  url=$(velro_url "$name")
  ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/health/ready" || true)
  facts+=(--fact "restarted_ok=$([[ $ready == 200 ]] && echo yes || echo no)" --fact "restarted_detail=/health/ready $ready")
  acked=$(wc -l <"$LOAD/acked-registrations.txt")
  if [[ $backend == postgres ]]; then
    in_db=$(count_acked_postgres "$LOAD/acked-registrations.txt")
  else
    in_db=$(count_acked_sqlite "$LOAD/acked-registrations.txt" "$TMP/data-$name/velro.db")
    integrity=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$TMP/data-$name/velro.db")
    facts+=(--fact "integrity=$integrity")
  fi
  refresh_check=$(python3 "$FAULTS/mixload.py" check-refresh --host "$url" --chains "$LOAD/refresh-chains.json")
  report kill9 "$LOAD" --title "kill -9 mid-write on $backend" \
    --fact acked="$acked" --fact acked_in_db="$in_db" --fact refresh_check="$refresh_check" \
    "${facts[@]}" || status=1
  stop_pid "$(velro_pid "$name")"
done
exit $status
