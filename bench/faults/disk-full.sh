#!/usr/bin/env bash
# Fault 6: the disk fills up under SQLite (issue 11). velro's data folder is on a tmpfs of
# FAULT_DISK_MB (default 8) MiB mounted for this run (root, and a container that allows mount,
# are needed; the script says so and stops otherwise). Under a mixed load, 8 s in, a filler file
# takes every free byte; 12 s later it is deleted. Checks: while full, writes answer 503 (never
# 500, never a hang) and a log line names the full disk; token checks (/me) keep answering 200;
# writes succeed again within 5 s of space returning; every acknowledged registration is in
# the database at the end, which passes PRAGMA integrity_check. About 40 s plus the build.
#
#   bench/faults/disk-full.sh
FAULT_NAME=disk-full
source "$(dirname "$0")/lib.sh"
MB=${FAULT_DISK_MB:-8}
FULL_SECS=${FAULT_FULL_SECS:-12}

build
DISK=$TMP/disk
mkdir -p "$DISK"
if ! mount -t tmpfs -o "size=${MB}m" tmpfs "$DISK" 2>"$TMP/mount.err"; then
  log "cannot mount a tmpfs here: $(cat "$TMP/mount.err")"
  echo "== disk full on SQLite"
  echo "  VERDICT NOT RUN (mount -t tmpfs is not permitted on this machine)"
  exit 3
fi
MOUNTS+=("$DISK")
log "tmpfs of $MB MiB on $DISK"
FAULT_DATA_DIR=$DISK/data start_velro sqlite
URL=$(velro_url sqlite)
LOAD=$TMP/load
start_load "$LOAD" --host "$URL" --duration $((FULL_SECS + 26)) --me-workers 3 --me-rate 20 \
  --register-workers 2 --register-rate 4 --refresh-workers 3 --refresh-rate 5 --login-workers 1

sleep 8
log "before: $(df -k --output=used,avail "$DISK" | tail -1 | awk '{print "used " $1 " KiB, free " $2 " KiB"}'); $(ls -l "$DISK/data" | awk 'NR>1 {print $NF "=" $5}' | paste -sd' ')"
dd if=/dev/zero of="$DISK/filler" bs=64k status=none 2>/dev/null || true
mark disk_full
log "full: $(df -k --output=avail "$DISK" | tail -1 | tr -d ' ') KiB free"
sleep "$FULL_SECS"
log "at the end of the full period: $(ls -l "$DISK/data" | awk 'NR>1 {print $NF "=" $5}' | paste -sd' ')"
rm -f "$DISK/filler"
mark disk_freed
log "space back: $(df -k --output=avail "$DISK" | tail -1 | tr -d ' ') KiB free"

wait_load
cause=$(plain_log "$TMP/sqlite.log" | grep -iE 'disk is full|no space|SQLITE_FULL|code: 13' | head -1 | cut -c1-300 || true)
echo "--- server log lines at WARN/ERROR (counted):" >&2
plain_log "$TMP/sqlite.log" | grep -E ' (WARN|ERROR) ' | sed -E 's/^[^ ]+ +//; s/request\{[^}]*\}/request/' | cut -c1-240 \
  | sort | uniq -c | sort -rn | head -8 >&2 || true
acked=$(wc -l <"$LOAD/acked-registrations.txt")
in_db=$(count_acked_sqlite "$LOAD/acked-registrations.txt" "$DISK/data/velro.db")
integrity=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$DISK/data/velro.db")
report disk-full "$LOAD" --title "disk full (tmpfs ${MB} MiB) on SQLite under load" --fact integrity="$integrity" \
  --fact log_cause="$cause" --fact acked="$acked" --fact acked_in_db="$in_db"
