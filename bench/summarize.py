#!/usr/bin/env python3
"""Turns one bench/results/<stamp>/ folder into markdown tables (stdout). Standard library only."""
import json
import re
import sys
from pathlib import Path

out = Path(sys.argv[1]).resolve()
machine = dict(
    line.split(": ", 1) for line in (out / "machine.txt").read_text().splitlines() if ": " in line
)
cores = int(machine.get("nproc", "1"))


def velro_load(backend, name):
    path = out / f"{backend}-{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def wrk(backend, name):
    path = out / f"{backend}-{name}.wrk.txt"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON "):])
    return None


def metric_sum(text, name, labels):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wrk_hit_ratio(backend, name):
    before = out / f"{backend}-{name}.metrics-before"
    after = out / f"{backend}-{name}.metrics-after"
    if not before.exists() or not after.exists():
        return None
    b, a = before.read_text(), after.read_text()
    d = lambda layer, result: metric_sum(a, "velro_cache_lookups_total", {"layer": layer, "result": result}) - metric_sum(
        b, "velro_cache_lookups_total", {"layer": layer, "result": result})
    lookups = d("l1", "hit") + d("l1", "miss")
    return (d("l1", "hit") + d("l2", "hit")) / lookups if lookups else None


def fmt(value, digits=2):
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio(value):
    return "n/a (no lookup)" if value is None else f"{value * 100:.2f}%"


print(f"Results of `bench/run.sh` in `{out.name}`: {machine.get('nproc')} vCPU {machine.get('cpu')}, "
      f"{machine.get('date_utc')}, server commit {machine.get('server_commit', machine.get('git_head', '?'))[:10]}.\n")

for backend in ["sqlite", "postgres"]:
    if not list(out.glob(f"{backend}-*")):
        continue
    title = "SQLite" if backend == "sqlite" else "PostgreSQL + Redis"
    print(f"## {title}\n")

    print("### GET /me at 100 connections, cache on vs off\n")
    print("| tool | cache | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | L1+L2 hit ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cache in ["on", "off"]:
        w = wrk(backend, f"me-wrk-cache-{cache}")
        if w:
            secs = w["duration_us"] / 1e6
            errors = w["non_2xx_3xx"] + w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
            print(f"| wrk -t1 -c100 | {cache} | {w['requests'] / secs:,.0f} | {w['p50_us'] / 1000:.3f} | "
                  f"{w['p90_us'] / 1000:.3f} | {w['p99_us'] / 1000:.3f} | {w['p999_us'] / 1000:.3f} | "
                  f"{w['max_us'] / 1000:.3f} | {errors} | {ratio(wrk_hit_ratio(backend, f'me-wrk-cache-{cache}'))} |")
    for cache in ["on", "off"]:
        r = velro_load(backend, f"me-cache-{cache}")
        if r and r["endpoints"]:
            e = r["endpoints"][0]
            m = r.get("metrics") or {}
            print(f"| velro-load -u 100 | {cache} | {e['throughput_per_sec']:,.0f} | {e['p50_ms']:.3f} | "
                  f"{e['p90_ms']:.3f} | {e['p99_ms']:.3f} | {e['p999_ms']:.3f} | {e['max_ms']:.3f} | "
                  f"{e['errors']} | {ratio(m.get('cache_hit_ratio'))} |")
    print()

    print("### velro-load runs (latency from the request's start; open model: from its scheduled start)\n")
    print("| run | endpoint | requests | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | outcomes | gen. CPU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    runs = sorted(p.stem[len(backend) + 1:] for p in out.glob(f"{backend}-*.json"))
    reports = {}
    for name in runs:
        r = velro_load(backend, name)
        reports[name] = r
        cpu = r.get("generator_cpu_percent_of_one_core")
        for e in r["endpoints"]:
            outcomes = " ".join(f"{k}:{v}" for k, v in e["outcomes"].items())
            if e.get("errors_p99_ms") is not None:
                outcomes += f" (errors p99 {e['errors_p99_ms']:.3f} ms)"
            print(f"| {name} | {e['name']} | {e['requests']:,} | {e['throughput_per_sec']:,.1f} | {e['p50_ms']:.3f} | "
                  f"{e['p90_ms']:.3f} | {e['p99_ms']:.3f} | {e['p999_ms']:.3f} | {e['max_ms']:.3f} | {e['errors']} | "
                  f"{outcomes} | {fmt(cpu, 0)}% |")
    print()

    print("### Raw throughput with wrk (-t1, one generator thread)\n")
    print("| run | req/s | p50 ms | p99 ms | max ms | non-2xx | socket errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ["health-wrk", "me-wrk-cache-on", "me-wrk-cache-off"]:
        w = wrk(backend, name)
        if w:
            secs = w["duration_us"] / 1e6
            sock = w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
            print(f"| {name} | {w['requests'] / secs:,.0f} | {w['p50_us'] / 1000:.3f} | {w['p99_us'] / 1000:.3f} | "
                  f"{w['max_us'] / 1000:.3f} | {w['non_2xx_3xx']} | {sock} |")
    print()

    print("### Derived figures\n")
    c1 = reports.get("login-c1")
    hash_ms = None
    if c1 and c1["endpoints"]:
        login = c1["endpoints"][0]
        hash_ms = (c1.get("metrics") or {}).get("hash_mean_ms")
        print(f"- single-hash time: mean `velro_hash_duration_seconds` during `login -u 1` = {fmt(hash_ms)} ms; "
              f"sequential login latency mean {login['mean_ms']:.2f} ms, p50 {login['p50_ms']:.2f} ms, p99 {login['p99_ms']:.2f} ms")
    if hash_ms:
        capacity = cores * 1000 / hash_ms
        print(f"- hash-pool capacity = cores ÷ single-hash time = {cores} ÷ {hash_ms:.2f} ms = {capacity:.1f} hashes/s")
        for name, label in [("login-c8", "login"), ("register-c8", "register")]:
            r = reports.get(name)
            if r and r["endpoints"]:
                e = r["endpoints"][0]
                ok = e["requests"] - e["errors"]
                rate = ok / r["window_secs"] if r["window_secs"] else 0
                print(f"- {label} throughput (`{name}`): {rate:.1f}/s successful = {rate / capacity * 100:.0f}% of capacity; "
                      f"p99 {e['p99_ms']:.1f} ms = {e['p99_ms'] / hash_ms:.1f}× the single-hash time")
        for name in ["journey-nothink", "journey-think1s"]:
            r = reports.get(name)
            if r:
                print(f"- `{name}`: {r['journeys_completed']} journeys, {r['journeys_per_sec']:.1f}/s; the hash pool allows "
                      f"{capacity / 2:.1f}/s (two hashes per journey)")
    per_core = []
    for name, label in [("login-c8", "logins/s"), ("refresh-c50", "refreshes/s")]:
        r = reports.get(name)
        if r and r["endpoints"]:
            e = r["endpoints"][0]
            per_core.append(f"{label} per vCPU {(e['requests'] - e['errors']) / r['window_secs'] / cores:,.1f} (velro-load)")
    w = wrk(backend, "me-wrk-cache-on")
    if w:
        per_core.append(f"token checks (GET /me, cache on)/s per vCPU {w['requests'] / (w['duration_us'] / 1e6) / cores:,.0f} (wrk)")
    if per_core:
        print("- per vCPU (the generator shares the cores): " + "; ".join(per_core))
    mem = out / f"{backend}-memory.txt"
    if mem.exists():
        peak = [int(m) for m in re.findall(r"VmHWM:=(\d+)kB", mem.read_text())]
        if peak:
            print(f"- server peak resident memory (VmHWM) over the whole suite: {max(peak) / 1024:.0f} MiB")
    print()

peer = out / "python-peer.md"
if peer.exists():
    print(peer.read_text())
