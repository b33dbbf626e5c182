"""What every worker does at start: make sure the shared secrets exist, then load them."""

import secrets

from flask import Flask
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import db
from .keys import ensure_signing_key
from .models import Setting

SESSION_SECRET = "flask_secret_key"


def shared_setting(session: Session, name: str, factory) -> str:
    """Read a server-wide value, creating it once; the first worker to commit wins."""
    row = session.get(Setting, name)
    if row is not None:
        return row.value
    session.add(Setting(name=name, value=factory()))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
    return session.get(Setting, name).value


def prepare(app: Flask) -> None:
    session = db.session()
    if not app.config.get("SECRET_KEY"):
        # Generated, not a constant: the demo's sessions cannot be forged by reading the source.
        app.config["SECRET_KEY"] = shared_setting(
            session, SESSION_SECRET, lambda: secrets.token_urlsafe(48)
        )
    ensure_signing_key(session, app.config.get("INITIAL_SIGNING_JWK"))
    session.close()
