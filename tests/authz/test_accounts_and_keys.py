"""People, secrets shared by workers, and signing-key rotation."""

import os
import subprocess
import sys
import time

import jwt
import pytest
import requests
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from authz_server import create_app, db
from authz_server.keys import rotate_signing_key
from authz_server.models import Client, Group, SigningKey, User
from authz_server.seed import seed_demo
from tests.authz.conftest import EHR_AUTH, build_app, code_flow_tokens, login
from tests.conftest import free_port, gunicorn


def test_default_password_hash_is_scrypt(app):
    with app.app_context():
        user = User(username="zoe")
        user.set_password("s3cret")
        assert user.password_hash.startswith("scrypt:")
        assert check_password_hash(user.password_hash, "s3cret")
        assert user.check_password("s3cret") and not user.check_password("nope")


def test_demo_seed_is_idempotent_and_matches_the_design(app):
    with app.app_context():
        session = db.session()
        seed_demo(session, password_method="pbkdf2:sha256:1000")
        assert session.scalar(select(func.count()).select_from(User)) == 6
        assert session.scalar(select(func.count()).select_from(Client)) == 2
        surgery = session.scalar(select(Group).where(Group.name == "surgery-center"))
        members = session.scalars(select(User).where(User.groups.contains(surgery))).all()
        assert sorted(u.username for u in members) == ["bob", "dave", "erin"]
        mallory = session.scalar(select(User).where(User.username == "mallory"))
        assert mallory.email == "mallory@elsewhere.example" and mallory.groups == []


def test_service_accounts_cannot_sign_in(client):
    client.post("/token", data={"grant_type": "client_credentials"}, auth=EHR_AUTH)
    response = login(client, "service-account-ehr", "")
    assert response.status_code == 400  # no password can match: the form refuses
    assert login(client, "service-account-ehr", "anything").status_code == 401


def test_two_workers_share_the_session_key_and_the_signing_key(database_url):
    """State lives in the database: a second process on the same DB signs and reads alike."""
    first = create_app({"MIGRATE_ON_START": True, "DATABASE_URL": database_url, "TESTING": True})
    with first.app_context():
        seed_demo(db.session(), password_method="pbkdf2:sha256:1000")
    second = create_app({"MIGRATE_ON_START": True, "DATABASE_URL": database_url, "TESTING": True})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 40
    assert first.test_client().get("/jwks").json == second.test_client().get("/jwks").json

    # Signed in through one worker, the session cookie works on the other.
    browser = first.test_client()
    login(browser, "alice")
    cookie = browser.get_cookie("uma_as_session")
    other = second.test_client()
    other.set_cookie("uma_as_session", cookie.value)
    assert other.get("/console/").status_code == 200
    for app in (first, second):
        app.extensions["authz_db"].engine.dispose()


def test_rotation_keeps_old_tokens_verifiable(app, client):
    """JWKS holds several keys: tokens signed before a rotation still verify after it."""
    before = code_flow_tokens(client, "alice")["id_token"]
    with app.app_context():
        new_kid = rotate_signing_key(db.session())
    after = code_flow_tokens(client, "alice")["id_token"]
    keys = {k["kid"]: k for k in client.get("/jwks").json["keys"]}
    assert len(keys) == 2
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    for token in (before, after):
        kid = jwt.get_unverified_header(token)["kid"]
        jwt.decode(token, jwt.PyJWK(keys[kid]).key, algorithms=["RS256"], audience="ehr")


def test_superseded_keys_leave_the_jwks_after_the_grace_period(database_url, signing_jwk):
    app = build_app(database_url, signing_jwk, KEY_GRACE_SECONDS=0)
    with app.app_context():
        rotate_signing_key(db.session())
        assert db.session().scalar(select(func.count()).select_from(SigningKey)) == 2
    time.sleep(0.01)
    keys = app.test_client().get("/jwks").json["keys"]
    assert len(keys) == 1 and keys[0]["kid"] != signing_jwk["kid"]
    app.extensions["authz_db"].engine.dispose()


@pytest.mark.live
def test_gunicorn_workers_publish_one_key(tmp_path):
    """Under gunicorn with several workers, every worker serves the same generated key."""
    port = free_port()
    env = {
        **os.environ,
        "AS_ISSUER": f"http://127.0.0.1:{port}",
        "AS_DATABASE_URL": f"sqlite:///{tmp_path / 'as.db'}",
    }
    env.pop("DATABASE_URL", None)
    # As make demo does: the schema first, then the workers (which only check it).
    subprocess.run([sys.executable, "-m", "authz_server.cli", "db", "upgrade"], env=env, check=True)
    with gunicorn("authz_server.wsgi:app", port, env, tmp_path, ready_path="/jwks"):
        kids = set()
        with requests.Session() as http:
            for _ in range(30):
                keys = http.get(
                    f"http://127.0.0.1:{port}/jwks", timeout=5, headers={"Connection": "close"}
                ).json()["keys"]
                kids.update(k["kid"] for k in keys)
        assert len(kids) == 1


@pytest.mark.live
def test_concurrent_first_client_credentials_make_one_service_account(live_as):
    """Found by the benchmark: eight simultaneous first calls once raced to a 500."""
    from concurrent.futures import ThreadPoolExecutor

    def call(_):
        return requests.post(
            f"{live_as.url}/token",
            data={"grant_type": "client_credentials"},
            auth=EHR_AUTH,
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(call, range(8)))
    assert statuses == [200] * 8
    with live_as.app.app_context():
        accounts = (
            db.session().scalars(select(User).where(User.username == "service-account-ehr")).all()
        )
        assert len(accounts) == 1
