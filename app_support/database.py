"""One engine and one thread-scoped session per app, removed after every request."""

import os
import secrets
import select
import time
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import DateTime, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.orm import Session, scoped_session, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime; use datetime.now(UTC)")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# A pooled connection idle longer than this is pinged before use (see check_on_checkout).
IDLE_PING_SECONDS = 30.0


def make_engine(url: str) -> Engine:
    """SQLite gets WAL, a busy timeout and foreign keys so several workers can share it."""
    if not url.startswith("sqlite"):
        engine = create_engine(url)
        check_on_checkout(engine)
        return engine
    _ensure_sqlite_dir(url)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL never corrupts the database; it may lose the last commits on
        # power loss, an accepted trade for a demo database (and a large share of a grant's
        # cost on the AS).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def check_on_checkout(engine: Engine) -> None:
    """Hand out only live connections, without pool_pre_ping's round trip on every checkout
    (about a tenth of a UMA grant's cost on PostgreSQL: BENCHMARKS.md).

    A connection the server closed (a restart, pg_terminate_backend) has its last words or
    EOF waiting on the socket, which a zero-timeout poll sees at no cost. One that sat idle
    for a while may have been dropped silently on the way (a firewall, a NAT), so it is
    pinged. Raising DisconnectionError makes the pool replace the connection and retry.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        idle = time.monotonic() - record.info.get("idle_since", time.monotonic())
        if socket_has_news(dbapi_connection):
            raise DisconnectionError("the database server closed this connection")
        if idle > IDLE_PING_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except engine.dialect.loaded_dbapi.Error as error:
                raise DisconnectionError(f"idle connection no longer answers: {error}") from None


def autocommit(session: Session) -> None:
    """Let each of this session's coming statements commit on its own, before its first.

    For a request that reads and then writes a single row: a transaction around it would
    cost a BEGIN and a COMMIT round trip on PostgreSQL and protect nothing. The pool puts
    the connection's isolation level back when it is returned.
    """
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def socket_has_news(dbapi_connection) -> bool:
    """Whether an idle connection's socket has something to read (or is gone): between
    requests the server sends nothing unless it is closing the connection."""
    try:
        descriptor = dbapi_connection.fileno()
    except Exception:  # noqa: BLE001 - a closed connection has no socket: it is news too
        return True
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = url.removeprefix("sqlite:///").split("?")[0]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


class Database:
    """The engine and session factory of one app, for the tables of one declarative base."""

    def __init__(self, url: str, metadata):
        self.engine = make_engine(url)
        self.metadata = metadata
        self.history = None  # set by prepare_schema
        self.scoped = scoped_session(sessionmaker(bind=self.engine, expire_on_commit=False))

    def prepare_schema(self, history, upgrade: bool) -> None:
        """Migrate the database to the code's schema (the CLIs, the tests), or only check
        that it is there (a served app), raising SchemaMismatch when it is not."""
        self.history = history
        try:
            if upgrade:
                history.upgrade(self.engine)
            else:
                history.check(self.engine)
        except Exception:
            self.engine.dispose()  # the app is not built: nobody else would close its pool
            raise

    def health(self) -> tuple[dict, int]:
        """The ``/healthz`` answer: ok only while the schema matches the code."""
        from .migrations import health

        return health(self.history, self.engine)

    def init_app(self, app: Flask, key: str) -> "Database":
        app.extensions[key] = self

        @app.teardown_appcontext
        def _remove_session(_exc):
            self.scoped.remove()

        return self


def ensure_secret_key(app: Flask, database: Database, setting_model) -> None:
    """The configured SECRET_KEY, else the server-wide one kept in the database."""
    if not app.config.get("SECRET_KEY"):
        with Session(database.engine) as session:
            app.config["SECRET_KEY"] = shared_secret(session, setting_model)


def shared_secret(session, setting_model, name: str = "flask_secret_key") -> str:
    """A server-wide random value (the session key): made once, kept in the database, the
    same in every worker; the first worker to commit wins."""
    if session.get(setting_model, name) is None:
        session.add(setting_model(name=name, value=secrets.token_urlsafe(48)))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
    value = session.get(setting_model, name).value
    session.close()
    return value
