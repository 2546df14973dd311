#!/usr/bin/env bash
# Many keep-alive connections on one instance (issue 11, "10,000 concurrent connections"):
# `velro serve` (SQLite, cache on) and `velro-load hold`, which opens CONNS_N connections, makes
# one token check on each, keeps CONNS_ACTIVE of them checking tokens at CONNS_RATE/s in all,
# leaves the others idle (a ping every 30 s keeps them under the server's 65-s idle limit), holds
# them CONNS_SECS, and counts every refused, reset or closed connection and every non-200.
# The server's memory is read from /proc: VmRSS and smaps_rollup's Rss/Anonymous before any
# connection, with every connection open (printed by velro-load as `HOLD open=`) and at the end;
# per connection = (open - before) / connections; once more CONNS_SETTLE_SECS (12) later, with
# the connections still open, to see that waiting connections do not grow.
#
# Open files: the server raises its soft RLIMIT_NOFILE to the hard limit at start-up, and so
# does velro-load; the script sets the hard limit itself with `ulimit -Hn` when it may (root),
# as an operator would (systemd: LimitNOFILE=). Both ends need one descriptor per connection.
#
# Settings (environment):
#   CONNS_N=10000  CONNS_ACTIVE=1000  CONNS_RATE=1000  CONNS_SECS=30  CONNS_CONNECT_RATE=2000
#   CONNS_SETTLE_SECS=12  (the second reading; taken only when CONNS_SECS is longer)
#   CONNS_SERVER_CPUS / CONNS_LOAD_CPUS   taskset CPU lists (default: no pinning)
#   CONNS_NO_BUILD=1      use target/release/velro and target/release/velro-load as they are
#   CONNS_SERVER_BIN      another server binary; CONNS_ENV: extra "NAME=value ..." for the server
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${CONNS_N:-10000}
ACTIVE=${CONNS_ACTIVE:-1000}
RATE=${CONNS_RATE:-1000}
SECS=${CONNS_SECS:-30}
CONNECT_RATE=${CONNS_CONNECT_RATE:-2000}
SETTLE=${CONNS_SETTLE_SECS:-12}
BENCH_NAME=conns
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

memory() { # PID: "VmRSS KiB, Rss KiB, Anonymous KiB"
  printf '%s %s %s' "$(awk '/^VmRSS/ {print $2}' "/proc/$1/status")" \
    "$(awk '/^Rss:/ {print $2}' "/proc/$1/smaps_rollup")" \
    "$(awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup")"
}

if [[ "${CONNS_NO_BUILD:-0}" != 1 && -z "${CONNS_SERVER_BIN:-}" ]]; then
  (cd "$ROOT" && cargo build --release -p velro -p velro-load)
fi
SERVER_BIN=${CONNS_SERVER_BIN:-$ROOT/target/release/velro}
LOAD_BIN=${CONNS_LOAD_BIN:-$ROOT/target/release/velro-load}

# Two descriptors per connection on this machine (both ends), plus files and slack.
want=$(( N + 1024 ))
if (( $(ulimit -Hn) < want )); then ulimit -Hn "$want" 2>/dev/null || true; fi
if (( $(ulimit -Hn) < want )); then
  echo "hard open-file limit $(ulimit -Hn) < $want: raise it (ulimit -Hn, LimitNOFILE=)" >&2
  exit 1
fi
echo "open files: hard limit $(ulimit -Hn); somaxconn $(cat /proc/sys/net/core/somaxconn);" \
  "tcp_max_syn_backlog $(cat /proc/sys/net/ipv4/tcp_max_syn_backlog);" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"

PORT=$(free_port)
HOST=http://127.0.0.1:$PORT
# shellcheck disable=SC2086
env VELRO_DATA_DIR="$TMP/data" VELRO_BIND="127.0.0.1:$PORT" VELRO_LOG_LEVEL=warn \
  VELRO_RATE_LIMITS=off ${CONNS_ENV:-} ${CONNS_SERVER_CPUS:+taskset -c $CONNS_SERVER_CPUS} "$SERVER_BIN" serve \
  >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 300); do curl -fsS -o /dev/null "$HOST/health" 2>/dev/null && break; sleep 0.1; done
echo "server soft limit: $(awk '/Max open files/ {print $4}' "/proc/$SERVER_PID/limits")"
# Warm-up before the first reading: four sign-ups at once, so that both hashing threads have
# hashed (each keeps its Argon2 buffer) and velro-load's own sign-up adds nothing.
WARM=()
for i in 1 2 3 4; do
  curl -fsS -o /dev/null -H 'content-type: application/json' \
    -d "{\"email\":\"warm$i@example.com\",\"password\":\"warm-up passphrase $i\"}" \
    "$HOST/api/v1/auth/register" &
  WARM+=("$!")
done
wait "${WARM[@]}"
sleep 1
read -r rss0 rssr0 anon0 <<<"$(memory "$SERVER_PID")"

pin "${CONNS_LOAD_CPUS:-}" "$LOAD_BIN" hold --host "$HOST" --connections "$N" --active "$ACTIVE" \
  --rate "$RATE" --connect-rate "$CONNECT_RATE" --duration-secs "$SECS" \
  --report-json "$TMP/hold.json" >"$TMP/hold.txt" 2>"$TMP/hold.err" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
for _ in $(seq 1200); do grep -q '^HOLD' "$TMP/hold.err" && break; sleep 0.1; done
sleep 0.5
read -r rss1 rssr1 anon1 <<<"$(memory "$SERVER_PID")"
fds=$(ls "/proc/$SERVER_PID/fd" | wc -l)
# Once more with the connections still open, a while later.
rss3=$rss1 anon3=$anon1 rssr3=$rssr1
if (( SECS > SETTLE + 2 )); then
  sleep "$SETTLE"
  read -r rss3 rssr3 anon3 <<<"$(memory "$SERVER_PID")"
fi
wait "$LOAD_PID" || true
read -r rss2 rssr2 anon2 <<<"$(memory "$SERVER_PID")"
cat "$TMP/hold.err" "$TMP/hold.txt"
echo "server: $fds open descriptors with the connections open"
printf '%-28s %10s %10s %10s\n' "server memory (KiB)" VmRSS Rss Anonymous
printf '%-28s %10s %10s %10s\n' "before" "$rss0" "$rssr0" "$anon0"
printf '%-28s %10s %10s %10s\n' "all connections open" "$rss1" "$rssr1" "$anon1"
printf '%-28s %10s %10s %10s\n' "open, ${SETTLE} s later" "$rss3" "$rssr3" "$anon3"
printf '%-28s %10s %10s %10s\n' "end of the hold" "$rss2" "$rssr2" "$anon2"
echo "per connection (open - before) / $N: VmRSS $(( (rss1 - rss0) * 1024 / N )) B," \
  "Anonymous $(( (anon1 - anon0) * 1024 / N )) B"
echo "per connection ${SETTLE} s later (settled - before) / $N: VmRSS $(( (rss3 - rss0) * 1024 / N )) B," \
  "Anonymous $(( (anon3 - anon0) * 1024 / N )) B"
echo "server peak RSS (VmHWM): $(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER_PID/status")"
grep -Ei 'warn|error' "$TMP/server.log" | grep -v 'RATE LIMITS' | head -5 || true
