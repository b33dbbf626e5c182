"""Pooled PostgreSQL connections stay usable when the server drops them, without a ping on
every checkout (app_support.database.check_on_checkout)."""

import time

import pytest
from sqlalchemy import create_engine, event, text

from app_support import database
from app_support.database import make_engine, socket_has_news
from tests.conftest import POSTGRES_URL, unavailable


@pytest.fixture
def pg_url(request):
    if not POSTGRES_URL.startswith("postgresql"):
        unavailable("TEST_DATABASE_URL names no PostgreSQL server")
    return request.getfixturevalue("postgres_database")


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(pid: int) -> None:
    """What a server restart or an administrator does to a connection: the backend says
    goodbye and closes the socket."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        deadline = time.monotonic() + 10
        while conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar():
            assert time.monotonic() < deadline, "the backend did not go away"
            time.sleep(0.05)
    admin.dispose()


def count_pings(engine) -> list[str]:
    pings = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement, *_args):
        pings.append(statement)

    original = engine.dialect.do_ping

    def do_ping(dbapi_connection):
        pings.append("ping")
        return original(dbapi_connection)

    engine.dialect.do_ping = do_ping
    return pings


def test_a_connection_the_server_closed_is_replaced_before_use(pg_url):
    engine = make_engine(pg_url)
    try:
        first = backend_pid(engine)  # now idle in the pool
        terminate(first)
        second = backend_pid(engine)  # no OperationalError: the pool noticed and reconnected
        assert second != first
        assert backend_pid(engine) == second  # and keeps the new one
    finally:
        engine.dispose()


def test_a_busy_connection_is_not_pinged_and_an_idle_one_is(pg_url, monkeypatch):
    engine = make_engine(pg_url)
    try:
        backend_pid(engine)
        seen = count_pings(engine)
        for _ in range(3):
            backend_pid(engine)
        assert "ping" not in seen  # checkouts in quick succession cost no round trip
        monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)
        backend_pid(engine)
        assert seen.count("ping") == 1
    finally:
        engine.dispose()


def test_an_idle_healthy_connection_has_no_news_and_a_closed_one_has(pg_url):
    engine = make_engine(pg_url)
    try:
        raw = engine.raw_connection()
        dbapi_connection = raw.driver_connection
        assert not socket_has_news(dbapi_connection)
        pid = dbapi_connection.info.backend_pid
        terminate(pid)
        assert socket_has_news(dbapi_connection)
        raw.invalidate()
        dbapi_connection.close()
        assert socket_has_news(dbapi_connection)  # no socket at all
    finally:
        engine.dispose()
