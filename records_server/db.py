"""The EHR's tables' base and its database session (plumbing in app_support.database)."""

from flask import current_app
from sqlalchemy.orm import DeclarativeBase, Session

from app_support.database import Database, UTCDateTime, utcnow

__all__ = ["Base", "Database", "UTCDateTime", "init_app", "session", "utcnow"]


class Base(DeclarativeBase):
    """Declarative base of every EHR table."""


def session() -> Session:
    """The current app's session for this thread."""
    return current_app.extensions["ehr_db"].scoped()


def init_app(app, url: str) -> Database:
    return Database(url, Base.metadata).init_app(app, "ehr_db")
