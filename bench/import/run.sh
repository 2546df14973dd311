#!/usr/bin/env bash
# Throughput of `velro import supabase`: seeds a Supabase-shaped database (the auth schema of
# crates/velro-supabasetest, real bcrypt hashes at cost 10, sessions with refresh-token chains,
# banned, soft-deleted, OAuth-only and hand-inserted rows) on a throwaway PostgreSQL, then times
# the import into Velro on SQLite and on PostgreSQL, a rerun (nothing to write), and a run after
# 1% more sign-ups. Everything runs under `nice`; the machine is shared, so note its load.
#
# Settings (environment):
#   IMPORT_USERS=100000        users to seed
#   IMPORT_BACKENDS="sqlite postgres"
#   IMPORT_NO_BUILD=1          use target/release/{velro,supabase-seed} as they are
# Output: the timings on stdout and in bench/results/import-<UTC stamp>/summary.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERS=${IMPORT_USERS:-100000}
BACKENDS=${IMPORT_BACKENDS:-sqlite postgres}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/bench/results/import-$STAMP
TMP=$(mktemp -d)
PGDATA=
mkdir -p "$OUT"

cleanup() {
  local status=$?
  if [[ -n "$PGDATA" && -f "$PGDATA/postmaster.pid" ]]; then
    local pgpid
    pgpid=$(head -1 "$PGDATA/postmaster.pid")
    kill -TERM "$pgpid" 2>/dev/null || true # the cluster this script started, by its pid
    for _ in $(seq 100); do kill -0 "$pgpid" 2>/dev/null || break; sleep 0.1; done
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
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

if [[ "${IMPORT_NO_BUILD:-0}" != 1 ]]; then
  (cd "$ROOT" && nice -n 10 cargo build --release --locked -p velro --bin velro \
    -p velro-supabasetest --bin supabase-seed)
fi
VELRO=$ROOT/target/release/velro
SEED=$ROOT/target/release/supabase-seed

# A throwaway cluster, trust auth on 127.0.0.1 only.
PGPORT=$(free_port)
PGDATA=$TMP/pg/data
mkdir -p "$TMP/pg" && chown postgres "$TMP/pg" && chmod 755 "$TMP"
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$PGDATA" -A trust -U postgres \
  >"$OUT/initdb.log" 2>&1
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -w -l "$TMP/pg/server.log" \
  -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1" start >>"$OUT/initdb.log" 2>&1
psql_admin() { # SQL [database]
  PGOPTIONS="-c client_min_messages=warning" runuser -u postgres -- \
    /usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -p "$PGPORT" -U postgres \
    -d "${2:-postgres}" -v ON_ERROR_STOP=1 -qc "$1" >/dev/null
}
psql_admin 'CREATE DATABASE supabase'
SOURCE=postgres://postgres@127.0.0.1:$PGPORT/supabase

say "velro import supabase, $USERS users, $(date -u +%FT%TZ), commit $(git -C "$ROOT" rev-parse --short HEAD)"
say "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared with other engineers' builds)"
start=$(now)
nice -n 10 "$SEED" "$SOURCE" 0 "$USERS" --schema 2>>"$OUT/seed.log"
say "seeded in $(since "$start") s"

MAP=(--profiles-table public.profiles --map display_name=full_name,role=role,credits=credits)
run_import() { # label, then environment assignments for velro
  local label=$1; shift
  local start; start=$(now)
  env "$@" VELRO_LOG_LEVEL=warn nice -n 10 "$VELRO" import supabase --from "$SOURCE" "${MAP[@]}" \
    >"$OUT/$label.txt" 2>>"$OUT/$label.err"
  say "$label: $(since "$start") s (load $(cut -d' ' -f1 /proc/loadavg))"
  sed 's/^/    /' "$OUT/$label.txt" | tee -a "$OUT/summary.txt"
}

EXTRA=$(( USERS / 100 ))
for backend in $BACKENDS; do
  # Each backend starts from the same source: drop the extra sign-ups of the previous one.
  psql_admin "DELETE FROM auth.users
    WHERE created_at >= TIMESTAMPTZ '2025-01-01 00:00:00+00' + make_interval(secs => $USERS)" supabase
  case $backend in
    sqlite)
      envs=(VELRO_DATA_DIR="$TMP/velro-sqlite") ;;
    postgres)
      psql_admin "DROP DATABASE IF EXISTS velro" && psql_admin 'CREATE DATABASE velro'
      envs=(DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/velro" VELRO_DATA_DIR="$TMP/velro-pg") ;;
  esac
  run_import "$backend-first" "${envs[@]}"
  run_import "$backend-rerun" "${envs[@]}"
  nice -n 10 "$SEED" "$SOURCE" "$USERS" "$(( USERS + EXTRA ))" 2>>"$OUT/seed.log"
  run_import "$backend-after-$EXTRA-sign-ups" "${envs[@]}"
done
say "results in ${OUT#"$ROOT"/}"
