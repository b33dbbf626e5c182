"""Fixtures for the authorization server: app, test client, people, PATs."""

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from authz_server import create_app, db
from authz_server.seed import seed_demo
from tests.conftest import LiveServer, free_port

ISSUER = "http://localhost"
FAST_HASH = "pbkdf2:sha256:1000"
EHR_REDIRECT = "http://localhost:8401/protect/callback"
EHR_AUTH = ("ehr", "ehr-demo-secret")
DOCTOR_AUTH = ("doctor-app", "doctor-demo-secret")


def build_app(database_url, signing_jwk, **overrides):
    config = {
        "TESTING": True,
        "MIGRATE_ON_START": True,
        "DATABASE_URL": database_url,
        "ISSUER": ISSUER,
        "INITIAL_SIGNING_JWK": signing_jwk,
        "SECRET_KEY": "test-secret",
    }
    config.update(overrides)
    app = create_app(config)
    with app.app_context():
        # Fast hashes for the suite; test_accounts.py checks the real default (scrypt).
        seed_demo(db.session(), password_method=FAST_HASH)
    return app


@pytest.fixture
def app(database_url, signing_jwk):
    app = build_app(database_url, signing_jwk)
    yield app
    app.extensions["authz_db"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_as(database_url, signing_jwk):
    """The AS on a real port, its issuer being its own URL."""
    port = free_port()
    app = build_app(database_url, signing_jwk, ISSUER=f"http://127.0.0.1:{port}")
    server = LiveServer(app, port).start()
    yield server
    server.stop()
    app.extensions["authz_db"].engine.dispose()


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    match = CSRF_RE.search(text)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client, username: str, password: str | None = None):
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password if password is not None else username,
            "csrf_token": csrf_token(page.data),
        },
    )


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorize(client, params: dict, allow: bool = True):
    """Drive the consent page as the signed-in person; returns the final response."""
    page = client.get("/authorize", query_string=params)
    if page.status_code != 200:
        return page
    form = {"csrf_token": csrf_token(page.data), ("allow" if allow else "deny"): "1"}
    return client.post("/authorize", query_string=params, data=form)


def redirect_params(response) -> dict:
    assert response.status_code == 302, response.data
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def exchange_code(
    client, code: str, verifier: str | None, redirect_uri=EHR_REDIRECT, auth=EHR_AUTH, **extra
):
    """POST /token with an authorization code; ``auth=None`` for public or post-auth clients."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **extra}
    if verifier:
        data["code_verifier"] = verifier
    return client.post("/token", data=data, auth=auth)


def refresh(client, refresh_token: str, auth=EHR_AUTH):
    return client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}, auth=auth
    )


def code_flow_tokens(
    client,
    username="alice",
    scope="openid uma_protection",
    client_auth=EHR_AUTH,
    redirect_uri=EHR_REDIRECT,
) -> dict:
    """Sign in, consent, exchange the code: a real code flow through the test client."""
    login(client, username)
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_auth[0],
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    back = redirect_params(authorize(client, params))
    response = exchange_code(client, back["code"], verifier, redirect_uri, client_auth)
    assert response.status_code == 200, response.json
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/console/").data)})
    return response.json


@pytest.fixture
def alice_pat(client):
    """A PAT for Alice held by the EHR, from the code flow (PAT-5, interactive)."""
    return code_flow_tokens(client, "alice")["access_token"]


@pytest.fixture
def carol_pat(client):
    return code_flow_tokens(client, "carol")["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


RECORD = {
    "name": "Alice's medical history",
    "type": "https://uma-health.example/rsrc/record-set/history",
    "resource_scopes": ["read", "write"],
    "icon_uri": "http://localhost:8401/static/icons/history.svg",
}


@pytest.fixture
def register(client):
    """Factory: register a resource with a PAT and return its ``_id``."""

    def _register(pat: str, body: dict | None = None) -> str:
        response = client.post("/uma/resource_set", json=body or RECORD, headers=bearer(pat))
        assert response.status_code == 201, response.json
        return response.json["_id"]

    return _register
