"""A Supabase project's asymmetric keys (VELRO_JWT_KEYS, ES256 signing, RS256 kept for
verification) judged by the Python client: `get_claims()` verifies Velro's tokens itself with the
key `/.well-known/jwks.json` publishes."""

import base64
import json
import uuid

import pytest
from supabase_auth import SyncGoTrueClient
from supabase_auth.errors import AuthApiError

from conftest import ROOT, Server

PASSWORD = "correct horse battery staple"
FIXTURE = ROOT / "crates" / "velro" / "tests" / "fixtures" / "test-jwks.json"


@pytest.fixture(scope="module")
def es256_server():
    keys = json.loads(FIXTURE.read_text())
    signing = {**keys["ec"], "key_ops": ["sign", "verify"]}
    verifying = {**keys["rsa"], "key_ops": ["verify"]}
    started = Server(
        {"VELRO_RATE_LIMITS": "off", "VELRO_JWT_KEYS": json.dumps([signing, verifying])}
    )
    yield started
    started.stop()


def header(jwt: str) -> dict:
    part = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def signed_in(server, address: str) -> SyncGoTrueClient:
    auth = SyncGoTrueClient(url=server.auth_url, auto_refresh_token=False)
    auth.sign_up({"email": address, "password": PASSWORD})
    auth.sign_in_with_password({"email": address, "password": PASSWORD})
    return auth


def test_get_claims_verifies_es256_tokens_with_the_published_key(es256_server):
    address = f"py-keys-{uuid.uuid4().hex}@example.com"
    auth = signed_in(es256_server, address)
    token = auth.get_session().access_token
    assert header(token)["alg"] == "ES256"
    assert header(token)["kid"] == "test-ec-1"
    result = auth.get_claims()
    assert result["headers"]["kid"] == "test-ec-1"
    assert result["claims"]["email"] == address
    assert result["claims"]["role"] == "authenticated"

    # Proof that the check was local, through the JWKS: once the session is ended the server
    # refuses the token, but its signature still verifies with the published key.
    other = signed_in(es256_server, f"py-keys-{uuid.uuid4().hex}@example.com")
    ended = other.get_session().access_token
    other.sign_out()
    with pytest.raises(AuthApiError):
        auth.get_user(ended)
    assert auth.get_claims(jwt=ended)["claims"]["sub"] == header_sub(ended)

    # A token whose signature was tampered with is refused by the local check.
    head, payload, signature = token.split(".")
    forged = ".".join([head, payload, signature[::-1]])
    with pytest.raises(Exception):
        auth.get_claims(jwt=forged)


def header_sub(jwt: str) -> str:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["sub"]


def test_the_jwks_lists_the_ec_and_rsa_public_keys_and_no_secret(es256_server):
    import httpx

    jwks = httpx.get(f"{es256_server.auth_url}/.well-known/jwks.json").json()
    kids = sorted(key["kid"] for key in jwks["keys"])
    assert kids == ["test-ec-1", "test-rsa-1"]
    for key in jwks["keys"]:
        assert key["kty"] in ("EC", "RSA")
        assert "d" not in key and "k" not in key
