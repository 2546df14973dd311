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


def ok_rate(w):
    """2xx/3xx responses per second of a wrk run (wrk counts non-2xx answers as requests)."""
    return (w["requests"] - w["non_2xx_3xx"]) / (w["duration_us"] / 1e6)


def peer_workers(backend):
    found = []
    for p in out.glob(f"{backend}-python-w*-me-wrk.wrk.txt"):
        m = re.match(rf"{backend}-python-w(\d+)-me-wrk\.wrk\.txt$", p.name)
        if m:
            found.append(int(m.group(1)))
    return sorted(found)


def velro_hwm_after(backend, label):
    """Velro's VmHWM (kB) as recorded right after the run LABEL."""
    mem = out / f"{backend}-memory.txt"
    if mem.exists():
        for line in mem.read_text().splitlines():
            m = re.match(rf"{re.escape(label)} .*VmHWM:=(\d+)kB", line)
            if m:
                return int(m.group(1))
    return None


def peer_hwm(backend, workers):
    """Peak, over the peer's runs, of the summed VmHWM (kB) of uvicorn and its workers."""
    mem = out / f"{backend}-python-memory.txt"
    if not mem.exists():
        return None
    peaks = [int(m.group(1)) for line in mem.read_text().splitlines()
             if line.startswith(f"python-w{workers} ") for m in [re.search(r"VmHWM_sum=(\d+)kB", line)] if m]
    return max(peaks) if peaks else None


def ratio_cell(velro, peer, lower_is_better):
    """Velro ÷ Python; for latency and memory also how many times lower (or higher)."""
    if velro is None or peer is None or velro <= 0 or peer <= 0:
        return "–"
    r = velro / peer
    text = f"{r:,.1f}×" if r >= 10 else f"{r:.2f}×" if r >= 0.1 else f"{r:.4f}×"
    if lower_is_better:
        text += f" ({peer / velro:,.1f}× lower)" if r < 1 else f" ({r:,.1f}× higher)"
    return text


def side_by_side(backend):
    workers = peer_workers(backend)
    if not workers:
        if "off" in machine.get("python_peer", ""):
            print("### Side by side with FastAPI + fastapi-users\n\nNot run (BENCH_PYTHON=0).\n")
        return
    versions = out / "python-versions.txt"
    v = dict(l.split(": ", 1) for l in versions.read_text().splitlines() if ": " in l) if versions.exists() else {}
    store = "SQLite file, sqlite+aiosqlite" if backend == "sqlite" else \
        "its own database on the same PostgreSQL, postgresql+asyncpg (no Redis)"
    print("### Side by side with FastAPI + fastapi-users (the old backend's stack), same wrk commands\n")
    print(f"Python {v.get('python', '?')}: fastapi {v.get('fastapi', '?')}, fastapi-users {v.get('fastapi-users', '?')} "
          f"(SQLAlchemy {v.get('SQLAlchemy', '?')}), uvicorn {v.get('uvicorn', '?')} with uvloop + httptools, "
          f"{store}; password hasher: fastapi-users' default, {v.get('default_hasher', '?')}. "
          "Velro: the runs above (default hash parameters, cache on unless said). "
          "Commands, identical for both: `wrk -t1 -c100 --timeout 10s` GET /me with a bearer token; "
          "`wrk -t1 -c8 --timeout 10s` login (one account, again and again; form-encoded for fastapi-users, "
          "JSON for Velro) and register (a new address every request). "
          "req/s counts 2xx answers only. Ratio = Velro ÷ Python.\n")
    runs = {"velro": {k: wrk(backend, n) for k, n in
                      [("me_on", "me-wrk-cache-on"), ("me_off", "me-wrk-cache-off"),
                       ("login", "login-wrk-c8"), ("register", "register-wrk-c8")]}}
    for w in workers:
        runs[w] = {k: wrk(backend, f"python-w{w}-{n}") for k, n in
                   [("me", "me-wrk"), ("login", "login-wrk-c8"), ("register", "register-wrk-c8")]}
    header = ["figure", "Velro"] + [f"Python, {w} worker{'s' if w > 1 else ''}" for w in workers] + \
        [f"Velro ÷ Python ({w} w)" for w in workers]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))

    def row(label, velro_run, peer_key, value, fmt_value, lower_is_better, with_ratio=True, latency=False):
        def get(r):
            # No latency without an answer: a run with no 2xx gives "–", not wrk's 0.
            if not r or (latency and r["requests"] - r["non_2xx_3xx"] <= 0):
                return None
            return value(r)
        vv = get(runs["velro"].get(velro_run))
        pv = [get(runs[w][peer_key]) for w in workers]
        cells = [label, fmt_value(vv)] + [fmt_value(x) for x in pv] + \
            [ratio_cell(vv, x, lower_is_better) if with_ratio else "" for x in pv]
        print("| " + " | ".join(cells) + " |")

    def errors(label, velro_run, peer_key):
        def e(r):
            if not r:
                return "–"
            sock = r["connect_errors"] + r["read_errors"] + r["write_errors"]
            return f"{r['non_2xx_3xx']} / {r['timeouts']} / {sock}"
        cells = [label, e(runs["velro"].get(velro_run))] + [e(runs[w][peer_key]) for w in workers] + [""] * len(workers)
        print("| " + " | ".join(cells) + " |")

    rps = lambda r: ok_rate(r)
    f_rps = lambda x: "–" if x is None else f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"
    ms = lambda key: (lambda r: r[key] / 1000)
    f_ms = lambda x: "–" if x is None else f"{x:,.2f}"
    for cache in ("on", "off"):
        run = f"me_{cache}"
        row(f"GET /me req/s (Velro cache {cache})", run, "me", rps, f_rps, False)
        row(f"GET /me p50 ms (Velro cache {cache})", run, "me", ms("p50_us"), f_ms, True, latency=True)
        row(f"GET /me p99 ms (Velro cache {cache})", run, "me", ms("p99_us"), f_ms, True, latency=True)
    errors("GET /me non-2xx / timeouts / socket errors (cache on)", "me_on", "me")
    for op in ("login", "register"):
        count = lambda r: r["requests"] - r["non_2xx_3xx"]
        row(f"{op} req/s", op, op, rps, f_rps, False)
        row(f"{op}: 2xx answers in the run", op, op, count, lambda x: "–" if x is None else f"{x:,}", False,
            with_ratio=False)
        row(f"{op} p50 ms", op, op, ms("p50_us"), f_ms, True, latency=True)
        row(f"{op} p99 ms", op, op, ms("p99_us"), f_ms, True, latency=True)
        errors(f"{op} non-2xx / timeouts / socket errors", op, op)
    vm = velro_hwm_after(backend, "register-wrk-c8")
    pm = [peer_hwm(backend, w) for w in workers]
    mib = lambda x: "–" if x is None else f"{x / 1024:,.0f}"
    print("| " + " | ".join(["peak RSS MiB (VmHWM; Python: summed over uvicorn's processes)", mib(vm)] +
                            [mib(x) for x in pm] + [ratio_cell(vm, x, True) for x in pm]) + " |")
    print()
    print("Velro's peak RSS is read after its register run (health, /me, login and register runs "
          "behind it); the Python figure is the sum of the supervisor's and the workers' peaks, "
          "an upper bound for the workers' total. Load average per run: "
          f"`{backend}-memory.txt`, `{backend}-python-memory.txt`.\n")


def fmt(value, digits=2):
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio(value):
    return "n/a (no lookup)" if value is None else f"{value * 100:.2f}%"


commit = machine.get("server_commit", "?")
if commit.startswith("the work tree"):  # no BENCH_SERVER_COMMIT: the work tree at git_head
    commit = f"work tree at {machine.get('git_head', '?')[:10]}"
elif re.fullmatch(r"[0-9a-f]{40}", commit):
    commit = commit[:10]
print(f"Results of `bench/run.sh` in `{out.name}`: {machine.get('nproc')} vCPU {machine.get('cpu')}, "
      f"{machine.get('date_utc')}, server commit {commit}.\n")

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

    side_by_side(backend)

    runs = sorted(p.stem[len(backend) + 1:] for p in out.glob(f"{backend}-*.json"))
    if not runs:  # BENCH_PEER_ONLY=1: no velro-load scenarios
        continue
    print("### velro-load runs (latency from the request's start; open model: from its scheduled start)\n")
    print("| run | endpoint | requests | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | outcomes | gen. CPU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
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
