#!/usr/bin/env bash
# A rehearsal of the live switch from Supabase (README, "A switch without downtime"), in one run of
# a minute or two: seeds a Supabase-shaped database (crates/velro-supabasetest) on a throwaway
# PostgreSQL, starts a writer standing in for Supabase still serving (sign-ups, refresh-token
# rotations as GoTrue does them; it records each session's current token), runs `velro import
# supabase` over and over while it writes, stops it (the cut-over), runs the last import, starts
# `velro serve` on that store, and points one official supabase-py client per session at
# /auth/v1 with the token the old system left it (legacy `refresh_tokens` chains and sessions on
# GoTrue's newer HMAC-counter scheme alike): refresh_session, then get_user.
# Then the window: some sessions held back are rotated on Supabase after that last import and,
# with no import after, presented to Velro (refused), then imported once more (accepted).
#
# Settings (environment):
#   REHEARSAL_USERS=500          users seeded before the writer starts
#   REHEARSAL_WRITE_SECS=20      how long the writer serves before the cut-over
#   REHEARSAL_IMPORT_EVERY=3     seconds from one import's start to the next while the writer runs
#   REHEARSAL_WINDOW=60          sessions held back for the window phase (half are rotated)
#   REHEARSAL_STORE=sqlite       Velro's store: sqlite, or postgres (a database on the same cluster)
#   REHEARSAL_NO_BUILD=1         use target/debug/{velro,supabase-seed} as they are
# Output: the report on stdout and in bench/results/rehearsal-<UTC stamp>/summary.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERS=${REHEARSAL_USERS:-500}
WRITE_SECS=${REHEARSAL_WRITE_SECS:-20}
IMPORT_EVERY=${REHEARSAL_IMPORT_EVERY:-3}
WINDOW=${REHEARSAL_WINDOW:-60}
STORE=${REHEARSAL_STORE:-sqlite}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/bench/results/rehearsal-$STAMP
TMP=$(mktemp -d)
PGDATA=
WRITER_PID=
VELRO_PID=
mkdir -p "$OUT"

stop_pid() { # pid: TERM, wait up to 10 s, then KILL; only processes this script started
  local pid=$1
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  stop_pid "$WRITER_PID"
  stop_pid "$VELRO_PID"
  if [[ -n "$PGDATA" && -f "$PGDATA/postmaster.pid" ]]; then
    stop_pid "$(head -1 "$PGDATA/postmaster.pid")"
  fi
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" | tee -a "$OUT/summary.txt"; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

if [[ "${REHEARSAL_NO_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && cargo build --locked -p velro --bin velro -p velro-supabasetest --bin supabase-seed)
fi
VELRO=$ROOT/target/debug/velro
SEED=$ROOT/target/debug/supabase-seed

# The official client, pinned, in the venv .ci/clients uses.
requirements=$ROOT/tests/clients/python/requirements.txt
VENV=$ROOT/target/clients-python-$(sha256sum "$requirements" | cut -c1-12)
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$requirements"
fi
HELPER=("$VENV/bin/python" "$ROOT/bench/import/rehearsal.py")

# A throwaway cluster, trust auth on 127.0.0.1 only.
PGPORT=$(free_port)
PGDATA=$TMP/pg/data
mkdir -p "$TMP/pg" && chown postgres "$TMP/pg" && chmod 755 "$TMP"
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$PGDATA" -A trust -U postgres \
  >"$OUT/initdb.log" 2>&1
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -w -l "$TMP/pg/server.log" \
  -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1" start >>"$OUT/initdb.log" 2>&1
/usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qc 'CREATE DATABASE supabase' \
  >/dev/null
SOURCE=postgres://postgres@127.0.0.1:$PGPORT/supabase
STATE=$TMP/state.json

export VELRO_DATA_DIR=$TMP/velro VELRO_LOG_LEVEL=warn
case $STORE in
  sqlite) ;;
  postgres)
    /usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qc 'CREATE DATABASE velro' \
      >/dev/null
    export DATABASE_URL=postgres://postgres@127.0.0.1:$PGPORT/velro ;;
  *) echo "REHEARSAL_STORE must be sqlite or postgres" >&2; exit 2 ;;
esac
MAP=(--profiles-table public.profiles --map display_name=full_name,role=role,credits=credits)
IMPORTS=0
import_once() { # label
  IMPORTS=$((IMPORTS + 1))
  "$VELRO" import supabase --from "$SOURCE" "${MAP[@]}" >"$OUT/import-$1.txt" 2>>"$OUT/import.err"
}

say "supabase switch rehearsal, $(date -u +%FT%TZ), commit $(git -C "$ROOT" rev-parse --short HEAD), debug build, Velro on $STORE"
say "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared)"
"$SEED" "$SOURCE" 0 "$USERS" --schema 2>>"$OUT/seed.log"
"$VELRO" migrate >>"$OUT/import.err" 2>&1
import_once first
line() { grep "^  $1:" "$OUT/import-$2.txt" | sed 's/^ *//'; } # users|sessions, label
say "seeded $USERS users; first import: $(line users first); $(line sessions first)"

# Supabase keeps serving; the import keeps running.
"${HELPER[@]}" writer --db "$SOURCE" --state "$STATE" --seed "$SEED" --first-new-user "$USERS" \
  2>"$OUT/writer.err" &
WRITER_PID=$!
deadline=$(( $(date +%s) + WRITE_SECS ))
while (( $(date +%s) < deadline )); do
  kill -0 "$WRITER_PID" 2>/dev/null || { say "the writer stopped early: $(cat "$OUT/writer.err")"; exit 1; }
  next=$(( $(date +%s) + IMPORT_EVERY ))
  import_once "loop-$IMPORTS"
  while (( $(date +%s) < next && $(date +%s) < deadline )); do sleep 0.1; done
done
# The cut-over: the old system stops serving; the writer checks its record against the database.
kill -TERM "$WRITER_PID"
if ! wait "$WRITER_PID"; then WRITER_PID=; say "writer failed: $(cat "$OUT/writer.err")"; exit 1; fi
WRITER_PID=
rotations=$(json '["rotations"]' <"$STATE")
signups=$(json '["signups"]' <"$STATE")
say "writer: ${WRITE_SECS} s, $signups sign-ups, $rotations refresh-token rotations; $((IMPORTS - 1)) imports ran meanwhile, one every ${IMPORT_EVERY} s"
import_once last
say "last import, after the cut-over: $(line users last); $(line sessions last)"
say "  (its imported and updated sessions are the window it closes: signed up or rotated on Supabase after the previous import read them)"

# Velro serves the store the imports filled.
PORT=$(free_port)
VELRO_BIND=127.0.0.1:$PORT VELRO_RATE_LIMITS=off "$VELRO" serve >"$OUT/velro.log" 2>&1 &
VELRO_PID=$!
for _ in $(seq 300); do
  curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$VELRO_PID" 2>/dev/null || { say "velro serve exited: $(tail -5 "$OUT/velro.log")"; exit 1; }
  sleep 0.1
done
AUTH=http://127.0.0.1:$PORT/auth/v1

{ read -r MAIN; read -r HELD; } < <("${HELPER[@]}" split --state "$STATE" --window "$WINDOW")
main=$("${HELPER[@]}" clients --url "$AUTH" --state "$STATE" --sessions "$MAIN")
echo "$main" >"$OUT/main-phase.json"
say "main phase: $(json '["clients"]' <<<"$main") supabase-py clients, each refresh_session with its current token then get_user, in $(json '["seconds"]' <<<"$main") s"
say "  requests: $(json '["requests"]' <<<"$main"), failed: $(json '["failed"]' <<<"$main"), forced sign-outs: $(json '["signed_out"]' <<<"$main")"
[[ "$(json '["reasons"]' <<<"$main")" == "{}" ]] || say "  reasons: $(json '["reasons"]' <<<"$main")"

# The window: the held-back sessions; half of them rotate on Supabase after the last import.
ROTATE_NOW=$(tr ',' '\n' <<<"$HELD" | head -n $((WINDOW / 2)) | paste -sd,)
"${HELPER[@]}" rotate --db "$SOURCE" --state "$STATE" --sessions "$ROTATE_NOW"
skipped=$("${HELPER[@]}" clients --url "$AUTH" --state "$STATE" --sessions "$HELD")
echo "$skipped" >"$OUT/window-no-import.json"
say "window, no import after: $WINDOW held-back clients, $((WINDOW / 2)) rotated on Supabase after the last import"
say "  failed: $(json '["failed"]' <<<"$skipped"), forced sign-outs: $(json '["signed_out"]' <<<"$skipped") ($(json '["reasons"]' <<<"$skipped"))"
REFUSED=$(json '["refused"]' <<<"$skipped" | tr -d "[]' ")
import_once window
closed=$("${HELPER[@]}" clients --url "$AUTH" --state "$STATE" --sessions "$REFUSED")
echo "$closed" >"$OUT/window-after-import.json"
say "window closed by one more import ($(line sessions window)):"
say "  the refused clients again with the same tokens: $(json '["clients"]' <<<"$closed"), failed: $(json '["failed"]' <<<"$closed"), forced sign-outs: $(json '["signed_out"]' <<<"$closed")"
say "results in ${OUT#"$ROOT"/}"
# The goal: nobody signed out by the switch itself, and the window closed by the last import.
failures=$(( $(json '["failed"]' <<<"$main") + $(json '["signed_out"]' <<<"$main") \
  + $(json '["failed"]' <<<"$closed") ))
(( failures == 0 )) || { say "GOAL MISSED: failures or forced sign-outs in the main phase or after the closing import"; exit 1; }
