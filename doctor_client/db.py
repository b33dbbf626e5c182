"""The doctor app's tables' base and its database session (plumbing in app_support.database)."""

from flask import current_app
from sqlalchemy.orm import DeclarativeBase, Session

from app_support.database import Database, UTCDateTime, utcnow

__all__ = ["Base", "Database", "UTCDateTime", "init_app", "session", "utcnow"]


class Base(DeclarativeBase):
    """Declarative base of every doctor app table."""


def session() -> Session:
    """The current app's session for this thread."""
    return current_app.extensions["doctor_db"].scoped()


def init_app(app, url: str) -> Database:
    return Database(url, Base.metadata).init_app(app, "doctor_db")
