#!/usr/bin/env python3
"""Summary of one bench/soak-purge.sh backend run: each endpoint's p99 per segment (first vs
last, worst), errors, the password changes, the server's RSS slope and the database size.

usage: soak-summary.py OUT_DIR BACKEND
"""
import glob
import json
import os
import re
import sys


def main(out, backend):
    per_endpoint = {}  # name -> [(scenario, segment, requests, errors, p99)]
    errors = 0
    requests = 0
    for path in sorted(glob.glob(os.path.join(out, f"*-{backend}-[0-9][0-9].json"))):
        scenario, segment = re.match(rf".*/(\w+)-{backend}-(\d+)\.json$", path).groups()
        with open(path) as f:
            report = json.load(f)
        for e in report["endpoints"]:
            per_endpoint.setdefault((scenario, e["name"]), []).append(
                (int(segment), e["requests"], e["errors"], e["p99_ms"], e["outcomes"]))
            errors += e["errors"]
            requests += e["requests"]
    print(f"== {backend}: velro-load segments: {requests} requests, {errors} errors")
    print(f"{'scenario':<9} {'endpoint':<9} {'segs':>4} {'requests':>9} {'errors':>6} "
          f"{'p99 first':>10} {'p99 last':>9} {'p99 worst':>10} {'p99 median':>10}")
    for (scenario, name), rows in sorted(per_endpoint.items()):
        rows.sort()
        p99s = sorted(r[3] for r in rows)
        print(f"{scenario:<9} {name:<9} {len(rows):>4} {sum(r[1] for r in rows):>9} "
              f"{sum(r[2] for r in rows):>6} {rows[0][3]:>10.2f} {rows[-1][3]:>9.2f} "
              f"{max(p99s):>10.2f} {p99s[len(p99s) // 2]:>10.2f}")
    outcomes = {}
    for rows in per_endpoint.values():
        for r in rows:
            for k, v in r[4].items():
                outcomes[k] = outcomes.get(k, 0) + v
    print(f"outcomes (all segments): {outcomes}")
    pw = os.path.join(out, f"password-{backend}.txt")
    if os.path.exists(pw):
        lines = [l.split() for l in open(pw) if l.strip()]
        codes = {}
        for l in lines:
            codes[l[1]] = codes.get(l[1], 0) + 1
        times = sorted(float(l[2]) * 1000 for l in lines)
        if times:
            print(f"password changes: {len(lines)}, statuses {codes}, "
                  f"max {times[-1]:.1f} ms, median {times[len(times) // 2]:.1f} ms")
    samples = []
    for line in open(os.path.join(out, f"samples-{backend}.txt")):
        parts = line.split()
        if len(parts) == 11 and parts[0].isdigit():
            samples.append([float(p) for p in parts])
    if len(samples) >= 3:
        # Memory slope by least squares, after the first minute (start-up, caches filling).
        tail = [s for s in samples if s[0] >= 60] or samples
        n = len(tail)
        mx = sum(s[0] for s in tail) / n
        my = sum(s[9] for s in tail) / n
        sxx = sum((s[0] - mx) ** 2 for s in tail)
        slope = sum((s[0] - mx) * (s[9] - my) for s in tail) / sxx if sxx else 0.0
        print(f"server RSS: {samples[0][9] / 1024:.1f} MiB at {samples[0][0]:.0f} s, "
              f"{tail[0][9] / 1024:.1f} MiB at {tail[0][0]:.0f} s, "
              f"{samples[-1][9] / 1024:.1f} MiB at {samples[-1][0]:.0f} s, "
              f"max {max(s[9] for s in samples) / 1024:.1f} MiB; slope after 60 s "
              f"{slope * 3600 / 1024:+.2f} MiB/hour")
        half = [s for s in samples if s[0] >= samples[-1][0] / 2]
        print(f"database (col 2 = bytes{' + WAL' if backend == 'sqlite' else ''}): "
              f"{samples[0][1] + (samples[0][2] if backend == 'sqlite' else 0):.0f} at start, "
              f"{half[0][1] + (half[0][2] if backend == 'sqlite' else 0):.0f} at {half[0][0]:.0f} s, "
              f"{samples[-1][1] + (samples[-1][2] if backend == 'sqlite' else 0):.0f} at the end; "
              f"sessions+tokens bytes {half[0][7]:.0f} -> {samples[-1][7]:.0f} over the second half; "
              f"rows purged {samples[-1][10]:.0f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
