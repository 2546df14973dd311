#!/usr/bin/env python3
"""Mixed load for the fault scripts, with a record of every request (standard library only).

velro-load reports totals per endpoint; a fault run needs more: when each request started and
ended (to split the run into before, during and after the fault and to find the recovery time),
the email of every acknowledged registration and the last acknowledged refresh token of every
session (to compare with the database after a crash), and how each failed request failed
(refused connection, reset, client timeout, or a status and its code).

Subcommands:
  load   workers of each kind (me, register, refresh, login) at a paced rate per worker, spread
         over one or more --host, until --duration passes or SIGTERM/SIGINT; optional pollers of
         /health/ready and /metrics. Writes into --out: events.jsonl, acked-registrations.txt,
         refresh-chains.json, ready.jsonl, metrics.jsonl, setup.json.
  probe-logout   sign in on A, read /me on B (now cached there), log out on A, then poll /me on
         B until it is refused: prints the propagation lag as JSON.
  check-refresh  presents each chain's last acknowledged refresh token again (after a restart) and
         classifies the answers.

The tokens it writes stay in --out (a throwaway folder the scripts delete); they belong to
throwaway accounts on a throwaway database.
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid

PASSWORD = "velro fault test passphrase 42"
API = "/api/v1/auth"


class Client:
    """One keep-alive connection to one host, reopened after any transport failure."""

    def __init__(self, base, timeout):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, token=None):
        """Returns (status, parsed body or None, error kind or None, reused connection)."""
        headers = {"Connection": "keep-alive"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        reused = self.conn is not None
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.request(method, path, body=payload, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            try:
                parsed = json.loads(data) if data else None
            except ValueError:
                parsed = None
            return response.status, parsed, None, reused
        except ConnectionRefusedError:
            kind = "refused"
        except (socket.timeout, TimeoutError):
            kind = "timeout"
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            kind = "reset"
        except (OSError, http.client.HTTPException) as error:
            kind = "transport:" + type(error).__name__
        self.close()
        return None, None, kind, reused

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None


class Recorder:
    """Appends one JSON line per request; keeps the acknowledged writes."""

    def __init__(self, out):
        self.lock = threading.Lock()
        self.events = open(os.path.join(out, "events.jsonl"), "w", buffering=1 << 16)
        self.acked = open(os.path.join(out, "acked-registrations.txt"), "w", buffering=1)

    def record(self, endpoint, host, started, ended, status, body, error, reused):
        code = body.get("code") if isinstance(body, dict) else None
        line = {"ep": endpoint, "host": host, "t0": round(started, 4), "t1": round(ended, 4),
                "status": status, "code": code, "err": error, "reused": reused}
        with self.lock:
            self.events.write(json.dumps(line) + "\n")

    def acknowledge(self, email):
        with self.lock:
            self.acked.write(email + "\n")

    def close(self):
        with self.lock:
            self.events.close()
            self.acked.close()


def call(client, recorder, endpoint, host_index, method, path, body=None, token=None):
    started = time.time()
    status, parsed, error, reused = client.request(method, path, body, token)
    recorder.record(endpoint, host_index, started, time.time(), status, parsed, error, reused)
    return status, parsed


def sign_up(client, email):
    """Registers `email` (setup, not recorded); returns the session or raises."""
    for _ in range(60):
        status, body, error, _ = client.request(
            "POST", API + "/register", {"email": email, "password": PASSWORD})
        if status == 201:
            return body
        if status == 409:
            status, body, error, _ = client.request(
                "POST", API + "/login", {"email": email, "password": PASSWORD})
            if status == 200:
                return body
        time.sleep(0.5)
    raise RuntimeError(f"setup: could not register {email}: {status} {error}")


class Run:
    def __init__(self, args):
        self.args = args
        self.hosts = args.host
        self.stop = threading.Event()
        self.deadline = time.time() + args.duration
        self.recorder = Recorder(args.out)
        self.run_id = uuid.uuid4().hex[:10]
        self.chains = {}
        self.chains_lock = threading.Lock()

    def host_of(self, worker):
        index = worker % len(self.hosts)
        return index, self.hosts[index]

    def running(self):
        return not self.stop.is_set() and time.time() < self.deadline

    def paced(self, rate):
        """Yields once per operation at `rate` per second until the run ends (no catch-up)."""
        interval = 1.0 / rate if rate > 0 else 0.0
        next_at = time.time() + random.uniform(0, interval)
        while self.running():
            delay = next_at - time.time()
            if delay > 0:
                if self.stop.wait(min(delay, max(0.0, self.deadline - time.time()))):
                    return
                if not self.running():
                    return
            yield
            next_at = max(next_at + interval, time.time())

    def me_worker(self, worker, token):
        index, base = self.host_of(worker)
        client = Client(base, self.args.timeout)
        for _ in self.paced(self.args.me_rate):
            call(client, self.recorder, "me", index, "GET", API + "/me", token=token)
        client.close()

    def register_worker(self, worker):
        index, base = self.host_of(worker)
        client = Client(base, self.args.timeout)
        n = 0
        for _ in self.paced(self.args.register_rate):
            email = f"fault-{self.run_id}-{worker}-{n}@example.com"
            n += 1
            status, _ = call(client, self.recorder, "register", index, "POST", API + "/register",
                             {"email": email, "password": PASSWORD})
            if status == 201:
                self.recorder.acknowledge(email)
        client.close()

    def refresh_worker(self, worker, email, session):
        index, base = self.host_of(worker)
        client = Client(base, self.args.timeout)
        token = session["refresh_token"]
        self.save_chain(worker, email, token, index)
        for _ in self.paced(self.args.refresh_rate):
            status, body = call(client, self.recorder, "refresh", index, "POST",
                                API + "/refresh", {"refresh_token": token})
            if status == 200 and isinstance(body, dict):
                token = body["refresh_token"]
                self.save_chain(worker, email, token, index)
            elif status == 401:
                # The chain ended (reuse detected after a lost answer): a person signs in again.
                status, body = call(client, self.recorder, "login", index, "POST", API + "/login",
                                    {"email": email, "password": PASSWORD})
                if status == 200 and isinstance(body, dict):
                    token = body["refresh_token"]
                    self.save_chain(worker, email, token, index)
        client.close()

    def login_worker(self, worker, email):
        index, base = self.host_of(worker)
        client = Client(base, self.args.timeout)
        for _ in self.paced(self.args.login_rate):
            call(client, self.recorder, "login", index, "POST", API + "/login",
                 {"email": email, "password": PASSWORD})
        client.close()

    def save_chain(self, worker, email, token, host):
        with self.chains_lock:
            self.chains[str(worker)] = {"email": email, "refresh_token": token, "host": host,
                                        "acked_at": time.time()}

    def ready_poller(self):
        path = os.path.join(self.args.out, "ready.jsonl")
        clients = [Client(base, 2.0) for base in self.hosts]
        with open(path, "w", buffering=1) as out:
            while not self.stop.wait(self.args.ready_poll_ms / 1000.0) and self.running():
                for index, client in enumerate(clients):
                    started = time.time()
                    status, body, error, _ = client.request("GET", "/health/ready")
                    checks = (body or {}).get("checks", {}) if isinstance(body, dict) else {}
                    out.write(json.dumps({
                        "t0": round(started, 4), "t1": round(time.time(), 4), "host": index,
                        "http": status, "err": error,
                        "status": (body or {}).get("status") if isinstance(body, dict) else None,
                        "database": checks.get("database", {}).get("status"),
                        "cache": checks.get("cache", {}).get("status"),
                    }) + "\n")

    def metrics_poller(self):
        wanted = ("velro_cache_circuit_open", "velro_cache_pubsub_connected")
        path = os.path.join(self.args.out, "metrics.jsonl")
        clients = [Client(base, 2.0) for base in self.hosts]
        with open(path, "w", buffering=1) as out:
            while not self.stop.wait(self.args.metrics_poll_ms / 1000.0) and self.running():
                for index, client in enumerate(clients):
                    started = time.time()
                    client_conn = client
                    try:
                        if client_conn.conn is None:
                            client_conn.conn = http.client.HTTPConnection(
                                client_conn.host, client_conn.port, timeout=2.0)
                        client_conn.conn.request("GET", "/metrics")
                        text = client_conn.conn.getresponse().read().decode()
                    except (OSError, http.client.HTTPException):
                        client_conn.close()
                        continue
                    values = {}
                    for line in text.splitlines():
                        for name in wanted:
                            if line.startswith(name + " ") or line.startswith(name + "{"):
                                values[name] = float(line.rsplit(" ", 1)[1])
                    out.write(json.dumps({"t": round(started, 4), "host": index, **values}) + "\n")

    def main(self):
        args = self.args
        setup_started = time.time()
        setup_client = Client(self.hosts[0], 30)
        me_tokens = []
        for worker in range(args.me_workers):
            session = sign_up(setup_client, f"fault-{self.run_id}-me-{worker}@example.com")
            me_tokens.append(session["access_token"])
        refresh_sessions = []
        for worker in range(args.refresh_workers):
            email = f"fault-{self.run_id}-refresh-{worker}@example.com"
            refresh_sessions.append((email, sign_up(setup_client, email)))
        login_email = f"fault-{self.run_id}-login@example.com"
        if args.login_workers:
            sign_up(setup_client, login_email)
        setup_client.close()
        self.deadline = time.time() + args.duration
        with open(os.path.join(args.out, "setup.json"), "w") as out:
            json.dump({"run_id": self.run_id, "setup_secs": round(time.time() - setup_started, 2),
                       "load_started": time.time(), "hosts": self.hosts,
                       "workers": {"me": [args.me_workers, args.me_rate],
                                   "register": [args.register_workers, args.register_rate],
                                   "refresh": [args.refresh_workers, args.refresh_rate],
                                   "login": [args.login_workers, args.login_rate]}}, out)
        # The scripts wait for this file before they inject the fault.
        open(os.path.join(args.out, "load-started"), "w").close()

        threads = []
        worker = 0
        for token in me_tokens:
            threads.append(threading.Thread(target=self.me_worker, args=(worker, token)))
            worker += 1
        for _ in range(args.register_workers):
            threads.append(threading.Thread(target=self.register_worker, args=(worker,)))
            worker += 1
        for email, session in refresh_sessions:
            threads.append(threading.Thread(target=self.refresh_worker,
                                            args=(worker, email, session)))
            worker += 1
        for _ in range(args.login_workers):
            threads.append(threading.Thread(target=self.login_worker, args=(worker, login_email)))
            worker += 1
        if args.ready_poll_ms > 0:
            threads.append(threading.Thread(target=self.ready_poller))
        if args.metrics_poll_ms > 0:
            threads.append(threading.Thread(target=self.metrics_poller))
        for thread in threads:
            thread.daemon = True
            thread.start()
        # Workers stop at the deadline; one still waiting on a hung request is given its client
        # timeout, and then the run ends anyway (the hang is in the record as a missing answer).
        hard_stop = self.deadline + args.timeout + 2
        for thread in threads:
            thread.join(max(0.0, hard_stop - time.time()))
        self.stop.set()
        with self.chains_lock, open(os.path.join(args.out, "refresh-chains.json"), "w") as out:
            json.dump(self.chains, out)
        self.recorder.close()


def probe_logout(args):
    """Lag until a logout on A is refused on B."""
    a, b = Client(args.a, 5), Client(args.b, 5)
    email = f"probe-{uuid.uuid4().hex[:10]}@example.com"
    session = sign_up(a, email)
    token = session["access_token"]
    status, _, error, _ = b.request("GET", API + "/me", token=token)
    result = {"me_on_b_before": status or error}
    status, _, error, _ = b.request("GET", API + "/me", token=token)  # now from B's cache
    status, _, error, _ = a.request("POST", API + "/logout", token=token)
    logged_out = time.time()
    result["logout_on_a"] = status or error
    deadline = logged_out + args.timeout
    polls = 0
    while time.time() < deadline:
        status, body, error, _ = b.request("GET", API + "/me", token=token)
        polls += 1
        if status == 401:
            result.update(refused_after_ms=round((time.time() - logged_out) * 1000, 1),
                          code=(body or {}).get("code"), polls=polls)
            break
        time.sleep(args.interval_ms / 1000.0)
    else:
        result.update(refused_after_ms=None, polls=polls, last=status or error)
    print(json.dumps(result))


def check_refresh(args):
    """After a restart: the last acknowledged refresh token of every chain, presented again."""
    with open(args.chains) as f:
        chains = json.load(f)
    counts = {}
    for chain in chains.values():
        client = Client(args.host, 10)
        status, body, error, _ = client.request(
            "POST", API + "/refresh", {"refresh_token": chain["refresh_token"]})
        key = str(status) if status else error
        if isinstance(body, dict) and body.get("code"):
            key += " " + body["code"]
        counts[key] = counts.get(key, 0) + 1
        client.close()
    print(json.dumps({"chains": len(chains), "answers": counts}))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load")
    load.add_argument("--host", action="append", required=True)
    load.add_argument("--out", required=True)
    load.add_argument("--duration", type=float, default=30)
    load.add_argument("--timeout", type=float, default=10, help="client timeout per request (s)")
    load.add_argument("--me-workers", type=int, default=4)
    load.add_argument("--me-rate", type=float, default=25, help="per worker, per second")
    load.add_argument("--register-workers", type=int, default=2)
    load.add_argument("--register-rate", type=float, default=3)
    load.add_argument("--refresh-workers", type=int, default=3)
    load.add_argument("--refresh-rate", type=float, default=5)
    load.add_argument("--login-workers", type=int, default=1)
    load.add_argument("--login-rate", type=float, default=1)
    load.add_argument("--ready-poll-ms", type=float, default=100)
    load.add_argument("--metrics-poll-ms", type=float, default=0)
    probe = sub.add_parser("probe-logout")
    probe.add_argument("--a", required=True)
    probe.add_argument("--b", required=True)
    probe.add_argument("--timeout", type=float, default=20)
    probe.add_argument("--interval-ms", type=float, default=20)
    check = sub.add_parser("check-refresh")
    check.add_argument("--host", required=True)
    check.add_argument("--chains", required=True)
    args = parser.parse_args()
    if args.command == "probe-logout":
        return probe_logout(args)
    if args.command == "check-refresh":
        return check_refresh(args)
    run = Run(args)
    signal.signal(signal.SIGTERM, lambda *_: run.stop.set())
    signal.signal(signal.SIGINT, lambda *_: run.stop.set())
    run.main()


if __name__ == "__main__":
    sys.exit(main())
