#!/usr/bin/env bash
# Fault 2: PostgreSQL unreachable when velro starts (issue 11). Finds out and prints what the
# service does today, in three cases:
#   refused    DATABASE_URL names a port where nothing listens (connection refused);
#   silent     a listener that completes the TCP handshake and never says a word (a hung host
#              or a firewall that swallows packets after the handshake);
#   late       PostgreSQL is down at start and comes up 5 s later (the operator's usual case).
# For each: whether the process exits, how fast, with what exit status and output (every line,
# so that "one clear line" can be judged; the URL carries a password that must not appear), and
# whether /health and /health/ready answer. The verdict accepts either documented behaviour:
# exit promptly (under 15 s) with a clear line naming PostgreSQL, or keep running not-ready and
# become ready when the database appears. About 60 s plus the build.
#
#   bench/faults/pg-unreachable-start.sh
FAULT_NAME=pg-unreachable-start
source "$(dirname "$0")/lib.sh"
SECRET_PW=fault-db-password-do-not-log
WATCH=${FAULT_WATCH_SECS:-15}

build
verdicts=()

# watch NAME URL: starts velro with DATABASE_URL=URL; watches it for $WATCH s.
# Sets EXITED (yes/no), EXIT_STATUS, EXIT_SECS, HEALTH, READY.
watch_start() {
  local name=$1 url=$2 port started pid
  port=$(free_port)
  : >"$TMP/$name.log"
  started=$(date +%s.%N)
  env VELRO_BIND="127.0.0.1:$port" VELRO_DATA_DIR="$TMP/data-$name" DATABASE_URL="$url" \
    VELRO_JWT_SECRET="$JWT_SECRET" NO_COLOR=1 nice -n "$NICE" "$SERVER_BIN" serve >"$TMP/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  VELRO_PORT=$port VELRO_PID=$pid HEALTH=none READY=none EXITED=no EXIT_STATUS=- EXIT_SECS=-
  local deadline=$((SECONDS + WATCH))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" && EXIT_STATUS=0 || EXIT_STATUS=$?
      EXITED=yes
      EXIT_SECS=$(python3 -c "import time; print(f'{time.time() - $started:.2f}')")
      break
    fi
    local h r
    h=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/health" || true)
    r=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/health/ready" || true)
    [[ $h != 000 ]] && HEALTH=$h
    [[ $r != 000 ]] && READY=$r
    sleep 0.2
  done
}

show() { # NAME: what the operator saw
  local name=$1 lines leaked=no distinct
  lines=$(wc -l <"$TMP/$name.log")
  # The same message as a log line and again on stderr counts once.
  distinct=$(plain_log "$TMP/$name.log" | sed -E 's/^.*(ERROR velro: |^error: )//' | sort -u | wc -l)
  grep -q "$SECRET_PW" "$TMP/$name.log" && leaked=yes
  echo "--- $name: exited=$EXITED status=$EXIT_STATUS after=${EXIT_SECS}s /health=$HEALTH /health/ready=$READY output_lines=$lines distinct_messages=$distinct password_in_output=$leaked"
  plain_log "$TMP/$name.log" | sed 's/^/    | /' | cut -c1-260
}

judge() { # NAME: PASS when it exits promptly with a line naming PostgreSQL and no secret, or stays up
  local name=$1
  if grep -q "$SECRET_PW" "$TMP/$name.log"; then verdicts+=("FAIL $name: the password is in the output"); return; fi
  if [[ $EXITED == yes ]]; then
    if [[ $EXIT_STATUS != 0 ]] && grep -qi 'postgres' "$TMP/$name.log"; then
      verdicts+=("PASS $name: exits (status $EXIT_STATUS) after $EXIT_SECS s with a line naming PostgreSQL")
    else
      verdicts+=("FAIL $name: exits (status $EXIT_STATUS) without a line naming PostgreSQL")
    fi
  elif [[ $READY == 503 ]]; then
    verdicts+=("PASS $name: keeps running, /health/ready 503 (not ready)")
  else
    verdicts+=("FAIL $name: neither exited within $WATCH s nor answered /health/ready 503 (health=$HEALTH ready=$READY): a hang")
  fi
}

# refused: nothing listens on this port.
dead_port=$(free_port)
watch_start refused "postgres://velro:$SECRET_PW@127.0.0.1:$dead_port/velro"
show refused; judge refused
stop_pid "$VELRO_PID" 5

# silent: accepts connections, never answers.
silent_port=$(free_port)
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
held = []
end = time.time() + float(sys.argv[2])
s.settimeout(0.5)
while time.time() < end:
    try: held.append(s.accept()[0])
    except socket.timeout: pass
' "$silent_port" $((WATCH + 10)) &
PIDS+=($!)
sleep 0.3
watch_start silent "postgres://velro:$SECRET_PW@127.0.0.1:$silent_port/velro"
show silent; judge silent
stop_pid "$VELRO_PID" 5

# late: a real PostgreSQL, stopped at velro's start, started 5 s later.
start_postgres
psql_admin "CREATE ROLE velro LOGIN PASSWORD '$SECRET_PW' SUPERUSER"
pg_ctl stop -m fast
WATCH_LATE=$WATCH
(sleep 5; pg_ctl_start) &
PIDS+=($!)
watch_start late "postgres://velro:$SECRET_PW@127.0.0.1:$PGPORT/velro"
show late; judge late
if [[ $EXITED == no ]]; then
  r=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$VELRO_PORT/health/ready" || true)
  echo "    late: /health/ready after PostgreSQL came up: $r"
else
  # What a supervisor (systemd Restart=on-failure, Kubernetes) does next: start it again.
  for _ in $(seq 100); do pg_run "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && break; sleep 0.1; done
  t0=$(date +%s.%N)
  start_velro late2 DATABASE_URL="postgres://velro:$SECRET_PW@127.0.0.1:$PGPORT/velro"
  r=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$(velro_url late2)/health/ready" || true)
  echo "    late, started again once PostgreSQL was up (as a supervisor would): /health/ready $r," \
    "$(python3 -c "import time; print(f'{time.time() - $t0:.2f}')") s after the start"
  grep -q "$SECRET_PW" "$TMP/late2.log" && verdicts+=("FAIL late2: the password is in the output")
  [[ $r == 200 ]] || verdicts+=("FAIL late2: not ready after a restart with PostgreSQL up")
  stop_pid "$(velro_pid late2)" 5
fi
stop_pid "$VELRO_PID" 5

echo "== PostgreSQL unreachable at start-up"
overall=PASS
for v in "${verdicts[@]}"; do echo "  $v"; [[ $v == FAIL* ]] && overall=FAIL; done
echo "  VERDICT $overall"
[[ $overall == PASS ]]
