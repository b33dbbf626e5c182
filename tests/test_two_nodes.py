"""Several nodes on one PostgreSQL (DESIGN.md "Where it grows"): two independent gunicorn
masters of the AS, then two of the EHR, started at the same instant on an empty database, each
carrying its part of one UMA flow. Nothing a node keeps in memory may matter."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from sqlalchemy import create_engine, text

from tests.authz.conftest import DOCTOR_AUTH, EHR_AUTH, bearer, build_app, pkce_pair
from tests.authz.test_uma_grant import ID_TOKEN, UMA_GRANT, grant, id_token_for, share
from tests.conftest import POSTGRES_URL, LiveServer, free_port, unavailable
from tests.records.conftest import Browser
from tests.records.test_ehr_protection import challenge_of

pytestmark = pytest.mark.live

NAMES = ("AS_", "EHR_", "DOCTOR_", "DATABASE_URL", "MQTT_")
CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy.cfg"


@pytest.fixture
def shared_database():
    """One empty PostgreSQL database for every node of the test."""
    if not POSTGRES_URL.startswith("postgresql"):
        unavailable("several nodes share one PostgreSQL: set TEST_DATABASE_URL")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"uma_nodes_{os.urandom(5).hex()}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Nodes:
    """Independent masters of one app, started together, each as a deployment starts a node:
    migrate (``db upgrade``), then gunicorn with two workers."""

    def __init__(self, ports: list[int]):
        self.ports = ports
        self.urls = [f"http://127.0.0.1:{port}" for port in ports]
        self.processes = []
        self.logs = []

    def start(self, cli: str, target: str, env: dict, log_dir) -> "Nodes":
        self.logs = [log_dir / f"{target.split('.')[0]}-{port}.log" for port in self.ports]
        for port, log in zip(self.ports, self.logs, strict=True):
            gunicorn = f"{sys.executable} -m gunicorn --workers 2 --bind 127.0.0.1:{port} {target}"
            command = f"{sys.executable} -m {cli} db upgrade && exec {gunicorn}"
            with open(log, "wb") as out:
                self.processes.append(
                    subprocess.Popen(["sh", "-c", command], env=env, stdout=out, stderr=out)
                )
        return self

    def wait(self, path: str) -> "Nodes":
        deadline = time.monotonic() + 60
        for url, process, log in zip(self.urls, self.processes, self.logs, strict=True):
            while True:
                try:
                    if requests.get(url + path, timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=15)


class Balancer:
    """deploy/haproxy.cfg, the compose profile's balancer, run for real in front of the
    nodes: the issuer and the EHR's public URL name it, never a node."""

    def __init__(self, log_dir):
        self.as_port, self.ehr_port = free_port(), free_port()
        self.as_url = f"http://127.0.0.1:{self.as_port}"
        self.ehr_url = f"http://127.0.0.1:{self.ehr_port}"
        self.log = log_dir / "haproxy.log"
        self.process = None

    def start(self, as_nodes: list[str], ehr_nodes: list[str]) -> "Balancer":
        haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
        if haproxy is None:
            unavailable("no haproxy: `make test` installs Debian's package")
        env = {
            "BALANCER_HOST": "127.0.0.1",
            "AS_PORT": str(self.as_port),
            "EHR_PORT": str(self.ehr_port),
            **{f"AS_NODE_{i}": urlsplit(url).netloc for i, url in enumerate(as_nodes, 1)},
            **{f"EHR_NODE_{i}": urlsplit(url).netloc for i, url in enumerate(ehr_nodes, 1)},
        }
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [haproxy, "-db", "-f", str(CONFIG)], env=env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.as_port), timeout=1).close()
                return self
            except OSError:
                assert self.process.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def app_env(**settings) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(NAMES)}
    env.update(settings)
    return env


def cli(module: str, *args: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def sign_in(node: str, username: str) -> requests.Session:
    """A browser signed in at one AS node."""
    browser = Browser()
    page = browser.get(node + "/login")
    answer = browser.post(
        node + "/login",
        data={
            "username": username,
            "password": username,
            "csrf_token": browser.form_token(page.text),
        },
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:300]
    return browser


def code_flow(auth_node, token_node, username, client, redirect_uri, scope) -> dict:
    """Sign in and consent at ``auth_node``, redeem the code at ``token_node``."""
    browser = sign_in(auth_node, username)
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client[0],
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "s",
        "nonce": "n",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = browser.get(auth_node + "/authorize", params=params, allow_redirects=False)
    if page.status_code == 200:
        page = browser.post(
            auth_node + "/authorize",
            params=params,
            data={"csrf_token": browser.form_token(page.text), "allow": "1"},
            allow_redirects=False,
        )
    code = parse_qs(urlsplit(page.headers["Location"]).query)["code"][0]
    tokens = requests.post(
        token_node + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=client,
        timeout=10,
    )
    assert tokens.status_code == 200, tokens.text
    return tokens.json()


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def test_two_as_nodes_carry_one_uma_flow(shared_database, tmp_path):
    """The PAT from node A, the registration and the ticket from node B, the RPT from A, the
    introspection from B; one key and one session secret although both nodes started at the
    same instant on an empty database; a key rotation seen by both at their next request;
    through the balancer, the issuer's URLs whichever node answers."""
    balancer = Balancer(tmp_path)
    issuer = balancer.as_url
    env = app_env(
        AS_ISSUER=issuer,
        AS_DATABASE_URL=shared_database,
        AS_TRUSTED_PROXIES="1",
        EHR_URL="http://localhost:8401",
        DOCTOR_URL="http://localhost:8402",
    )
    nodes = Nodes([free_port(), free_port()])
    nodes.start("authz_server.cli", "authz_server.wsgi:app", env, tmp_path).wait("/jwks")
    try:
        a, b = nodes.urls
        balancer.start(nodes.urls, [f"http://127.0.0.1:{free_port()}"] * 2)
        keys = [requests.get(node + "/jwks", timeout=5).json()["keys"] for node in (a, b)]
        assert keys[0] == keys[1] and len(keys[0]) == 1  # one key, made by whichever was first
        cli("authz_server.cli", "seed-demo", env=env)

        # One session secret: signed in through A, the console answers through B.
        alice = sign_in(a, "alice")
        assert alice.get(b + "/console/", allow_redirects=False).status_code == 200

        ehr_redirect = "http://localhost:8401/protect/callback"
        pat = code_flow(a, a, "alice", EHR_AUTH, ehr_redirect, "openid uma_protection")
        pat = pat["access_token"]
        resource = requests.post(
            b + "/uma/resource_set",
            json={"name": "Alice's history", "resource_scopes": ["read", "write"]},
            headers=bearer(pat),
            timeout=5,
        )
        assert resource.status_code == 201, resource.text
        resource_id = resource.json()["_id"]
        assert resource.json()["user_access_policy_uri"].startswith(issuer + "/")

        token = alice.get(a + "/api/owner/session", timeout=5).json()["csrf_token"]
        shared = alice.post(
            b + "/api/owner/policies",
            json={
                "subject": {"type": "user", "username": "carol"},
                "resources": [resource_id],
                "scopes": ["read"],
            },
            headers={"X-CSRFToken": token},
            timeout=5,
        )
        assert shared.status_code == 201, shared.text

        ticket = requests.post(
            b + "/uma/permission",
            json={"resource_id": resource_id, "resource_scopes": ["read"]},
            headers=bearer(pat),
            timeout=5,
        ).json()["ticket"]
        doctor_redirect = "http://localhost:8402/auth/callback"
        id_token = code_flow(b, b, "carol", DOCTOR_AUTH, doctor_redirect, "openid")["id_token"]
        rpt = requests.post(
            a + "/token",
            data={
                "grant_type": UMA_GRANT,
                "ticket": ticket,
                "claim_token": id_token,
                "claim_token_format": ID_TOKEN,
            },
            auth=DOCTOR_AUTH,
            timeout=5,
        )
        assert rpt.status_code == 200, rpt.text
        rpt = rpt.json()["access_token"]
        answer = requests.post(
            b + "/introspect", data={"token": rpt}, headers=bearer(pat), timeout=5
        ).json()
        assert answer["active"] is True
        assert answer["permissions"][0]["resource_id"] == resource_id

        # A ticket is single-use across nodes too (TKT-3): redeeming it again at B fails.
        again = requests.post(
            b + "/token",
            data={
                "grant_type": UMA_GRANT,
                "ticket": ticket,
                "claim_token": id_token,
                "claim_token_format": ID_TOKEN,
            },
            auth=DOCTOR_AUTH,
            timeout=5,
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

        old_kid = kid_of(id_token)
        new_kid = cli("authz_server.cli", "rotate-key", env=env).split()[-1]
        assert new_kid != old_kid
        for node in (a, b):  # at the very next request, no restart, no waiting
            kids = [key["kid"] for key in requests.get(node + "/jwks", timeout=5).json()["keys"]]
            assert set(kids) == {old_kid, new_kid}
            fresh = code_flow(node, node, "carol", DOCTOR_AUTH, doctor_redirect, "openid")
            assert kid_of(fresh["id_token"]) == new_kid

        # Through the balancer, one request per connection (round robin over the nodes).
        for _ in range(4):
            close = {"Connection": "close"}
            found = requests.get(issuer + "/.well-known/uma2-configuration", headers=close)
            assert found.json()["issuer"] == issuer
            registered = requests.post(
                issuer + "/uma/resource_set",
                json={"name": "Alice's labs", "resource_scopes": ["read"]},
                headers={**bearer(pat), **close},
                timeout=5,
            )
            assert registered.headers["Location"].startswith(issuer + "/uma/resource_set/")
            assert registered.json()["user_access_policy_uri"].startswith(issuer + "/console/")
    finally:
        balancer.stop()
        nodes.stop()


def test_two_ehr_nodes_carry_one_uma_flow(shared_database, tmp_path, signing_jwk, monkeypatch):
    """Alice signs in through node B and comes back through the balancer (the EHR's public
    URL), links her records through B; a client gets its ticket from A and its record from B,
    then A: sessions, PATs, registrations and the introspection cache are the database's, not
    a node's. The directory's URIs name the public URL, not a node."""
    nodes = Nodes([free_port(), free_port()])
    a, b = nodes.urls
    balancer = Balancer(tmp_path)
    public = balancer.ehr_url
    monkeypatch.setenv("EHR_URL", public)  # the EHR's public address, in its redirect URIs
    as_port = free_port()
    as_app = build_app(
        f"sqlite:///{tmp_path / 'as.db'}", signing_jwk, ISSUER=f"http://127.0.0.1:{as_port}"
    )
    authz = LiveServer(as_app, as_port).start()
    env = app_env(
        AS_ISSUER=authz.url, EHR_URL=public, EHR_DATABASE_URL=shared_database, EHR_AS_TIMEOUT="5"
    )
    nodes.start("records_server.cli", "records_server.wsgi:app", env, tmp_path).wait("/healthz")
    balancer.start([authz.url, authz.url], nodes.urls)
    try:
        cli("records_server.cli", "seed-demo", env=env)
        alice = Browser()
        page = alice.through_the_as(alice.get(b + "/login"), "alice")
        assert page.url.startswith(public) and "Protect my records" in page.text
        linked = alice.through_the_as(
            alice.post(b + "/protect", data={"csrf_token": alice.form_token(page.text)}), "alice"
        )
        assert "now protected" in linked.text, linked.text[:500]
        engine = create_engine(shared_database)
        with engine.connect() as connection:
            history = connection.execute(
                text("SELECT uma_resource_id FROM ehr_record_sets WHERE name = 'history'")
            ).scalar_one()
        engine.dispose()
        share(as_app.test_client(), {"type": "user", "username": "carol"}, [history])

        url = "/api/patients/alice/records/history"
        challenge = requests.get(a + url, timeout=10)
        assert challenge.status_code == 401
        ticket = challenge_of(challenge)["ticket"]
        as_client = as_app.test_client()
        id_token = id_token_for(
            as_client, "carol", redirect_uri="http://localhost:8402/auth/callback"
        )
        rpt = grant(as_client, ticket, claim_token=id_token).json["access_token"]
        for node in (b, a, b):
            record = requests.get(node + url, headers=bearer(rpt), timeout=10)
            assert record.status_code == 200, record.text
            assert record.json()["resourceType"] == "Bundle"
        assert "Protected." in alice.get(b + "/").text
        directory = requests.get(public + "/api/patients/alice", timeout=10).json()
        assert all(item["uri"].startswith(public + "/api/") for item in directory["resources"])
    finally:
        balancer.stop()
        nodes.stop()
        authz.stop()
        as_app.extensions["authz_db"].engine.dispose()
