"""The EHR: Alice's records, protected with her UMA authorization server (DESIGN.md)."""

import logging

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from app_support import trace, ui
from app_support.database import ensure_secret_key

from . import config as config_module
from . import db
from .as_client import ASClient

csrf = CSRFProtect()
log = logging.getLogger(__name__)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: defaults → ``EHR_*`` environment → ``test_config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(config_module.from_environ())
    if test_config:
        app.config.update(test_config)
    app.config["AS_ISSUER"] = app.config["AS_ISSUER"].rstrip("/")
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # tied to the session instead

    from .models import FlowLink, ProtocolMessage, Setting
    from .schema import MIGRATIONS

    database = db.init_app(app, app.config["DATABASE_URL"])
    database.prepare_schema(MIGRATIONS, upgrade=app.config["MIGRATE_ON_START"])
    trace.install(
        app,
        database,
        "ehr",
        ProtocolMessage,
        FlowLink,
        incoming_peer=lambda request: "client" if request.path.startswith("/api/") else None,
        peer_of=lambda _url: "as",
    )
    app.extensions["ehr_as"] = ASClient(
        app.config["AS_ISSUER"],
        app.config["CLIENT_ID"],
        app.config["CLIENT_SECRET"],
        timeout=app.config["AS_TIMEOUT"],
        http=trace.TracedSession(),
    )
    ensure_secret_key(app, database, Setting)

    from . import auth, errors, oidc, views

    csrf.init_app(app)
    ui.init_app(app)
    oidc.init_app(app)
    auth.init_app(app)
    views.init_app(app, csrf)
    errors.init_app(app)
    if app.config["SYNC_ON_START"]:
        with app.app_context():
            _sync_registrations(app)
    return app


def _sync_registrations(app: Flask) -> None:
    """Re-register idempotently on start (no duplicates after restarts); the AS may be down."""
    from .registration import sync_all

    sync_all(
        db.session(),
        app.extensions["ehr_as"],
        app.config["PUBLIC_URL"],
        app.config["PAT_REFRESH_MARGIN"],
    )
    db.session().close()
