"""Fixtures shared by every suite: database backends, a pre-made signing key, live servers."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

# SQLite always; PostgreSQL too when TEST_DATABASE_URL points at one (CI sets it).
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL.startswith("postgresql") else [])


@pytest.fixture(scope="session")
def signing_jwk():
    """One RSA key for the whole run: generating 2048-bit keys per test would dominate."""
    from authz_server.keys import new_private_jwk

    return new_private_jwk()


@pytest.fixture(scope="session")
def postgres_database():
    """A database of our own on the server TEST_DATABASE_URL names, dropped at the end."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"uma_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """A fresh, empty database for one test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = request.getfixturevalue("postgres_database")
    yield base
    engine = create_engine(base)
    with engine.begin() as conn:
        tables = (
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            .scalars()
            .all()
        )
        if tables:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
    engine.dispose()


def unavailable(reason: str):
    """A part a test needs is missing: skipped on a developer's machine, a failure in CI
    (CI=true, which .ci/run sets), because CI must run every leg, not report a skip."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI must run this test", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(target: str, port: int, env: dict, log_dir, ready_path: str, workers: int = 3):
    """``target`` under gunicorn as production runs it, answering ``ready_path`` on ``port``;
    stopped on leaving. Its output goes to ``log_dir/gunicorn.log``, shown if it never
    answers."""
    log = log_dir / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers)]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [*command, "--bind", f"127.0.0.1:{port}", target],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}{ready_path}", timeout=10)
                break
            except requests.RequestException:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _bind(port: int, app, patience: float = 10.0):
    """Some servers keep their port for the whole run (it is in the AS's registered redirect
    URIs); between two tests the kernel may briefly hand it to an outgoing connection as
    its local port, so binding waits for it rather than failing the test."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return make_server("127.0.0.1", port, app, threaded=True)
        except SystemExit:  # werkzeug's way of saying the port is taken
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port} stayed in use for {patience} s") from None
            time.sleep(0.1)


class LiveServer:
    """A real HTTP server on a free loopback port, in a background thread."""

    def __init__(self, app, port: int):
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server = _bind(port, app)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> "LiveServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()
