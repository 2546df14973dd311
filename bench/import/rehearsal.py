"""The Python half of bench/import/rehearsal.sh: the stand-in for Supabase still serving (`writer`,
`rotate`) and the clients that move to Velro (`clients`).

State is one JSON file, {"sessions": {session id: current refresh token}, "v2": {session id: [key,
counter]}, "rotations": n, "signups": n}:
what the old system last handed each client, so that a client is given exactly the token it
would hold at the switch. It is written atomically after every step the database committed.
SQL goes through psql (one transaction per batch, ON_ERROR_STOP), so no driver is needed.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

PSQL = "/usr/lib/postgresql/15/bin/psql"
ALPHABET = string.ascii_lowercase + string.digits

# The sessions a client could still refresh on Supabase: the live (newest non-revoked) token of a
# session whose user is neither deleted, anonymous nor banned. v2 sessions keep no rows here.
LIVE_LEGACY = """
SELECT DISTINCT ON (rt.session_id) rt.session_id, rt.token
FROM auth.refresh_tokens rt JOIN auth.users u ON u.id::text = rt.user_id
WHERE NOT COALESCE(rt.revoked, false) AND rt.session_id IS NOT NULL
  AND u.deleted_at IS NULL AND NOT COALESCE(u.is_anonymous, false) AND u.email IS NOT NULL
  AND (u.banned_until IS NULL OR u.banned_until < now())
ORDER BY rt.session_id, rt.id DESC
"""

# Sessions on GoTrue's newer scheme: the token is computed from the key and the counter.
LIVE_V2 = """
SELECT s.id, s.refresh_token_hmac_key, s.refresh_token_counter
FROM auth.sessions s JOIN auth.users u ON u.id = s.user_id
WHERE s.refresh_token_hmac_key IS NOT NULL AND s.refresh_token_counter IS NOT NULL
  AND u.deleted_at IS NULL AND NOT COALESCE(u.is_anonymous, false) AND u.email IS NOT NULL
  AND (u.banned_until IS NULL OR u.banned_until < now())
"""


def v2_token(key: str, session: str, counter: int) -> str:
    """GoTrue's v2 refresh token, as crates/velro-supabasetest describes it: base64url(0x00 ‖
    session id ‖ uvarint(counter) ‖ HMAC-SHA-256(key, all before)[..16] ‖ SHA-256(all before)[..4])."""
    raw = bytearray(b"\x00") + uuid.UUID(session).bytes
    rest = counter
    while True:
        low, rest = rest & 0x7F, rest >> 7
        raw.append(low | (0x80 if rest else 0))
        if not rest:
            break
    secret = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    raw += hmac.new(secret, bytes(raw), hashlib.sha256).digest()[:16]
    raw += hashlib.sha256(bytes(raw)).digest()[:4]
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def psql(db: str, sql: str) -> str:
    done = subprocess.run(
        [PSQL, db, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-1"],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.strip()[:300]}")
    return done.stdout


def live_sessions(db: str) -> tuple[dict[str, str], dict[str, list]]:
    """Every live session's token, and the v2 sessions' [key, counter]."""
    rows = (line.split("\t") for line in psql(db, LIVE_LEGACY).splitlines() if line)
    tokens = {session: token for session, token in rows}
    v2 = {}
    for line in psql(db, LIVE_V2).splitlines():
        if line:
            session, key, counter = line.split("\t")
            v2[session] = [key, int(counter)]
            tokens[session] = v2_token(key, session, int(counter))
    return tokens, v2


def learn(db: str, state: dict) -> None:
    """Adds the sessions the state does not know yet (new sign-ups), as Supabase handed them out."""
    tokens, v2 = live_sessions(db)
    for session, token in tokens.items():
        if session not in state["sessions"]:
            state["sessions"][session] = token
            if session in v2:
                state["v2"][session] = v2[session]


def rotation_sql(session: str, token: str) -> str:
    # As GoTrue refreshes: revoke the live row, insert its child naming it as parent.
    return f"""
WITH live AS (
  SELECT id, token, user_id FROM auth.refresh_tokens
  WHERE session_id = '{session}' AND NOT COALESCE(revoked, false)
  ORDER BY id DESC LIMIT 1 FOR UPDATE),
spent AS (
  UPDATE auth.refresh_tokens r SET revoked = true, updated_at = now()
  FROM live WHERE r.id = live.id RETURNING live.token, live.user_id)
INSERT INTO auth.refresh_tokens
  (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
SELECT '00000000-0000-0000-0000-000000000000', '{token}', user_id, false, now(), now(),
       token, '{session}'
FROM spent;
UPDATE auth.sessions SET refreshed_at = now() AT TIME ZONE 'UTC', updated_at = now()
WHERE id = '{session}';
"""


def v2_rotation_sql(session: str, counter: int) -> str:
    # GoTrue's newer scheme refreshes by counting up; the WHERE makes a lost update visible to the
    # final comparison with the database.
    return f"""
UPDATE auth.sessions SET refresh_token_counter = {counter + 1},
  refreshed_at = now() AT TIME ZONE 'UTC', updated_at = now()
WHERE id = '{session}' AND refresh_token_counter = {counter};
"""


def rotate(db: str, state: dict, sessions: list[str]) -> None:
    """Rotates `sessions` in one transaction; the state learns the new tokens only on commit."""
    fresh, counters, sql = {}, {}, []
    for s in sessions:
        if s in state["v2"]:
            key, counter = state["v2"][s]
            counters[s] = [key, counter + 1]
            fresh[s] = v2_token(key, s, counter + 1)
            sql.append(v2_rotation_sql(s, counter))
        else:
            fresh[s] = "".join(secrets.choice(ALPHABET) for _ in range(12))
            sql.append(rotation_sql(s, fresh[s]))
    psql(db, "".join(sql))
    state["sessions"].update(fresh)
    state["v2"].update(counters)
    state["rotations"] += len(fresh)


def save(path: str, state: dict) -> None:
    with open(path + ".tmp", "w") as out:
        json.dump(state, out)
    os.replace(path + ".tmp", path)


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def writer(args) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rng = random.Random(args.random_seed)
    state = {"sessions": {}, "v2": {}, "rotations": 0, "signups": 0}
    learn(args.db, state)
    save(args.state, state)
    next_user = args.first_new_user
    signups = None  # the supabase-seed process under way, and its range
    last_signup = time.monotonic()
    while not stop.is_set():
        if signups is None and time.monotonic() - last_signup >= args.signup_every:
            end = next_user + args.signup_batch
            process = subprocess.Popen(
                [args.seed, args.db, str(next_user), str(end)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            signups = (process, end)
        if signups is not None and signups[0].poll() is not None:
            process, end = signups
            if process.returncode != 0:
                print(f"writer: supabase-seed exited {process.returncode}", file=sys.stderr)
                return 1
            learn(args.db, state)
            state["signups"] += end - next_user
            next_user, signups, last_signup = end, None, time.monotonic()
        batch = rng.sample(sorted(state["sessions"]), min(args.rotate_batch, len(state["sessions"])))
        rotate(args.db, state, batch)
        save(args.state, state)
        stop.wait(args.pause)
    if signups is not None:  # the cut-over: a sign-up under way finishes, then nothing more
        signups[0].wait()
        learn(args.db, state)
        state["signups"] += signups[1] - next_user
    save(args.state, state)
    # What the clients will be given must be what the database holds.
    held, _ = live_sessions(args.db)
    wrong = sum(1 for s, t in state["sessions"].items() if held.get(s) != t)
    missing = len(set(held) - set(state["sessions"]))
    if wrong or missing:
        print(f"writer: state disagrees with the database ({wrong} wrong, {missing} missing)",
              file=sys.stderr)
        return 1
    return 0


def rotate_cmd(args) -> int:
    state = load(args.state)
    chosen = [s for s in args.sessions.split(",") if s]
    rotate(args.db, state, chosen)
    save(args.state, state)
    return 0


def clients(args) -> int:
    from supabase_auth import SyncGoTrueClient
    from supabase_auth.errors import AuthApiError

    state = load(args.state)
    sessions = [s for s in args.sessions.split(",") if s] if args.sessions else []
    tally = {"clients": 0, "requests": 0, "failed": 0, "signed_out": 0}
    reasons: dict[str, int] = {}
    refused: list[str] = []
    lock = threading.Lock()

    def one(session: str) -> None:
        token = state["sessions"][session]
        auth = SyncGoTrueClient(url=args.url, auto_refresh_token=False, persist_session=False)
        failed, signed_out, why = 0, False, None
        requests = 1
        try:
            refreshed = auth.refresh_session(token)
            requests += 1
            user = auth.get_user(refreshed.session.access_token)
            if user is None or user.user is None:
                failed, why = 1, "get_user returned no user"
        except AuthApiError as error:
            failed = 1
            signed_out = requests == 1 and error.status in (400, 401, 403)
            why = f"{'refresh' if requests == 1 else 'get_user'}: {error.status} {error.code}"
        except Exception as error:  # a transport failure counts as a failed request
            failed, why = 1, f"{type(error).__name__}"
        with lock:
            tally["clients"] += 1
            tally["requests"] += requests
            tally["failed"] += failed
            tally["signed_out"] += int(signed_out)
            if why:
                reasons[why] = reasons.get(why, 0) + 1
            if signed_out:
                refused.append(session)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        list(pool.map(one, sessions))
    tally["seconds"] = round(time.monotonic() - started, 2)
    tally["reasons"] = reasons
    tally["refused"] = sorted(refused)
    print(json.dumps(tally))
    return 0


def split(args) -> int:
    """Splits the final sessions into the main phase's and the window phase's, reproducibly."""
    state = load(args.state)
    every = sorted(state["sessions"])
    random.Random(args.random_seed).shuffle(every)
    window = every[: args.window]
    print(",".join(every[args.window:]))
    print(",".join(window))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("writer")
    w.add_argument("--db", required=True)
    w.add_argument("--state", required=True)
    w.add_argument("--seed", required=True, help="the supabase-seed binary")
    w.add_argument("--first-new-user", type=int, required=True)
    w.add_argument("--signup-batch", type=int, default=20)
    w.add_argument("--signup-every", type=float, default=2.0)
    w.add_argument("--rotate-batch", type=int, default=10)
    w.add_argument("--pause", type=float, default=0.2)
    w.add_argument("--random-seed", type=int, default=12)
    r = sub.add_parser("rotate")
    r.add_argument("--db", required=True)
    r.add_argument("--state", required=True)
    r.add_argument("--sessions", required=True)
    c = sub.add_parser("clients")
    c.add_argument("--url", required=True)
    c.add_argument("--state", required=True)
    c.add_argument("--sessions", default="")
    c.add_argument("--threads", type=int, default=32)
    s = sub.add_parser("split")
    s.add_argument("--state", required=True)
    s.add_argument("--window", type=int, required=True)
    s.add_argument("--random-seed", type=int, default=12)
    args = parser.parse_args()
    return {"writer": writer, "rotate": rotate_cmd, "clients": clients, "split": split}[
        args.command
    ](args)


if __name__ == "__main__":
    sys.exit(main())
