"""Velro's /auth/v1 judged by the official Python client (`supabase_auth`, PyPI `supabase-auth`):
its own calls, unchanged, against the real binary."""

import base64
import json
import re
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import jwt as pyjwt
import pytest
from supabase_auth import SyncGoTrueAdminAPI, SyncGoTrueClient
from supabase_auth.errors import (
    AuthApiError,
    AuthWeakPasswordError,
)

from conftest import JWT_SECRET

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "purple monkey dishwasher 42"


def email() -> str:
    return f"py-{uuid.uuid4().hex}@example.com"


def client(server) -> SyncGoTrueClient:
    return SyncGoTrueClient(url=server.auth_url, auto_refresh_token=False)


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_sign_up_returns_a_session_with_a_confirmed_user(server):
    address = email()
    auth = client(server)
    response = auth.sign_up(
        {"email": address, "password": PASSWORD, "options": {"data": {"full_name": "Ada"}}}
    )
    assert response.session is not None
    assert response.session.token_type == "bearer"
    assert response.session.expires_in == 3600
    user = response.user
    assert user.email == address
    assert user.aud == "authenticated"
    assert user.role == "authenticated"
    assert user.email_confirmed_at is not None
    assert user.app_metadata["provider"] == "email"
    assert user.app_metadata["role"] == "viewer"
    assert user.user_metadata["full_name"] == "Ada"
    assert user.identities and user.identities[0].provider == "email"
    assert auth.get_session().access_token == response.session.access_token


def test_access_tokens_carry_the_claims_a_supabase_database_reads(server):
    response = client(server).sign_up({"email": email(), "password": PASSWORD})
    token = claims(response.session.access_token)
    assert token["role"] == "authenticated"
    assert token["aud"] == "authenticated"
    assert token["sub"] == response.user.id
    assert token["iss"] == "http://localhost:8000/auth/v1"
    assert token["aal"] == "aal1"
    assert token["amr"][0]["method"] == "password"
    assert token["is_anonymous"] is False
    assert token["phone"] == ""
    assert uuid.UUID(token["session_id"])
    assert token["exp"] - token["iat"] == 3600


def test_a_second_sign_up_is_user_already_registered(server):
    address = email()
    client(server).sign_up({"email": address, "password": PASSWORD})
    with pytest.raises(AuthApiError) as raised:
        client(server).sign_up({"email": address, "password": PASSWORD})
    assert raised.value.status == 422
    assert raised.value.code == "user_already_exists"
    assert raised.value.message == "User already registered"


def test_a_short_password_is_a_weak_password_error_with_every_reason(server):
    # "short" is too short and a common password: GoTrue lists every reason that applies.
    with pytest.raises(AuthWeakPasswordError) as raised:
        client(server).sign_up({"email": email(), "password": "short"})
    assert raised.value.status == 422
    assert raised.value.code == "weak_password"
    assert raised.value.reasons == ["length", "pwned"]


def test_a_password_over_72_bytes_is_validation_failed_where_it_is_set(server):
    too_long = "é" * 36 + "x"  # 73 bytes, 37 characters
    with pytest.raises(AuthApiError) as raised:
        client(server).sign_up({"email": email(), "password": too_long})
    assert (raised.value.status, raised.value.code) == (400, "validation_failed")
    assert raised.value.message == "Password cannot be longer than 72 characters"
    auth = client(server)
    auth.sign_up({"email": email(), "password": PASSWORD})
    with pytest.raises(AuthApiError) as raised:
        auth.update_user({"password": too_long})
    assert (raised.value.status, raised.value.code) == (400, "validation_failed")


def test_the_mail_budget_answers_429_over_email_send_rate_limit(budget_server):
    # GOTRUE_RATE_LIMIT_EMAIL_SENT=2/1h, read as GoTrue reads it: two mails, then none.
    auth = client(budget_server)
    auth.reset_password_for_email(email())
    auth.reset_password_for_email(email())
    with pytest.raises(AuthApiError) as raised:
        auth.reset_password_for_email(email())
    assert (raised.value.status, raised.value.code) == (429, "over_email_send_rate_limit")
    assert raised.value.message == "email rate limit exceeded"


def test_a_second_magic_link_within_the_minute_is_over_email_send_rate_limit(server):
    address = email()
    auth = client(server)
    auth.sign_up({"email": address, "password": PASSWORD})
    auth.sign_in_with_otp({"email": address})
    with pytest.raises(AuthApiError) as raised:
        auth.sign_in_with_otp({"email": address})
    assert (raised.value.status, raised.value.code) == (429, "over_email_send_rate_limit")
    assert re.fullmatch(
        r"For security purposes, you can only request this after (59|60) seconds\.",
        raised.value.message,
    )


def test_an_invalid_address_is_refused_in_gotrue_words(server):
    with pytest.raises(AuthApiError) as raised:
        client(server).sign_up({"email": "not-an-address", "password": PASSWORD})
    assert raised.value.status == 400
    assert raised.value.code == "validation_failed"
    assert raised.value.message == "Unable to validate email address: invalid format"


def test_sign_in_with_password_then_get_user(server):
    address = email()
    client(server).sign_up({"email": address, "password": PASSWORD})
    auth = client(server)
    signed_in = auth.sign_in_with_password({"email": address.upper(), "password": PASSWORD})
    assert signed_in.session is not None
    assert signed_in.user.email == address
    fetched = auth.get_user()
    assert fetched.user.id == signed_in.user.id
    assert auth.get_claims()["claims"]["sub"] == signed_in.user.id


def test_wrong_password_and_unknown_user_are_the_same_invalid_credentials(server):
    address = email()
    client(server).sign_up({"email": address, "password": PASSWORD})
    answers = []
    for attempt in [(address, "wrong password here"), (email(), PASSWORD)]:
        with pytest.raises(AuthApiError) as raised:
            client(server).sign_in_with_password({"email": attempt[0], "password": attempt[1]})
        answers.append((raised.value.status, raised.value.code, raised.value.message))
    assert answers == [(400, "invalid_credentials", "Invalid login credentials")] * 2


def test_refresh_session_rotates_the_refresh_token(server):
    auth = client(server)
    first = auth.sign_up({"email": email(), "password": PASSWORD}).session
    refreshed = auth.refresh_session()
    assert refreshed.session.refresh_token != first.refresh_token
    assert claims(refreshed.session.access_token)["session_id"] == claims(first.access_token)["session_id"]
    assert auth.get_user(refreshed.session.access_token).user.id == first.user.id


def test_an_unknown_refresh_token_is_refresh_token_not_found(server):
    with pytest.raises(AuthApiError) as raised:
        client(server).refresh_session("no-such-refresh-token")
    assert raised.value.status == 400
    assert raised.value.code == "refresh_token_not_found"


def test_sign_out_ends_the_session_for_the_access_and_the_refresh_token(server):
    auth = client(server)
    session = auth.sign_up({"email": email(), "password": PASSWORD}).session
    auth.sign_out()
    assert auth.get_session() is None
    with pytest.raises(AuthApiError) as raised:
        client(server).get_user(session.access_token)
    assert (raised.value.status, raised.value.code) == (403, "session_not_found")
    with pytest.raises(AuthApiError) as raised:
        client(server).refresh_session(session.refresh_token)
    assert raised.value.code == "refresh_token_not_found"


def test_local_sign_out_keeps_the_other_sessions(server):
    address = email()
    first = client(server)
    first.sign_up({"email": address, "password": PASSWORD})
    second = client(server)
    second.sign_in_with_password({"email": address, "password": PASSWORD})
    second.sign_out({"scope": "local"})
    assert first.get_user().user.email == address


def test_one_account_for_both_surfaces(server):
    address = email()
    registered = httpx.post(
        f"{server.base}/api/v1/auth/register", json={"email": address, "password": PASSWORD}
    )
    assert registered.status_code == 201
    auth = client(server)
    session = auth.sign_in_with_password({"email": address, "password": PASSWORD}).session
    assert session.user.id == registered.json()["user"]["id"]
    # A logout through the v1 API ends the session opened through /auth/v1 as well.
    v1_login = httpx.post(
        f"{server.base}/api/v1/auth/login", json={"email": address, "password": PASSWORD}
    ).json()
    ended = httpx.post(
        f"{server.base}/api/v1/auth/logout?scope=global",
        headers={"Authorization": f"Bearer {v1_login['access_token']}"},
    )
    assert ended.status_code == 200
    with pytest.raises(AuthApiError) as raised:
        auth.get_user(session.access_token)
    assert raised.value.code == "session_not_found"


def test_a_v1_token_is_not_a_supabase_token_nor_the_reverse(server):
    address = email()
    session = client(server).sign_up({"email": address, "password": PASSWORD}).session
    v1 = httpx.post(
        f"{server.base}/api/v1/auth/login", json={"email": address, "password": PASSWORD}
    ).json()
    with pytest.raises(AuthApiError) as raised:
        client(server).get_user(v1["access_token"])
    assert (raised.value.status, raised.value.code) == (403, "bad_jwt")
    me = httpx.get(
        f"{server.base}/api/v1/auth/me",
        headers={"Authorization": f"Bearer {session.access_token}"},
    )
    assert me.status_code == 401
    assert me.json()["code"] == "token_invalid"


def test_without_the_version_header_errors_have_the_legacy_shape(server):
    answer = httpx.post(
        f"{server.auth_url}/token?grant_type=password",
        json={"email": email(), "password": PASSWORD},
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "code": 400,
        "error_code": "invalid_credentials",
        "msg": "Invalid login credentials",
    }
    assert answer.headers["x-sb-error-code"] == "invalid_credentials"


def test_repeated_failed_sign_ins_answer_429_over_request_rate_limit(limited_server):
    address = email()
    client(limited_server).sign_up({"email": address, "password": PASSWORD})
    codes = []
    for _ in range(40):
        try:
            client(limited_server).sign_in_with_password(
                {"email": address, "password": "wrong password here"}
            )
        except AuthApiError as error:
            codes.append((error.status, error.code))
            if error.status == 429:
                break
    assert codes[-1] == (429, "over_request_rate_limit")
    assert codes[0] == (400, "invalid_credentials")


def test_update_user_sets_metadata_and_a_new_password(server):
    address = email()
    auth = client(server)
    auth.sign_up({"email": address, "password": PASSWORD})
    other = client(server)
    other.sign_in_with_password({"email": address, "password": PASSWORD})
    updated = auth.update_user({"data": {"full_name": "Grace Hopper"}})
    assert updated.user.user_metadata["full_name"] == "Grace Hopper"
    with pytest.raises(AuthApiError) as raised:
        auth.update_user({"password": PASSWORD})
    assert (raised.value.status, raised.value.code) == (422, "same_password")
    auth.update_user({"password": NEW_PASSWORD})
    assert auth.get_user().user.email == address
    with pytest.raises(AuthApiError) as raised:
        other.get_user()
    assert raised.value.code == "session_not_found"
    assert client(server).sign_in_with_password(
        {"email": address, "password": NEW_PASSWORD}
    ).session is not None


def test_the_admin_api_takes_a_role_only_service_role_key(server):
    user = client(server).sign_up({"email": email(), "password": PASSWORD}).user
    service_role = pyjwt.encode({"role": "service_role"}, JWT_SECRET, algorithm="HS256")
    admin = SyncGoTrueAdminAPI(
        url=server.auth_url, headers={"Authorization": f"Bearer {service_role}"}
    )
    assert admin.get_user_by_id(user.id).user.email == user.email
    listed = admin.list_users(page=1, per_page=1000)
    assert user.id in [u.id for u in listed]
    assert listed[0].created_at >= listed[-1].created_at
    anon = pyjwt.encode({"role": "anon"}, JWT_SECRET, algorithm="HS256")
    refused = SyncGoTrueAdminAPI(url=server.auth_url, headers={"Authorization": f"Bearer {anon}"})
    with pytest.raises(AuthApiError) as raised:
        refused.get_user_by_id(user.id)
    assert (raised.value.status, raised.value.code) == (403, "not_admin")


def mailed(server, address: str, earlier: int = 0) -> tuple[str, str]:
    """The link and the code of the newest message to `address`, as the development mailer
    wrote it, once more than `earlier` have arrived."""
    folder = Path(server.data_dir.name) / "mail"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        paths = sorted(folder.glob("*.eml")) if folder.exists() else []
        mine = [t for t in (p.read_text() for p in paths) if t.startswith(f"To: {address}\n")]
        if len(mine) > earlier:
            message = mine[-1]
            link = re.search(r"(http\S+/verify\?\S+)", message).group(1)
            code = re.search(r"code: (\d{6})", message).group(1)
            return link, code
        time.sleep(0.05)
    raise AssertionError(f"no message for {address}")


def test_reset_password_for_email_then_verify_otp_with_the_code(server):
    address = email()
    client(server).sign_up({"email": address, "password": PASSWORD})
    auth = client(server)
    # The same answer for an address with no account: nothing to tell them apart.
    assert auth.reset_password_for_email(email()) is None
    assert auth.reset_password_for_email(address, {"redirect_to": "http://localhost:3000/reset"}) is None
    link, code = mailed(server, address)
    assert parse_qs(urlparse(link).query)["redirect_to"] == ["http://localhost:3000/reset"]

    events = []
    auth.on_auth_state_change(lambda event, _session: events.append(event))
    verified = auth.verify_otp({"email": address, "token": code, "type": "recovery"})
    assert verified.session is not None and verified.user.email == address
    assert "PASSWORD_RECOVERY" in events
    auth.update_user({"password": NEW_PASSWORD})
    signed_in = client(server).sign_in_with_password({"email": address, "password": NEW_PASSWORD})
    assert signed_in.session is not None

    with pytest.raises(AuthApiError) as raised:
        client(server).verify_otp({"email": address, "token": code, "type": "recovery"})
    assert raised.value.code == "otp_expired"
    assert raised.value.message == "Token has expired or is invalid"


def test_verify_otp_with_the_links_token_hash_works_once(server):
    address = email()
    client(server).sign_up({"email": address, "password": PASSWORD})
    client(server).reset_password_for_email(address)
    link, _code = mailed(server, address)
    token_hash = parse_qs(urlparse(link).query)["token"][0]
    verified = client(server).verify_otp({"token_hash": token_hash, "type": "recovery"})
    assert verified.user.email == address
    with pytest.raises(AuthApiError) as raised:
        client(server).verify_otp({"token_hash": token_hash, "type": "recovery"})
    assert raised.value.code == "otp_expired"
    assert raised.value.status == 403


def test_sign_in_with_otp_mails_a_code_that_verify_otp_accepts(server):
    address = email()
    auth = client(server)
    auth.sign_in_with_otp({"email": address, "options": {"data": {"full_name": "Grace"}}})
    link, code = mailed(server, address)
    assert parse_qs(urlparse(link).query)["type"] == ["magiclink"]
    verified = auth.verify_otp({"email": address, "token": code, "type": "email"})
    assert verified.session is not None
    assert verified.user.user_metadata["full_name"] == "Grace"

    with pytest.raises(AuthApiError) as raised:
        client(server).sign_in_with_otp({"email": email(), "options": {"should_create_user": False}})
    assert raised.value.code == "otp_disabled"


def admin_api(server) -> SyncGoTrueAdminAPI:
    service_role = pyjwt.encode({"role": "service_role"}, JWT_SECRET, algorithm="HS256")
    return SyncGoTrueAdminAPI(
        url=server.auth_url, headers={"Authorization": f"Bearer {service_role}"}
    )


def test_sign_up_and_update_user_keep_free_metadata(server):
    auth = client(server)
    address = email()
    response = auth.sign_up(
        {"email": address, "password": PASSWORD, "options": {"data": {"plan": "pro", "n": [1, 2]}}}
    )
    assert response.user.user_metadata["plan"] == "pro"
    assert response.user.user_metadata["n"] == [1, 2]
    assert claims(response.session.access_token)["user_metadata"]["plan"] == "pro"
    updated = auth.update_user({"data": {"plan": None, "theme": "dark"}})
    assert "plan" not in updated.user.user_metadata
    assert updated.user.user_metadata["theme"] == "dark"
    assert auth.get_user().user.user_metadata["theme"] == "dark"


def test_the_admin_api_creates_updates_bans_and_deletes_users(server):
    admin = admin_api(server)
    address = email()
    created = admin.create_user(
        {
            "email": address,
            "password": PASSWORD,
            "email_confirm": True,
            "user_metadata": {"plan": "pro"},
            "app_metadata": {"role": "creator", "team": "a"},
        }
    ).user
    assert created.email == address
    assert created.user_metadata["plan"] == "pro"
    assert created.app_metadata["role"] == "creator"
    assert created.app_metadata["team"] == "a"
    assert admin.get_user_by_id(created.id).user.id == created.id
    bare = admin.create_user({"email": email()}).user
    assert bare.user_metadata == {}
    with pytest.raises(AuthApiError) as raised:
        admin.create_user({"email": address})
    assert (raised.value.status, raised.value.code) == (422, "email_exists")

    updated = admin.update_user_by_id(
        created.id, {"user_metadata": {"plan": None, "seats": 3}, "app_metadata": {"role": "admin"}}
    ).user
    assert "plan" not in updated.user_metadata
    assert updated.user_metadata["seats"] == 3
    assert updated.app_metadata["role"] == "admin"

    auth = client(server)
    auth.sign_in_with_password({"email": address, "password": PASSWORD})
    banned = admin.update_user_by_id(created.id, {"ban_duration": "24h"}).user
    assert banned.banned_until is not None
    with pytest.raises(AuthApiError) as raised:
        auth.get_user()
    assert (raised.value.status, raised.value.code) == (403, "user_banned")
    with pytest.raises(AuthApiError) as raised:
        client(server).sign_in_with_password({"email": address, "password": PASSWORD})
    assert (raised.value.status, raised.value.code) == (400, "user_banned")
    admin.update_user_by_id(created.id, {"ban_duration": "none"})
    assert (
        client(server).sign_in_with_password({"email": address, "password": PASSWORD}).session
        is not None
    )

    admin.delete_user(created.id, should_soft_delete=True)
    soft = admin.get_user_by_id(created.id).user
    assert soft.deleted_at is not None
    assert soft.email != address
    admin.delete_user(bare.id)
    with pytest.raises(AuthApiError) as raised:
        admin.get_user_by_id(bare.id)
    assert (raised.value.status, raised.value.code) == (404, "user_not_found")


def test_the_admin_list_pages_with_per_page(server):
    admin = admin_api(server)
    for _ in range(3):
        admin.create_user({"email": email()})
    first = admin.list_users(page=1, per_page=2)
    second = admin.list_users(page=2, per_page=2)
    assert len(first) == 2 and len(second) == 2
    assert not {u.id for u in first} & {u.id for u in second}
    assert first[-1].created_at >= second[0].created_at


def test_sign_up_without_autoconfirm_mails_a_code_that_verify_otp_accepts(unconfirmed_server):
    address = email()
    auth = client(unconfirmed_server)
    response = auth.sign_up(
        {
            "email": address,
            "password": PASSWORD,
            "options": {"email_redirect_to": "http://localhost:3000/welcome"},
        }
    )
    assert response.session is None
    assert response.user is not None and response.user.email == address
    assert response.user.email_confirmed_at is None
    assert response.user.confirmation_sent_at is not None
    assert len(response.user.identities) == 1
    link, code = mailed(unconfirmed_server, address)
    query = parse_qs(urlparse(link).query)
    assert query["type"] == ["signup"]
    assert query["redirect_to"] == ["http://localhost:3000/welcome"]

    with pytest.raises(AuthApiError) as raised:
        client(unconfirmed_server).sign_in_with_password({"email": address, "password": PASSWORD})
    assert (raised.value.status, raised.value.code) == (400, "email_not_confirmed")
    assert raised.value.message == "Email not confirmed"
    # GoTrue's minute between two mails to one user.
    with pytest.raises(AuthApiError) as raised:
        auth.resend({"type": "signup", "email": address})
    assert (raised.value.status, raised.value.code) == (429, "over_email_send_rate_limit")

    verified = auth.verify_otp({"email": address, "token": code, "type": "signup"})
    assert verified.session is not None
    assert verified.user.email_confirmed_at is not None
    signed_in = client(unconfirmed_server).sign_in_with_password(
        {"email": address, "password": PASSWORD}
    )
    assert signed_in.session is not None

    # Registered and confirmed: a stand-in user without identities, no session, no error.
    again = client(unconfirmed_server).sign_up({"email": address, "password": PASSWORD})
    assert again.session is None
    assert again.user.identities == []
    assert again.user.id != response.user.id


def test_resend_answers_unknown_and_settled_addresses_alike(unconfirmed_server):
    auth = client(unconfirmed_server)
    unknown = auth.resend({"type": "signup", "email": email()})
    address = email()
    auth.sign_up({"email": address, "password": PASSWORD})
    _link, code = mailed(unconfirmed_server, address)
    auth.verify_otp({"email": address, "token": code, "type": "email"})
    settled = auth.resend({"type": "signup", "email": address})
    assert unknown == settled
    with pytest.raises(AuthApiError) as raised:
        auth.resend({"type": "recovery", "email": address})
    assert (raised.value.status, raised.value.code) == (400, "validation_failed")


def test_update_user_email_change_waits_for_both_addresses(server):
    old, new = email(), email()
    auth = client(server)
    auth.sign_up({"email": old, "password": PASSWORD})
    pending = auth.update_user({"email": new}).user
    assert pending.email == old
    assert pending.new_email == new
    assert pending.email_change_sent_at is not None
    assert auth.get_user().user.new_email == new

    # GoTrue's secure email change: a link and code to each address; both must confirm.
    to_new, _ = mailed(server, new)
    to_old, old_code = mailed(server, old)
    assert parse_qs(urlparse(to_new).query)["type"] == ["email_change"]
    assert parse_qs(urlparse(to_old).query)["type"] == ["email_change"]
    new_hash = parse_qs(urlparse(to_new).query)["token"][0]
    first = auth.verify_otp({"token_hash": new_hash, "type": "email_change"})
    assert first.session is None and first.user is None
    assert auth.get_user().user.email == old
    with pytest.raises(AuthApiError) as raised:
        client(server).verify_otp({"token_hash": new_hash, "type": "email_change"})
    assert raised.value.code == "otp_expired"

    changed = auth.verify_otp({"email": old, "token": old_code, "type": "email_change"})
    assert changed.session is not None
    assert changed.user.email == new
    assert auth.get_user().user.email == new
    assert auth.get_user().user.new_email is None
    assert client(server).sign_in_with_password({"email": new, "password": PASSWORD}).session

    taken = email()
    client(server).sign_up({"email": taken, "password": PASSWORD})
    with pytest.raises(AuthApiError) as raised:
        auth.update_user({"email": taken})
    assert (raised.value.status, raised.value.code) == (422, "email_exists")


def test_with_secure_email_change_off_the_new_address_alone_confirms(single_change_server):
    old, new = email(), email()
    auth = client(single_change_server)
    auth.sign_up({"email": old, "password": PASSWORD})
    auth.update_user({"email": new})
    link, _ = mailed(single_change_server, new)
    token_hash = parse_qs(urlparse(link).query)["token"][0]
    changed = auth.verify_otp({"token_hash": token_hash, "type": "email_change"})
    assert changed.user.email == new
    folder = Path(single_change_server.data_dir.name) / "mail"
    assert not [p for p in folder.glob("*.eml") if p.read_text().startswith(f"To: {old}\n")]


def test_invite_user_by_email_then_verify_otp_invite(server):
    address = email()
    admin = admin_api(server)
    invited = admin.invite_user_by_email(address, {"data": {"full_name": "Grace"}}).user
    assert invited.email == address
    assert invited.invited_at is not None
    assert invited.email_confirmed_at is None
    link, code = mailed(server, address)
    assert parse_qs(urlparse(link).query)["type"] == ["invite"]
    auth = client(server)
    verified = auth.verify_otp({"email": address, "token": code, "type": "invite"})
    assert verified.session is not None
    auth.update_user({"password": NEW_PASSWORD})
    assert client(server).sign_in_with_password({"email": address, "password": NEW_PASSWORD}).session
    with pytest.raises(AuthApiError) as raised:
        admin.invite_user_by_email(address)
    assert (raised.value.status, raised.value.code) == (422, "email_exists")


def test_generate_link_for_each_type_then_verify_otp(server):
    admin = admin_api(server)
    address = email()
    signup = admin.generate_link({"type": "signup", "email": address, "password": PASSWORD})
    props = signup.properties
    assert props.verification_type == "signup"
    assert props.redirect_to == "http://localhost:3000"
    assert props.action_link.startswith("http://localhost:8000/auth/v1/verify?")
    assert len(props.email_otp) == 6
    assert signup.user.email == address
    verified = client(server).verify_otp({"token_hash": props.hashed_token, "type": "signup"})
    assert verified.user.email == address

    for kind in ["magiclink", "recovery"]:
        props = admin.generate_link({"type": kind, "email": address}).properties
        assert props.verification_type == kind
        verified = client(server).verify_otp(
            {"email": address, "token": props.email_otp, "type": kind}
        )
        assert verified.session is not None

    invited = email()
    props = admin.generate_link({"type": "invite", "email": invited}).properties
    assert props.verification_type == "invite"
    assert client(server).verify_otp({"token_hash": props.hashed_token, "type": "invite"}).session

    moved = email()
    link = admin.generate_link({"type": "email_change_new", "email": address, "new_email": moved})
    assert link.user.new_email == moved
    current = admin.generate_link(
        {"type": "email_change_current", "email": address, "new_email": moved}
    )
    assert current.properties.verification_type == "email_change_current"
    half = client(server).verify_otp(
        {"email": moved, "token": link.properties.email_otp, "type": "email_change"}
    )
    assert half.session is None
    changed = client(server).verify_otp(
        {"email": address, "token": current.properties.email_otp, "type": "email_change"}
    )
    assert changed.user.email == moved

    with pytest.raises(AuthApiError) as raised:
        admin.generate_link({"type": "recovery", "email": email()})
    assert (raised.value.status, raised.value.code) == (404, "user_not_found")
