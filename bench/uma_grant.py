"""Benchmark of the UMA grant on the authorization server as it runs in production.

Starts ``gunicorn --workers N authz_server.wsgi:app`` on 127.0.0.1 against a fresh SQLite file
and/or a scratch PostgreSQL database, drives it over real HTTP and prints:

- full grants/s: POST /uma/permission (PAT) → ticket → POST /token with the uma-ticket grant,
  carol's ID token pushed as claim token, policy evaluation → 200 RPT;
- plain client_credentials tokens/s at the same concurrency, and the cost ratio UMA/plain;
- the parts of a full grant alone (the permission request, and GET of the discovery document
  as the cost of a request that does nothing) and the lowest UMA/plain they allow;
- p50/p99 latency of a full grant with 10 registered resources and with a large data set
  (default 100,000 resources / 50,000 policies), and the ratio large/small.

A benchmark, not a test: it asserts nothing about timing and only prints figures (and a
markdown block ready for BENCHMARKS.md). Every load loop is bounded in time and in count;
all traffic stays on 127.0.0.1. Run it with the project's virtualenv:

    .venv/bin/python bench/uma_grant.py                 # both backends, defaults
    .venv/bin/python bench/uma_grant.py --quick         # smoke run: small data, 2 s phases
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import http.client
import json
import math
import os
import platform
import random
import re
import resource
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from machine import (
    CLK_TCK,
    REPO,
    ScratchDatabase,
    cpu_model,
    cpu_seconds,
    free_port,
    git,
    machine_cpu_seconds,
    package_versions,
    postgres_cpu_seconds,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

EHR_AUTH = ("ehr", "ehr-demo-secret")
EHR_REDIRECT = "http://localhost:8401/protect/callback"
DOCTOR_AUTH = ("doctor-app", "doctor-demo-secret")
DOCTOR_REDIRECT = "http://localhost:8402/auth/callback"
UMA_TICKET_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
ID_TOKEN_FORMAT = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
SMALL_RESOURCES = 10
DEFAULT_APP = "authz_server.wsgi:app"
# Hard ceiling on operations per measured phase, whatever the duration: loops are bounded.
MAX_OPS_PER_SECOND = 5000


# --------------------------------------------------------------------------------------
# CPU accounting: the load generator, the gunicorn workers, the whole machine
# --------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass
class CpuSnapshot:
    wall: float
    client: float
    server: float
    database: float
    machine_busy: float  # CPU seconds of all CPUs since boot
    machine_total: float

    @classmethod
    def take(cls, server_pids: list[int]) -> CpuSnapshot:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy, total = machine_cpu_seconds()
        return cls(
            wall=time.perf_counter(),
            client=usage.ru_utime + usage.ru_stime,
            server=sum(cpu_seconds(p) for p in server_pids),
            database=postgres_cpu_seconds(),
            machine_busy=busy,
            machine_total=total,
        )


@dataclass
class CpuUse:
    """CPU used during a phase, in cores (1.0 = one core fully busy)."""

    client: float
    server: float
    database: float  # PostgreSQL processes; 0 for SQLite, which runs inside the workers
    machine: float  # every process on the machine
    ncpu: int

    @classmethod
    def between(cls, a: CpuSnapshot, b: CpuSnapshot) -> CpuUse:
        wall = max(b.wall - a.wall, 1e-9)
        ncpu = os.cpu_count() or 1
        # Busy share of the machine's CPU time, over at least one clock tick.
        total = max(b.machine_total - a.machine_total, 1 / CLK_TCK)
        return cls(
            client=(b.client - a.client) / wall,
            server=(b.server - a.server) / wall,
            database=(b.database - a.database) / wall,
            machine=(b.machine_busy - a.machine_busy) / total * ncpu,
            ncpu=ncpu,
        )

    @property
    def other(self) -> float:
        """Neither the load generator, nor gunicorn, nor the database: the kernel's loopback
        networking and whatever else runs on the machine (it competes for the same cores)."""
        return max(self.machine - self.client - self.server - self.database, 0.0)


# --------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    concurrency: int
    seconds: float
    ok: int
    latencies: list[float]
    errors: Counter
    cpu: CpuUse | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        """Nearest-rank percentile of successful operations, in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1] * 1000

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class OpFailed(Exception):
    """A non-success answer: counted as an error, never as a grant."""


class LeanClient:
    """A keep-alive HTTP/1.1 client on the standard library, one per load thread.

    It costs the machine about a third of what requests does per call (measured here:
    ~0.6 ms against ~1.7 ms of client CPU per request), which matters when the load generator
    shares the server's two cores. It reconnects whenever the server closes the connection
    (gunicorn's sync workers close after every response)."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        return self.send("POST", path, body, headers)

    def get(self, path: str) -> tuple[int, bytes]:
        return self.send("GET", path, None, {})

    def send(self, method: str, path: str, body: bytes | None, headers: dict):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            self.conn.request(method, path, body, headers)
            response = self.conn.getresponse()
            data = response.read()
        except Exception:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class RequestsClient:
    """The same interface over a requests.Session (keep-alive where the server allows it)."""

    def __init__(self, base: str):
        self.base = base
        self.session = requests.Session()

    def post(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        response = self.session.post(self.base + path, data=body, headers=headers, timeout=TIMEOUT)
        return response.status_code, response.content

    def get(self, path: str) -> tuple[int, bytes]:
        response = self.session.get(self.base + path, timeout=TIMEOUT)
        return response.status_code, response.content

    def close(self) -> None:
        self.session.close()


CLIENTS = {"http": LeanClient, "requests": RequestsClient}
CLIENT_LABELS = {
    "http": "keep-alive http.client connection (stdlib)",
    "requests": "requests.Session",
}
TRANSPORT_ERRORS = (OSError, http.client.HTTPException, requests.RequestException)


def run_load(name, op, make_client, concurrency, seconds, server_pids, max_ops=None):
    """Run ``op(client)`` from ``concurrency`` threads, each with its own client from
    ``make_client()``, for ``seconds`` and at most ``max_ops`` operations in all."""
    max_ops = max_ops or max(1, int(seconds * MAX_OPS_PER_SECOND))
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: Counter = Counter()
    start_barrier = threading.Barrier(concurrency + 1)
    deadline = 0.0

    def worker():
        nonlocal issued
        local_lat: list[float] = []
        local_err: Counter = Counter()
        client = make_client()
        try:
            start_barrier.wait()
            while True:
                with lock:
                    if issued >= max_ops:
                        break
                    issued += 1
                t0 = time.perf_counter()
                if t0 >= deadline:
                    break
                try:
                    op(client)
                except OpFailed as error:
                    local_err[str(error)] += 1
                except TRANSPORT_ERRORS as error:
                    local_err[f"exception {type(error).__name__}"] += 1
                else:
                    local_lat.append(time.perf_counter() - t0)
        finally:
            client.close()
            with lock:
                latencies.extend(local_lat)
                errors.update(local_err)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    before = CpuSnapshot.take(server_pids)
    deadline = time.perf_counter() + seconds
    start_barrier.wait()
    for thread in threads:
        # Every operation has a 30 s socket timeout, so this join is bounded too.
        thread.join(timeout=seconds + 120)
    after = CpuSnapshot.take(server_pids)
    return PhaseResult(
        name,
        concurrency,
        after.wall - before.wall,
        len(latencies),
        latencies,
        errors,
        CpuUse.between(before, after),
    )


# --------------------------------------------------------------------------------------
# The protocol steps, over HTTP
# --------------------------------------------------------------------------------------

TIMEOUT = 30


def _csrf(html: str) -> str:
    match = CSRF_RE.search(html)
    if not match:
        raise RuntimeError("page has no CSRF token")
    return match.group(1)


def browser_login(browser: requests.Session, base: str, username: str) -> None:
    page = browser.get(f"{base}/login", timeout=TIMEOUT)
    page.raise_for_status()
    response = browser.post(
        f"{base}/login",
        data={"username": username, "password": username, "csrf_token": _csrf(page.text)},
        timeout=TIMEOUT,
    )
    if response.status_code != 200 or "/login" in urlsplit(response.url).path:
        raise RuntimeError(f"sign-in as {username} failed: {response.status_code}")


def code_flow(
    browser: requests.Session, base: str, client_auth, redirect_uri: str, scope: str
) -> dict:
    """The authorization code flow as a browser and a client would run it: consent page,
    allow, code from the redirect, code exchange with PKCE (S256) and client_secret_basic."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    params = {
        "response_type": "code",
        "client_id": client_auth[0],
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_hex(6),
        "nonce": secrets.token_hex(6),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    url = f"{base}/authorize?{urlencode(params)}"
    page = browser.get(url, timeout=TIMEOUT)
    if page.status_code != 200:
        raise RuntimeError(f"consent page: {page.status_code}")
    back = browser.post(
        url,
        data={"csrf_token": _csrf(page.text), "allow": "1"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    if back.status_code != 302:
        raise RuntimeError(f"consent: expected a redirect, got {back.status_code}")
    query = parse_qs(urlsplit(back.headers["Location"]).query)
    if "code" not in query:
        raise RuntimeError(f"no code in redirect: {back.headers['Location']}")
    tokens = requests.post(
        f"{base}/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=client_auth,
        timeout=TIMEOUT,
    )
    if tokens.status_code != 200:
        raise RuntimeError(f"code exchange: {tokens.status_code} {tokens.text}")
    return tokens.json()


@dataclass
class Credentials:
    pat: str
    carol_id_token: str
    resource_ids: list[str]


def prepare_credentials(base: str, n_resources: int) -> Credentials:
    """Alice's PAT for the EHR, her resources registered with it, carol's standing read
    policy made through the owner API, carol's ID token for the doctor app."""
    with requests.Session() as alice:
        browser_login(alice, base, "alice")
        pat = code_flow(alice, base, EHR_AUTH, EHR_REDIRECT, "openid uma_protection")[
            "access_token"
        ]
        ids = []
        for i in range(n_resources):
            response = alice.post(
                f"{base}/uma/resource_set",
                json={
                    "name": f"Benchmark record {i}",
                    "type": "https://uma-health.example/rsrc/record-set/bench",
                    "resource_scopes": ["read", "write"],
                },
                headers={"Authorization": f"Bearer {pat}"},
                timeout=TIMEOUT,
            )
            if response.status_code != 201:
                raise RuntimeError(f"resource registration: {response.status_code}")
            ids.append(response.json()["_id"])
        csrf = alice.get(f"{base}/api/owner/session", timeout=TIMEOUT).json()["csrf_token"]
        response = alice.post(
            f"{base}/api/owner/policies",
            json={
                "subject": {"type": "user", "username": "carol"},
                "resources": ids,
                "scopes": ["read"],
            },
            headers={"X-CSRFToken": csrf},
            timeout=TIMEOUT,
        )
        if response.status_code != 201:
            raise RuntimeError(f"carol's policy: {response.status_code} {response.text}")
    with requests.Session() as carol:
        browser_login(carol, base, "carol")
        id_token = code_flow(carol, base, DOCTOR_AUTH, DOCTOR_REDIRECT, "openid")["id_token"]
    return Credentials(pat, id_token, ids)


def _basic(client_auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{client_auth[0]}:{client_auth[1]}".encode()).decode()


FORM = "application/x-www-form-urlencoded"


def _error_code(data: bytes) -> str:
    try:
        return str(json.loads(data).get("error", ""))
    except (ValueError, AttributeError):
        return ""


def permission_op(creds: Credentials):
    """The first half of a full grant alone: the EHR's permission request → a ticket."""
    headers = {"Authorization": f"Bearer {creds.pat}", "Content-Type": "application/json"}
    ids = creds.resource_ids

    def op(client) -> str:
        rid = ids[random.randrange(len(ids))]
        body = json.dumps({"resource_id": rid, "resource_scopes": ["read"]}).encode()
        status, data = client.post("/uma/permission", body, headers)
        if status != 201:
            raise OpFailed(f"permission {status} {_error_code(data)}".strip())
        return json.loads(data)["ticket"]

    return op


def full_grant_op(creds: Credentials):
    """One full grant: permission request with the PAT, then the uma-ticket grant with
    carol's ID token pushed, by the doctor app. Only a 200 carrying an RPT counts."""
    token_headers = {"Authorization": _basic(DOCTOR_AUTH), "Content-Type": FORM}
    ticket_for = permission_op(creds)

    def op(client) -> None:
        form = urlencode(
            {
                "grant_type": UMA_TICKET_GRANT,
                "ticket": ticket_for(client),
                "claim_token": creds.carol_id_token,
                "claim_token_format": ID_TOKEN_FORMAT,
            }
        ).encode()
        status, data = client.post("/token", form, token_headers)
        if status != 200:
            raise OpFailed(f"token {status} {_error_code(data)}".strip())
        if "access_token" not in json.loads(data):
            raise OpFailed("token 200 without access_token")

    return op


def noop_op():
    """The floor of any request: the discovery document, which reads no database and checks
    no token (/healthz now reads the schema version)."""

    def op(client) -> None:
        status, _data = client.get("/.well-known/openid-configuration")
        if status != 200:
            raise OpFailed(f"discovery {status}")

    return op


def plain_op():
    """One plain token: client_credentials for the EHR."""
    headers = {"Authorization": _basic(EHR_AUTH), "Content-Type": FORM}
    body = b"grant_type=client_credentials"

    def op(client) -> None:
        status, data = client.post("/token", body, headers)
        if status != 200:
            raise OpFailed(f"client_credentials {status} {_error_code(data)}".strip())
        if "access_token" not in json.loads(data):
            raise OpFailed("client_credentials 200 without access_token")

    return op


# --------------------------------------------------------------------------------------
# Databases: a fresh one per backend, seeded by the app's own code, bulk data by Core
# --------------------------------------------------------------------------------------


class AuthzDatabase(ScratchDatabase):
    """The authorization server's scratch database: ``uma_bench_<hex>`` on PostgreSQL, or
    authz_server.db in a temporary directory that also takes gunicorn's logs."""

    def __init__(self, backend: str):
        super().__init__(backend, label="uma-bench", sqlite_file="authz_server.db")


def seed_database(url: str, issuer: str) -> None:
    """Schema, signing key, session secret and the demo accounts, by the app's own code."""
    from authz_server import create_app, db
    from authz_server.seed import seed_demo

    app = create_app({"MIGRATE_ON_START": True, "DATABASE_URL": url, "ISSUER": issuer})
    with app.app_context():
        seed_demo(db.session())
    app.extensions["authz_db"].scoped.remove()
    app.extensions["authz_db"].engine.dispose()


def _chunks(rows: list, size: int = 5000):
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def bulk_insert_large(url: str, n_resources: int, n_policies: int, keep_ids: list[str]) -> dict:
    """Top the database up to ``n_resources`` resources of alice at the EHR and
    ``n_policies`` policies (users, groups, email domains; some revoked, some expired),
    with SQLAlchemy Core executemany. Returns counts and the time it took."""
    from sqlalchemy import create_engine, func, insert, select, text

    from authz_server.models import (
        Client,
        Group,
        Policy,
        Resource,
        User,
        policy_resources,
        user_groups,
    )

    started = time.perf_counter()
    rng = random.Random(20240601)
    engine = create_engine(url)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        alice = conn.execute(select(User.id).where(User.username == "alice")).scalar_one()
        ehr = conn.execute(select(Client.id).where(Client.client_id == "ehr")).scalar_one()
        next_user = conn.execute(select(func.max(User.id))).scalar_one() + 1
        next_group = (conn.execute(select(func.max(Group.id))).scalar_one() or 0) + 1
        next_policy = (conn.execute(select(func.max(Policy.id))).scalar_one() or 0) + 1
        existing_resources = conn.execute(select(func.count()).select_from(Resource)).scalar_one()
        existing_policies = conn.execute(select(func.count()).select_from(Policy)).scalar_one()
        demo_users = list(conn.execute(select(User.id).where(User.is_service_account.is_(False))))
        demo_users = [u for (u,) in demo_users if u != alice]
        demo_groups = [g for (g,) in conn.execute(select(Group.id))]

        # Other people and groups, so policies name many different subjects.
        n_users, n_groups = 1000, 100
        user_ids = list(range(next_user, next_user + n_users))
        group_ids = list(range(next_group, next_group + n_groups))
        conn.execute(
            insert(User),
            [
                {
                    "id": uid,
                    "sub": uuid.uuid4().hex,
                    "username": f"bench-user-{uid}",
                    "full_name": f"Bench User {uid}",
                    "email": f"bench-user-{uid}@org{uid % 50}.example",
                    "email_verified": True,
                    "password_hash": None,
                    "is_service_account": False,
                    "created_at": now,
                }
                for uid in user_ids
            ],
        )
        conn.execute(
            insert(Group), [{"id": gid, "name": f"bench-group-{gid}"} for gid in group_ids]
        )
        memberships = {(uid, rng.choice(group_ids)) for uid in user_ids}
        memberships |= {(uid, rng.choice(group_ids)) for uid in user_ids[::2]}
        conn.execute(
            insert(user_groups), [{"user_id": u, "group_id": g} for u, g in sorted(memberships)]
        )

        new_resources = max(n_resources - existing_resources, 0)
        resource_ids = [secrets.token_urlsafe(12) for _ in range(new_resources)]
        for chunk in _chunks(resource_ids):
            conn.execute(
                insert(Resource),
                [
                    {
                        "id": rid,
                        "owner_id": alice,
                        "client_pk": ehr,
                        "name": f"Record {rid[:6]}",
                        "description": None,
                        "type": "https://uma-health.example/rsrc/record-set/history",
                        "icon_uri": None,
                        "scopes": ["read", "write"],
                        "uncovered": "ask" if rng.random() < 0.8 else "deny",
                        "localized": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for rid in chunk
                ],
            )

        every_resource = resource_ids + list(keep_ids)
        people = user_ids + demo_users
        groups = group_ids + demo_groups
        new_policies = max(n_policies - existing_policies, 0)
        policy_rows, link_rows = [], []
        for i in range(new_policies):
            pid = next_policy + i
            kind = rng.random()
            row = {
                "id": pid,
                "owner_id": alice,
                "subject_type": "user",
                "subject_user_id": None,
                "subject_group_id": None,
                "subject_email_domain": None,
                "scopes": ["read"] if rng.random() < 0.7 else ["read", "write"],
                "expires_at": None,
                "created_at": now,
                "revoked_at": None,
                "from_request_id": None,
            }
            if kind < 0.6:
                row["subject_user_id"] = rng.choice(people)
            elif kind < 0.9:
                row["subject_type"] = "group"
                row["subject_group_id"] = rng.choice(groups)
            else:
                row["subject_type"] = "email_domain"
                row["subject_email_domain"] = f"org{rng.randrange(50)}.example"
            luck = rng.random()
            if luck < 0.1:
                row["revoked_at"] = now
            elif luck < 0.2:
                row["expires_at"] = now + dt.timedelta(days=rng.choice((-30, -1, 1, 30, 365)))
            policy_rows.append(row)
            for rid in {rng.choice(every_resource) for _ in range(rng.randint(1, 3))}:
                link_rows.append({"policy_id": pid, "resource_id": rid})
        for chunk in _chunks(policy_rows):
            conn.execute(insert(Policy), chunk)
        for chunk in _chunks(link_rows):
            conn.execute(insert(policy_resources), chunk)

        if engine.dialect.name == "postgresql":
            # Explicit ids do not move the sequences; later inserts must not collide.
            for table in ("users", "groups", "policies"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    if engine.dialect.name == "postgresql":
        # What autovacuum would have done by the time a server holds this much data; done
        # now so that it does not start in the middle of a measurement.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    with engine.connect() as conn:
        counts = {
            "resources": conn.execute(select(func.count()).select_from(Resource)).scalar_one(),
            "policies": conn.execute(select(func.count()).select_from(Policy)).scalar_one(),
            "policy_resources": conn.execute(
                select(func.count()).select_from(policy_resources)
            ).scalar_one(),
            "users": conn.execute(select(func.count()).select_from(User)).scalar_one(),
        }
    engine.dispose()
    counts["seconds"] = time.perf_counter() - started
    return counts


# --------------------------------------------------------------------------------------
# gunicorn
# --------------------------------------------------------------------------------------


class Gunicorn:
    def __init__(self, url: str, port: int, workers: int, logdir: str, app: str):
        self.url, self.port, self.workers, self.app = url, port, workers, app
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = Path(logdir) / f"gunicorn-{port}-{time.time_ns()}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(self.workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            self.app,
        ]

    def start(self, timeout: float = 60) -> Gunicorn:
        env = dict(os.environ)
        env.update(AS_ISSUER=self.base, AS_DATABASE_URL=self.url)
        env.pop("AUTHLIB_INSECURE_TRANSPORT", None)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.base}/jwks", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"gunicorn did not answer /jwks in {timeout}s:\n{self.log_tail()}")
        # Wait (bounded) until every worker has booted, so none is still importing the app
        # when the measurement starts.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.worker_pids()) < self.workers:
            time.sleep(0.1)
        return self

    def worker_pids(self) -> list[int]:
        return _children(self.proc.pid) if self.proc else []

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # gunicorn's graceful shutdown, workers too
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# --------------------------------------------------------------------------------------
# One backend, end to end
# --------------------------------------------------------------------------------------


@dataclass
class BackendResult:
    backend: str
    db_version: str
    plain: PhaseResult
    uma_small: PhaseResult
    uma_large: PhaseResult
    seq_small: PhaseResult
    seq_large: PhaseResult
    large_counts: dict
    noop: PhaseResult
    permission: PhaseResult
    setup_notes: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _check(result: PhaseResult) -> PhaseResult:
    line = (
        f"  {result.name}: {result.ok} ok in {result.seconds:.1f}s = {result.rate:.1f}/s, "
        f"p50 {result.pct(50):.1f} ms, p99 {result.pct(99):.1f} ms"
    )
    if result.cpu:
        line += (
            f"; CPU cores: client {result.cpu.client:.2f}, gunicorn {result.cpu.server:.2f}, "
            f"db {result.cpu.database:.2f}, other {result.cpu.other:.2f}"
        )
    if result.errors:
        line += f"; ERRORS {dict(result.errors)}"
    log(line)
    return result


def bench_backend(backend: str, args) -> BackendResult:
    log(f"=== {backend} ===")
    database = AuthzDatabase(backend)
    server = None
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        db_version = database.version()
        t0 = time.perf_counter()
        seed_database(database.url, base)
        log(f"seeded {db_version} in {time.perf_counter() - t0:.1f}s")
        server = Gunicorn(database.url, port, args.workers, database.tmpdir, args.app).start()
        log(f"gunicorn up at {base} with workers {server.worker_pids()}")
        creds = prepare_credentials(base, SMALL_RESOURCES)
        log(f"PAT, carol's ID token, {len(creds.resource_ids)} resources and her policy ready")

        grant, plain = full_grant_op(creds), plain_op()
        c, s, seq = args.concurrency, args.seconds, args.seq_seconds
        client_class = CLIENTS[args.client]

        def make_client():
            return client_class(base)

        def phase(name, op, concurrency, seconds) -> PhaseResult:
            # Another process eating the shared cores spoils a phase: run it again (bounded).
            retries = 0 if name == "warm-up" else args.busy_retries
            for attempt in range(retries + 1):
                pids = server.worker_pids()
                result = _check(run_load(name, op, make_client, concurrency, seconds, pids))
                if result.cpu.other <= OTHER_LOAD_WARNING or attempt == retries:
                    return result
                log(f"  other processes used {result.cpu.other:.2f} cores: repeating the phase")
            return result

        def restart() -> Gunicorn:
            # Same port, so the issuer (and the tokens already held) stay valid.
            server.stop()
            return Gunicorn(database.url, port, args.workers, database.tmpdir, args.app).start()

        # The EHR's first client_credentials token creates its service account: once, before
        # the load (concurrent first calls race; see BENCHMARKS.md).
        first = make_client()
        plain(first)
        first.close()
        phase("warm-up", plain, c, args.warmup)
        plain_result = phase("plain client_credentials", plain, c, s)
        # The parts of a full grant, for the UMA/plain floor (see _parts).
        noop_result = phase("no-op request (GET discovery)", noop_op(), c, s)
        permission_result = phase("permission request alone", permission_op(creds), c, s)

        # Each UMA measurement starts from freshly booted workers and the same warm-up, so
        # the 10-resource and the large figures differ only by the data.
        server = restart()
        small = f"{len(creds.resource_ids)} resources"
        phase("warm-up", grant, c, args.warmup)
        uma_small = phase(f"full grant, {small}", grant, c, s)
        seq_small = phase(f"full grant sequential, {small}", grant, 1, seq)

        server.stop()
        log(
            f"bulk-inserting up to {args.large_resources:,} resources / "
            f"{args.large_policies:,} policies"
        )
        counts = bulk_insert_large(
            database.url, args.large_resources, args.large_policies, creds.resource_ids
        )
        log(
            f"  now {counts['resources']:,} resources, {counts['policies']:,} policies, "
            f"{counts['policy_resources']:,} policy links, {counts['users']:,} users "
            f"({counts['seconds']:.1f}s)"
        )
        server = restart()
        large = f"{counts['resources']:,} resources"
        phase("warm-up", grant, c, args.warmup)
        uma_large = phase(f"full grant, {large}", grant, c, s)
        seq_large = phase(f"full grant sequential, {large}", grant, 1, seq)
        return BackendResult(
            backend,
            db_version,
            plain_result,
            uma_small,
            uma_large,
            seq_small,
            seq_large,
            counts,
            noop=noop_result,
            permission=permission_result,
        )
    finally:
        if server is not None:
            server.stop()
        database.drop()


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

TARGET_RATE, TARGET_PLAIN_RATIO, TARGET_SIZE_RATIO = 240.0, 1.5, 1.2
OTHER_LOAD_WARNING = 0.3  # cores


def _git_commit() -> str:
    """The commit measured, marked when the server's code differs from it."""
    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "authz_server")
    if head is None or dirty is None:
        return "unknown"
    return (head or "unknown") + (" + uncommitted changes in authz_server/" if dirty else "")


# What the server's figures depend on, named in the report ("-" when not installed).
PACKAGES = (
    "Flask",
    "Authlib",
    "joserfc",
    "cryptography",
    "SQLAlchemy",
    "psycopg",
    "gunicorn",
    "Werkzeug",
    "requests",
)


def machine_info() -> dict:
    installed = package_versions(PACKAGES)
    return {
        "commit": _git_commit(),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": {package: installed.get(package, "-") for package in PACKAGES},
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _summary(r: BackendResult) -> dict:
    small, large, seq_s, seq_l = r.uma_small, r.uma_large, r.seq_small, r.seq_large
    return {
        "backend": r.db_version,
        "uma_rate": small.rate,
        "plain_rate": r.plain.rate,
        "plain_ratio": _ratio(r.plain.rate, small.rate),
        "small": (small.pct(50), small.pct(99)),
        "large": (large.pct(50), large.pct(99)),
        "size": (_ratio(large.pct(50), small.pct(50)), _ratio(large.pct(99), small.pct(99))),
        "large_rate": large.rate,
        "seq_small": (seq_s.pct(50), seq_s.pct(99)),
        "seq_large": (seq_l.pct(50), seq_l.pct(99)),
        "seq_size": (_ratio(seq_l.pct(50), seq_s.pct(50)), _ratio(seq_l.pct(99), seq_s.pct(99))),
    }


def _cpu_ms(phase: PhaseResult) -> float:
    """gunicorn CPU per operation, in ms: robust while other processes share the cores."""
    return _ratio(phase.cpu.server * 1000, phase.rate) if phase.cpu else float("nan")


def _parts(r: BackendResult) -> dict:
    """What a full grant is made of, and the UMA/plain it could reach at best.

    Under saturation the time per operation adds up: 1/full = 1/permission + 1/token half.
    The token half does all a plain token does (client authentication, a signature, a
    stored token) and more, so UMA/plain >= 1 + plain/permission; and no permission request
    can cost less than a request that reads nothing, so UMA/plain >= 1 + plain/no-op on this
    stack, whatever the grant code does.
    """
    full, perm, plain, noop = r.uma_small.rate, r.permission.rate, r.plain.rate, r.noop.rate
    token_half = 1 / (1 / full - 1 / perm) if full and perm > full else float("nan")
    return {
        "backend": r.db_version,
        "rates": (noop, perm, plain, full, token_half),
        "cpu_ms": tuple(_cpu_ms(p) for p in (r.noop, r.permission, r.plain, r.uma_small)),
        "ratio": _ratio(plain, full),
        "floor_code": 1 + _ratio(plain, perm),
        "floor_stack": 1 + _ratio(plain, noop),
    }


def _part_cells(part: dict) -> list[str]:
    *measured, token_half = part["rates"]
    return [
        *(f"{rate:.0f} ({ms:.2f})" for rate, ms in zip(measured, part["cpu_ms"], strict=True)),
        f"{token_half:.0f}",
        f"{part['ratio']:.2f}",
        f"{part['floor_code']:.2f}",
        f"{part['floor_stack']:.2f}",
    ]


def _pair(values: tuple[float, float], fmt: str = ".1f") -> str:
    return f"{values[0]:{fmt}} / {values[1]:{fmt}}"


def render(
    results: list[BackendResult], args, info: dict, command: str, idle: CpuUse
) -> tuple[str, str]:
    """A plain-text table for the terminal and a markdown block for BENCHMARKS.md."""
    rows = [_summary(r) for r in results]
    large = results[0].large_counts if results else {}
    large_label = f"{large.get('resources', 0):,} resources / {large.get('policies', 0):,} policies"
    # Cores that went neither to the client, the server nor the database, at worst per backend.
    busy = [
        (r.db_version, max(p.cpu.other for p in _phases(r) if p.cpu))
        for r in results
        if max(p.cpu.other for p in _phases(r) if p.cpu) > OTHER_LOAD_WARNING
    ]
    errors = [(r.db_version, p) for r in results for p in _phases(r) if p.errors]

    text = [
        "",
        f"UMA grant benchmark: gunicorn --workers {args.workers}, concurrency "
        f"{args.concurrency} ({args.client} client), {args.seconds:g} s per phase; "
        f"large = {large_label}",
        "",
        f"{'backend':<18} {'grants/s':>9} {'plain/s':>8} {'UMA/plain':>9} "
        f"{'p50/p99 ms, 10':>16} {'p50/p99 ms, large':>18} {'large/10':>12} "
        f"{'grants/s large':>14}",
    ]
    text.append("-" * len(text[-1]))
    for row in rows:
        text.append(
            f"{row['backend']:<18} {row['uma_rate']:>9.1f} {row['plain_rate']:>8.1f} "
            f"{row['plain_ratio']:>9.2f} {_pair(row['small']):>16} {_pair(row['large']):>18} "
            f"{_pair(row['size'], '.2f'):>12} {row['large_rate']:>14.1f}"
        )
    text.append("latency under load at that concurrency; UMA/plain = plain/s ÷ grants/s")
    text.append("")
    text.append("sequential latency (one client), p50 / p99 ms: 10 resources → large (ratio)")
    for row in rows:
        text.append(
            f"  {row['backend']:<18} {_pair(row['seq_small'])} → {_pair(row['seq_large'])} "
            f"({_pair(row['seq_size'], '.2f')})"
        )
    parts = [_parts(r) for r in results]
    text.append("")
    text.append(
        "the parts, at the same concurrency, ops/s (gunicorn CPU ms per op): no-op, "
        "permission, plain, full, token half; UMA/plain; its floor with this permission "
        "request; the floor of the stack"
    )
    for part in parts:
        text.append(f"  {part['backend']:<18} " + "  ".join(_part_cells(part)))
    text.append("")
    text.append(
        f"CPU in cores of {idle.ncpu} (client = this load generator; machine busy before the "
        f"run: {idle.machine:.2f}):"
    )
    for r in results:
        for phase in _measured(r):
            cpu = phase.cpu
            text.append(
                f"  {r.db_version:<18} {phase.name:<32} client {cpu.client:.2f}  "
                f"gunicorn {cpu.server:.2f}  db {cpu.database:.2f}  other {cpu.other:.2f}  "
                f"machine {cpu.machine:.2f}"
            )
    for backend, other in busy:
        text.append(
            f"WARNING: {backend}: up to {other:.2f} cores went to other processes or the "
            "kernel during a phase; the figures may be pessimistic"
        )
    for backend, phase in errors:
        text.append(f"ERRORS (not counted): {backend} {phase.name}: {dict(phase.errors)}")

    md = [
        f"### UMA grant benchmark, {info['date']}",
        "",
        "```sh",
        command,
        "```",
        "",
        f"- Code: commit {info['commit']}.",
        f"- Machine: {info['nproc']} CPU ({info['cpu']}), Linux {info['kernel']}, "
        f"Python {info['python']}, " + ", ".join(r.db_version for r in results) + ".",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        f"- Server: `gunicorn --workers {args.workers} {args.app}` (sync workers). "
        f"Load generator on the same machine: {args.concurrency} threads, one "
        f"{CLIENT_LABELS[args.client]} each; {args.seconds:g} s per phase after "
        f"{args.warmup:g} s of warm-up; sequential phases {args.seq_seconds:g} s.",
        f"- Large data set: {large_label} "
        f"({large.get('policy_resources', 0):,} policy-resource links, "
        f"{large.get('users', 0):,} users).",
        "- A full grant is POST /uma/permission (PAT) → ticket → POST /token "
        "(uma-ticket grant, carol's ID token pushed) → 200 RPT; plain is POST /token "
        "client_credentials. UMA/plain = plain tokens/s ÷ full grants/s.",
        "",
        "| backend | full grants/s | plain tokens/s | UMA/plain | p50 / p99 ms, 10 resources "
        "| p50 / p99 ms, large | large/10 p50 / p99 | grants/s, large |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        md.append(
            f"| {row['backend']} | {row['uma_rate']:.1f} | {row['plain_rate']:.1f} | "
            f"{row['plain_ratio']:.2f} | {_pair(row['small'])} | {_pair(row['large'])} | "
            f"{_pair(row['size'], '.2f')} | {row['large_rate']:.1f} |"
        )
    md += [
        "",
        f"Latencies above are under load ({args.concurrency} concurrent clients). "
        "Sequential (one client, no queueing), p50 / p99 ms:",
        "",
        "| backend | 10 resources | large | large/10 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        md.append(
            f"| {row['backend']} | {_pair(row['seq_small'])} | {_pair(row['seq_large'])} | "
            f"{_pair(row['seq_size'], '.2f')} |"
        )
    md += [
        "",
        "The parts of a full grant, each measured alone at the same concurrency: operations/s "
        "and, in brackets, gunicorn CPU per operation in ms. The token half is derived "
        "(1/full − 1/permission). A token half costs at least a plain token (it authenticates "
        "the client, signs and stores a token, and more), so UMA/plain cannot fall below "
        "1 + plain/permission; and no permission request costs less than a request that "
        "reads nothing, so on this stack UMA/plain cannot fall below 1 + plain/no-op:",
        "",
        "| backend | no-op GET discovery | permission request | plain token | full grant "
        "| token half | UMA/plain | floor, this permission request | floor of the stack |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for part in parts:
        md.append(f"| {part['backend']} | " + " | ".join(_part_cells(part)) + " |")
    md += [
        "",
        f"CPU used during each phase, in cores of {idle.ncpu} (client = the load generator; "
        "other = kernel and any other process; machine busy just before the run: "
        f"{idle.machine:.2f}):",
        "",
        "| backend | phase | client | gunicorn | database | other | machine |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for phase in _measured(r):
            cpu = phase.cpu
            md.append(
                f"| {r.db_version} | {phase.name} | {cpu.client:.2f} | {cpu.server:.2f} | "
                f"{cpu.database:.2f} | {cpu.other:.2f} | {cpu.machine:.2f} |"
            )
    md += [
        "",
        "| backend | ≥ 240 grants/s | UMA/plain ≤ 1.5 | large/10 p50 ≤ 1.2 | large/10 p99 ≤ 1.2 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        md.append(
            f"| {row['backend']} | {_verdict(row['uma_rate'] >= TARGET_RATE)} "
            f"({row['uma_rate']:.0f}) | "
            f"{_verdict(row['plain_ratio'] <= TARGET_PLAIN_RATIO)} ({row['plain_ratio']:.2f}) | "
            f"{_verdict(row['size'][0] <= TARGET_SIZE_RATIO)} ({row['size'][0]:.2f}) | "
            f"{_verdict(row['size'][1] <= TARGET_SIZE_RATIO)} ({row['size'][1]:.2f}) |"
        )
    if busy or errors:
        md.append("")
    for backend, other in busy:
        md.append(
            f"- Warning: {backend}: up to {other:.2f} cores went to other processes or the "
            "kernel during a phase; the figures may be pessimistic."
        )
    for backend, phase in errors:
        md.append(f"- Errors (not counted as grants): {backend}, {phase.name}: {phase.errors}")
    return "\n".join(text), "\n".join(md)


def _phases(r: BackendResult) -> list[PhaseResult]:
    return [r.plain, r.noop, r.permission, r.uma_small, r.seq_small, r.uma_large, r.seq_large]


def _measured(r: BackendResult) -> list[PhaseResult]:
    """The phases under load, whose CPU use is reported."""
    return [r.plain, r.noop, r.permission, r.uma_small, r.uma_large]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured phase")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="http",
        help="load generator: 'http' (stdlib http.client, lean; default) or 'requests'",
    )
    parser.add_argument("--seq-seconds", type=float, default=4.0, help="sequential phases")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--large-resources", type=int, default=100_000)
    parser.add_argument("--large-policies", type=int, default=50_000)
    parser.add_argument(
        "--app",
        default=DEFAULT_APP,
        help=f"WSGI app for gunicorn (default {DEFAULT_APP}; another one to try out a change)",
    )
    parser.add_argument(
        "--busy-retries",
        type=int,
        default=2,
        help="repeat a phase up to this many times while other processes load the machine",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the markdown block here")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2,000 resources / 1,000 policies, 2 s"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.seq_seconds, args.warmup = 2.0, 1.0, 0.5
        args.large_resources = min(args.large_resources, 2000)
        args.large_policies = min(args.large_policies, 1000)
    for name in ("workers", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    args.busy_retries = max(0, min(args.busy_retries, 5))
    if not 0 < args.seconds <= 120 or not 0 < args.seq_seconds <= 120:
        parser.error("phases last between 0 and 120 seconds")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "bench/uma_grant.py", *given])
    info = machine_info()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    before = CpuSnapshot.take([])
    time.sleep(1.0)
    idle = CpuUse.between(before, CpuSnapshot.take([]))
    log(f"machine busy before the run: {idle.machine:.2f} of {idle.ncpu} cores")
    if idle.machine > OTHER_LOAD_WARNING:
        log("WARNING: something else is using the CPU; the figures will be pessimistic")
    results = []
    started = time.perf_counter()
    for backend in backends:
        results.append(bench_backend(backend, args))
    text, md = render(results, args, info, command, idle)
    print(text)
    print("\n--- markdown for BENCHMARKS.md ---\n")
    print(md)
    if args.markdown:
        Path(args.markdown).write_text(md + "\n")
    log(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
