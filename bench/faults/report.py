#!/usr/bin/env python3
"""What clients saw during one fault run, and the verdict against issue 11's expectations.

Reads a mixload.py output folder (events.jsonl, ready.jsonl, metrics.jsonl, setup.json) and the
script's marks file (`NAME unix-seconds` per line), splits the requests into before / during /
after the fault, and prints per endpoint the outcome counts (status and error code, or how the
connection failed), the worst latency, the recovery time, and one line per check with PASS or
FAIL. Facts the script measured itself (rows found in the database, integrity check, log lines)
come in as --fact KEY=VALUE. Exit status 0 when every check passed.
"""

import argparse
import json
import os
import sys

WRITES = ("register", "refresh", "login")


def load_jsonl(path):
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass  # a line cut short by a kill
    return rows


def outcome(event):
    if event["status"] is None:
        return event["err"]
    key = str(event["status"])
    if event["status"] >= 300 and event.get("code"):
        key += " " + event["code"]
    return key


def ok(event):
    return event["status"] is not None and 200 <= event["status"] < 300


def latency(event):
    return event["t1"] - event["t0"]


def table(events, title):
    lines = [f"  {title}: {len(events)} requests"]
    by_ep = {}
    for event in events:
        by_ep.setdefault(event["ep"], []).append(event)
    for ep in sorted(by_ep):
        group = by_ep[ep]
        counts = {}
        for event in group:
            counts[outcome(event)] = counts.get(outcome(event), 0) + 1
        worst = max(latency(e) for e in group)
        failed = [latency(e) for e in group if not ok(e)]
        worst_failed = f", worst failed {max(failed) * 1000:.0f} ms" if failed else ""
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        lines.append(f"    {ep:9} {shown}; worst {worst * 1000:.0f} ms{worst_failed}")
    return "\n".join(lines)


class Checks:
    def __init__(self):
        self.rows = []

    def add(self, name, passed, detail):
        self.rows.append((name, bool(passed), detail))

    def render(self):
        lines = [f"  {'PASS' if p else 'FAIL'}  {name}: {detail}" for name, p, detail in self.rows]
        verdict = "PASS" if all(p for _, p, _ in self.rows) else "FAIL"
        return "\n".join(lines), verdict


def overlapping(events, start, end):
    return [e for e in events if e["t0"] <= end and e["t1"] >= start]


def recovery(events, back, until=float("inf")):
    """Seconds from `back` to the first acknowledged write started after it, and to the end of
    the last failed request started after it (0 when none failed); requests still running when
    the next fault began (`until`) belong to that fault."""
    after = [e for e in events if back <= e["t0"] and e["t1"] < until]
    first_ok = min((e["t1"] for e in after if ok(e) and e["ep"] in WRITES), default=None)
    last_err = max((e["t1"] for e in after if not ok(e)), default=None)
    return (None if first_ok is None else first_ok - back,
            0.0 if last_err is None else last_err - back)


def ready_transitions(ready, start, end, host=None):
    """First poll at or after `start` that was not 200, and first 200 at or after `end`."""
    rows = [r for r in ready if host is None or r["host"] == host]
    down = next((r for r in rows if r["t0"] >= start and r["http"] != 200), None)
    up = next((r for r in rows if r["t0"] >= end and r["http"] == 200), None)
    return down, up


def fmt_s(value):
    return "never" if value is None else f"{value:.2f} s"


def mode_pg_restart(ctx, checks, out):
    events, marks, facts = ctx["events"], ctx["marks"], ctx["facts"]
    max_fail = float(facts.get("max_failed_secs", 3.0))
    max_recovery = float(facts.get("max_recovery_secs", 5.0))
    deadline = float(facts.get("request_deadline_secs", 5.0))
    bad = [e for e in events if e["status"] == 500 or e["status"] is None]
    checks.add("no 500, no client timeout, no transport error", not bad,
               f"{len(bad)} such requests" + (f" (first: {outcome(bad[0])} on {bad[0]['ep']})" if bad else ""))
    for label, begin, back, next_fault in (
            ("restart -m fast", "restart_begin", "restart_done", "stop_begin"),
            ("stop + start", "stop_begin", "start_done", None)):
        if begin not in marks or back not in marks:
            continue
        during = overlapping(events, marks[begin], marks[back])
        out.append(table(during, f"{label}: requests overlapping the outage "
                                 f"({marks[back] - marks[begin]:.2f} s)"))
        failed = [e for e in during if not ok(e)]
        wrong = [e for e in failed if not (e["status"] == 503 and e.get("code") in ("overloaded", "timeout"))]
        checks.add(f"{label}: every failure is 503 overloaded/timeout", not wrong,
                   f"{len(failed)} failed, {len(wrong)} otherwise"
                   + (f" (e.g. {outcome(wrong[0])} on {wrong[0]['ep']})" if wrong else ""))
        worst = max((latency(e) for e in failed), default=0.0)
        checks.add(f"{label}: failures are fast (<= {max_fail:.1f} s, deadline {deadline:.0f} s)",
                   worst <= max_fail, f"worst failed request {worst * 1000:.0f} ms")
        me = [e for e in during if e["ep"] == "me"]
        me_ok = sum(1 for e in me if ok(e))
        checks.add(f"{label}: /me answered 200 throughout (cache)", me and me_ok == len(me),
                   f"{me_ok}/{len(me)} 200")
        first_ok, last_err = recovery(events, marks[back], marks.get(next_fault, float("inf")))
        checks.add(f"{label}: recovered within {max_recovery:.0f} s of PostgreSQL's return",
                   first_ok is not None and last_err <= max_recovery,
                   f"first acknowledged write {fmt_s(first_ok)} after, "
                   f"last failure ended {last_err:.2f} s after")
        served = {}
        for e in during:
            served.setdefault(e["ep"], [0, 0])[0 if ok(e) else 1] += 1
        out.append("    endpoints answering 2xx during the outage: "
                   + ", ".join(f"{ep} {s[0]}/{s[0] + s[1]}" for ep, s in sorted(served.items())))
        if label.startswith("stop"):
            down, up = ready_transitions(ctx["ready"], marks[begin], marks[back])
            checks.add(f"{label}: /health/ready reported the outage and the recovery",
                       down is not None and down["t0"] <= marks[back] and up is not None,
                       f"503 {fmt_s(down and down['t0'] - marks[begin])} after the stop "
                       f"(database: {down and down['database']}), "
                       f"200 again {fmt_s(up and up['t1'] - marks[back])} after the start")


def mode_redis_kill(ctx, checks, out):
    events, marks, facts = ctx["events"], ctx["marks"], ctx["facts"]
    kill, back = marks["redis_kill"], marks["redis_back"]
    out.append(table(overlapping(events, kill, back), f"while Redis was away ({back - kill:.2f} s)"))
    failed = [e for e in events if not ok(e)]
    checks.add("0 failed requests (whole run, both instances)", not failed,
               f"{len(failed)} failed of {len(events)}"
               + (f" (e.g. {outcome(failed[0])} on {failed[0]['ep']})" if failed else ""))
    metrics = ctx["metrics"]
    for host in sorted({m["host"] for m in metrics}):
        rows = [m for m in metrics if m["host"] == host]
        opened = next((m for m in rows if m["t"] >= kill and m.get("velro_cache_circuit_open") == 1), None)
        closed = next((m for m in rows if m["t"] >= back and m.get("velro_cache_circuit_open") == 0), None)
        pubsub = next((m for m in rows if m["t"] >= back and m.get("velro_cache_pubsub_connected") == 1), None)
        checks.add(f"instance {'AB'[host]}: circuit opened and closed (velro_cache_circuit_open)",
                   opened is not None and opened["t"] <= back and closed is not None,
                   f"open {fmt_s(opened and opened['t'] - kill)} after the kill, "
                   f"closed {fmt_s(closed and closed['t'] - back)} after Redis returned; "
                   f"pub/sub connected again {fmt_s(pubsub and pubsub['t'] - back)} after")
        degraded = next((r for r in ctx["ready"] if r["host"] == host and kill <= r["t0"] <= back
                         and r["status"] == "degraded"), None)
        okagain = next((r for r in ctx["ready"] if r["host"] == host and r["t0"] >= back
                        and r["status"] == "ok"), None)
        out.append(f"    instance {'AB'[host]} /health/ready: degraded "
                   f"{fmt_s(degraded and degraded['t0'] - kill)} after the kill, ok "
                   f"{fmt_s(okagain and okagain['t0'] - back)} after Redis returned")
    l1 = float(facts.get("l1_ttl_secs", 10))
    during = facts.get("probe_during")
    if during:
        probe = json.loads(during)
        lag = probe.get("refused_after_ms")
        checks.add("logout on A while Redis is away: refused on B within the L1 lifetime",
                   lag is not None and lag <= l1 * 1000 + 1000,
                   f"refused after {lag} ms (L1 TTL {l1:.0f} s) {probe}")
    early = facts.get("probe_resubscribed")
    if early:
        probe = json.loads(early)
        lag = probe.get("refused_after_ms")
        checks.add("logout on A once both re-subscribed (circuits maybe still open): refused on B within 1 s",
                   lag is not None and lag <= 1000, f"refused after {lag} ms {probe}")
    after = facts.get("probe_after")
    if after:
        probe = json.loads(after)
        lag = probe.get("refused_after_ms")
        checks.add(f"logout on A once both circuits closed: refused on B within "
                   f"{float(facts.get('max_lag_ms', 1000)):.0f} ms (invalidation resumed)",
                   lag is not None and lag <= float(facts.get("max_lag_ms", 1000)),
                   f"refused after {lag} ms {probe}")


def durable_checks(ctx, checks, prefix=""):
    facts = ctx["facts"]
    acked, found = int(facts.get("acked", -1)), int(facts.get("acked_in_db", -2))
    checks.add(f"{prefix}every acknowledged registration is in the database", acked == found and acked > 0,
               f"{found} of {acked} acknowledged registrations found")
    if "refresh_check" in facts:
        answers = json.loads(facts["refresh_check"])["answers"]
        lost = {k: v for k, v in answers.items() if "refresh_token_invalid" in k or not k[:1].isdigit()}
        checks.add(f"{prefix}every chain's last acknowledged refresh token is known after the restart",
                   not lost, f"answers {answers} (200 or refresh_token_reused = stored; "
                             "refresh_token_invalid = lost)")


def mode_sigterm(ctx, checks, out):
    events, marks, facts = ctx["events"], ctx["marks"], ctx["facts"]
    sig = marks["sigterm"]
    exited = marks.get("exited")
    before = [e for e in events if e["t1"] < sig]
    inflight = [e for e in events if e["t0"] < sig <= e["t1"]]
    after = [e for e in events if e["t0"] >= sig]
    out.append(table(before, "answered before SIGTERM"))
    out.append(table(inflight, "in flight at SIGTERM (sent before, answered after)"))
    out.append(table(after, "sent after SIGTERM"))
    grace = float(facts.get("grace_secs", 10))
    checks.add(f"process exited within the grace period ({grace:.0f} s)",
               exited is not None and exited - sig <= grace + 1,
               f"exited {fmt_s(exited and exited - sig)} after SIGTERM")
    lost = [e for e in inflight if e["status"] is None]
    checks.add("every request in flight at SIGTERM got its answer", not lost,
               f"{len(inflight) - len(lost)}/{len(inflight)} answered"
               + (f"; unanswered: {sorted({outcome(e) + (' reused' if e['reused'] else ' new') for e in lost})}" if lost else ""))
    failed_after = [e for e in after if e["status"] is None]
    unclean = [e for e in failed_after if e["err"] not in ("refused", "reset") or latency(e) > 1.0]
    kinds = {}
    for e in failed_after:
        kinds[e["err"]] = kinds.get(e["err"], 0) + 1
    answered = [e for e in after if e["status"] is not None]
    checks.add("new requests after SIGTERM are refused cleanly (no hang, no 5xx)",
               not unclean and not any(e["status"] >= 500 for e in answered),
               f"{kinds} ; {len(answered)} still answered during the drain; "
               f"worst {max((latency(e) for e in failed_after), default=0) * 1000:.0f} ms")
    durable_checks(ctx, checks)


def mode_kill9(ctx, checks, out):
    events, marks, facts = ctx["events"], ctx["marks"], ctx["facts"]
    kill = marks["kill"]
    out.append(table([e for e in events if e["t1"] < kill], "answered before kill -9"))
    out.append(table([e for e in events if e["t1"] >= kill], "ended after kill -9"))
    if "integrity" in facts:
        checks.add("database integrity after restart", facts["integrity"] == "ok",
                   facts["integrity"])
    durable_checks(ctx, checks)
    if "restarted_ok" in facts:
        checks.add("service answers after restart", facts["restarted_ok"] == "yes",
                   facts.get("restarted_detail", ""))


def mode_disk_full(ctx, checks, out):
    events, marks, facts = ctx["events"], ctx["marks"], ctx["facts"]
    full, freed = marks["disk_full"], marks["disk_freed"]
    out.append(table([e for e in events if e["t1"] < full], "before the disk filled"))
    during = [e for e in events if full <= e["t0"] and e["t1"] <= freed]
    out.append(table(during, f"while the disk was full ({freed - full:.1f} s)"))
    out.append(table([e for e in events if e["t0"] >= freed], "after space returned"))
    failed = [e for e in events if not ok(e)]
    bad = [e for e in failed if not (e["status"] == 503 and e["ep"] in WRITES)]
    checks.add("writes refused with 503 only (no 500, no hang), nothing else failed", not bad,
               f"{len(failed)} failed, {len(bad)} otherwise"
               + (f" (e.g. {outcome(bad[0])} on {bad[0]['ep']})" if bad else ""))
    refused = [e for e in during if e["ep"] in WRITES and e["status"] == 503]
    checks.add("the full disk was felt (writes refused while full)", refused,
               f"{len(refused)} writes answered 503 while full")
    me = [e for e in during if e["ep"] == "me"]
    checks.add("token checks (/me) kept answering 200 while full", me and all(ok(e) for e in me),
               f"{sum(1 for e in me if ok(e))}/{len(me)} 200")
    checks.add("a clear log line names the cause", facts.get("log_cause"),
               facts.get("log_cause") or "no log line mentions the full disk")
    first_refused = min((e["t1"] for e in refused), default=None)
    out.append(f"  first write refused {fmt_s(first_refused and first_refused - full)} after the disk "
               f"filled (until then SQLite reused space inside its WAL file)")
    first_ok, last_err = recovery(events, freed)
    checks.add("writes recover within 5 s of space returning",
               first_ok is not None and last_err <= 5.0,
               f"first acknowledged write {fmt_s(first_ok)} after, last failure {last_err:.2f} s after")
    durable_checks(ctx, checks)
    if "integrity" in facts:
        checks.add("PRAGMA integrity_check at the end", facts["integrity"] == "ok", facts["integrity"])


MODES = {"pg-restart": mode_pg_restart, "redis-kill": mode_redis_kill, "sigterm": mode_sigterm,
         "kill9": mode_kill9, "disk-full": mode_disk_full}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("dir")
    parser.add_argument("--marks", required=True)
    parser.add_argument("--fact", action="append", default=[])
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    marks = {}
    with open(args.marks) as f:
        for line in f:
            name, _, value = line.strip().partition(" ")
            if name:
                marks[name] = float(value)
    ctx = {
        "events": sorted(load_jsonl(os.path.join(args.dir, "events.jsonl")), key=lambda e: e["t0"]),
        "ready": sorted(load_jsonl(os.path.join(args.dir, "ready.jsonl")), key=lambda r: r["t0"]),
        "metrics": sorted(load_jsonl(os.path.join(args.dir, "metrics.jsonl")), key=lambda m: m["t"]),
        "marks": marks,
        "facts": dict(fact.split("=", 1) for fact in args.fact),
    }
    with open(os.path.join(args.dir, "setup.json")) as f:
        setup = json.load(f)
    events = ctx["events"]
    out = [f"== {args.title or args.mode}",
           f"  load: {setup['workers']} (workers, ops/s each) on {len(setup['hosts'])} instance(s)"]
    if events:
        start = events[0]["t0"]
        out.append("  marks: " + ", ".join(f"{k} +{v - start:.2f} s" for k, v in
                                            sorted(marks.items(), key=lambda kv: kv[1])))
    out.append(table(events, "whole run"))
    checks = Checks()
    MODES[args.mode](ctx, checks, out)
    rendered, verdict = checks.render()
    out.append(rendered)
    out.append(f"  VERDICT {verdict}")
    print("\n".join(out))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
