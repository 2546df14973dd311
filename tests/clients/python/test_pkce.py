"""Velro's PKCE flow on /auth/v1 judged by the official Python client (`supabase_auth`) with
`flow_type="pkce"`: sign-up, password recovery and magic link mail a `pkce_` link, the link
lands with `?code=`, and `exchange_code_for_session` turns the code into a session with the
verifier the client kept."""

import re
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "purple monkey dishwasher 42"
LANDING = "http://localhost:3000/auth/callback"


def email() -> str:
    return f"py-pkce-{uuid.uuid4().hex}@example.com"


def pkce_client(server) -> SyncGoTrueClient:
    # The verifier stays in the client's (in-memory) storage until the exchange.
    return SyncGoTrueClient(url=server.auth_url, auto_refresh_token=False, flow_type="pkce")


def mailed_link(server, address: str, earlier: int = 0) -> str:
    """The link of the newest message to `address` in the development mailer's folder, once
    more than `earlier` have arrived."""
    folder = Path(server.data_dir.name) / "mail"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        paths = sorted(folder.glob("*.eml")) if folder.exists() else []
        mine = [t for t in (p.read_text() for p in paths) if t.startswith(f"To: {address}\n")]
        if len(mine) > earlier:
            return re.search(r"(http\S+/verify\?\S+)", mine[-1]).group(1)
        time.sleep(0.05)
    raise AssertionError(f"no message for {address}")


def landing_code(server, link: str, kind: str) -> str:
    """Follows the link as a browser would, up to GoTrue's 303 to the landing page. The link is
    on the configured external URL; this server is on a port of its own."""
    parsed = urlparse(link)
    query = parse_qs(parsed.query)
    assert query["type"] == [kind]
    assert query["token"][0].startswith("pkce_")
    response = httpx.get(f"{server.base}{parsed.path}?{parsed.query}", follow_redirects=False)
    assert response.status_code == 303
    landing = urlparse(response.headers["location"])
    assert f"{landing.scheme}://{landing.netloc}{landing.path}" == LANDING
    assert landing.fragment == ""
    return parse_qs(landing.query)["code"][0]


def test_sign_up_with_pkce_confirms_through_a_code_exchanged_once(unconfirmed_server):
    address = email()
    auth = pkce_client(unconfirmed_server)
    signed_up = auth.sign_up(
        {"email": address, "password": PASSWORD, "options": {"email_redirect_to": LANDING}}
    )
    assert signed_up.session is None
    code = landing_code(unconfirmed_server, mailed_link(unconfirmed_server, address), "signup")

    exchanged = auth.exchange_code_for_session({"auth_code": code})
    assert exchanged.session is not None
    assert exchanged.user.email == address
    assert exchanged.user.email_confirmed_at is not None
    assert auth.get_user().user.email == address

    # Spent: another client with a verifier of its own finds no flow state.
    other = pkce_client(unconfirmed_server)
    other.sign_up({"email": email(), "password": PASSWORD})
    with pytest.raises(AuthApiError) as raised:
        other.exchange_code_for_session({"auth_code": code})
    assert (raised.value.status, raised.value.code) == (404, "flow_state_not_found")


def test_reset_password_for_email_with_pkce_signs_in_for_a_new_password(server):
    address = email()
    pkce_client(server).sign_up({"email": address, "password": PASSWORD})
    auth = pkce_client(server)
    assert auth.reset_password_for_email(address, {"redirect_to": LANDING}) is None
    code = landing_code(server, mailed_link(server, address), "recovery")

    events = []
    auth.on_auth_state_change(lambda event, _session: events.append(event))
    exchanged = auth.exchange_code_for_session({"auth_code": code})
    assert exchanged.user.email == address
    assert "PASSWORD_RECOVERY" in events
    auth.update_user({"password": NEW_PASSWORD})
    signed_in = pkce_client(server).sign_in_with_password(
        {"email": address, "password": NEW_PASSWORD}
    )
    assert signed_in.session is not None


def test_sign_in_with_otp_with_pkce_needs_the_verifier_the_challenge_was_made_from(server):
    address = email()
    pkce_client(server).sign_up({"email": address, "password": PASSWORD})
    auth = pkce_client(server)
    auth.sign_in_with_otp({"email": address, "options": {"email_redirect_to": LANDING}})
    code = landing_code(server, mailed_link(server, address), "magiclink")

    with pytest.raises(AuthApiError) as raised:
        auth.exchange_code_for_session(
            {"auth_code": code, "code_verifier": "a-verifier-that-made-no-challenge-0123456789"}
        )
    assert (raised.value.status, raised.value.code) == (400, "bad_code_verifier")
    # A wrong verifier leaves the code usable, as on GoTrue; the client still holds its own.
    exchanged = auth.exchange_code_for_session({"auth_code": code})
    assert exchanged.user.email == address
    assert exchanged.session is not None
