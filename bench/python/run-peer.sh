#!/usr/bin/env bash
# The side-by-side comparison alone, without the rest of bench/run.sh's suite: Velro and then the
# Python stack of the old backend (FastAPI + fastapi-users, uvicorn with 1 and 2 workers), on
# SQLite and then on PostgreSQL, each measured with the same wrk commands:
#   GET /me:   wrk -t1 -c100 --timeout 10s -d${BENCH_SECS}s --latency -H "Authorization: Bearer <token>"
#   login:     wrk -t1 -c8 --timeout 10s -d${BENCH_SECS}s --latency -s bench/python/login.lua (one account)
#   register:  wrk -t1 -c8 --timeout 10s -d${BENCH_SECS}s --latency -s bench/python/register.lua (new addresses)
# This is `BENCH_PEER_ONLY=1 bench/run.sh`: same settings (BENCH_SECS, BENCH_BACKENDS,
# BENCH_PEER_WORKERS, BENCH_SERVER_BIN, BENCH_NO_BUILD, ...), results and summary.md in
# bench/results/<UTC stamp>/. The older settings SECS, PEER_WORKERS and VELRO_BIN still work.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export BENCH_SECS=${BENCH_SECS:-${SECS:-10}}
export BENCH_PEER_WORKERS=${BENCH_PEER_WORKERS:-${PEER_WORKERS:-1 2}}
if [[ -n ${VELRO_BIN:-} ]]; then export BENCH_SERVER_BIN=${BENCH_SERVER_BIN:-$VELRO_BIN}; fi
exec env BENCH_PEER_ONLY=1 BENCH_PYTHON=1 "$ROOT/bench/run.sh" "$@"
