"""The database: one engine and one scoped session per app, removed after every request."""

import time
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import DateTime, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker


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


class Base(DeclarativeBase):
    """Declarative base of every authorization-server table."""


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so several workers can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL never corrupts the database; it may lose the last commits on
            # power loss, an accepted trade for a demo database.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """Holds the engine and the thread-scoped session factory of one app."""

    def __init__(self, url: str):
        self.engine = make_engine(url)
        self.scoped = scoped_session(sessionmaker(bind=self.engine, expire_on_commit=False))

    def create_all(self, attempts: int = 5) -> None:
        """Create missing tables. Workers starting together may race on the same CREATE;
        the loser sees "already exists", waits, and finds the tables there next time."""
        for attempt in range(attempts):
            try:
                Base.metadata.create_all(self.engine)
                return
            except (OperationalError, ProgrammingError, IntegrityError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def drop_all(self) -> None:
        Base.metadata.drop_all(self.engine)


def session() -> Session:
    """The current app's session for this thread."""
    return current_app.extensions["authz_db"].scoped()


def init_app(app, url: str) -> Database:
    database = Database(url)
    app.extensions["authz_db"] = database

    @app.teardown_appcontext
    def _remove_session(_exc):
        database.scoped.remove()

    return database
