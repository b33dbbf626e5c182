"""The authorization server: OpenID Provider, UMA 2.0 AS, and Alice's console."""

import logging
from urllib.parse import urlsplit

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app_support import trace, ui

from . import config as config_module
from . import db, oauth2
from .discovery import SCOPES_SUPPORTED
from .schema import MIGRATIONS

csrf = CSRFProtect()


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: defaults → ``AS_*`` environment → ``test_config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(config_module.from_environ())
    if test_config:
        app.config.update(test_config)
    app.config["ISSUER"] = app.config["ISSUER"].rstrip("/")
    app.config["OAUTH2_SCOPES_SUPPORTED"] = SCOPES_SUPPORTED
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # tied to the session instead

    database = db.init_app(app, app.config["DATABASE_URL"])
    database.prepare_schema(MIGRATIONS, upgrade=app.config["MIGRATE_ON_START"])
    _install_trace(app, database)

    with app.app_context():
        from .bootstrap import prepare

        prepare(app)

    csrf.init_app(app)
    ui.init_app(app)
    oauth2.init_app(app)

    from . import auth, errors_http, transport, views

    transport.init_app(app)
    auth.init_app(app)
    views.init_app(app, csrf)
    errors_http.init_app(app)
    _mount_under_issuer_path(app)
    logging.getLogger(__name__).info("authorization server ready at %s", app.config["ISSUER"])
    return app


def _install_trace(app: Flask, database) -> None:
    from .models import FlowLink, ProtocolMessage
    from .trace_rules import incoming_peer, resolve_flow

    trace.install(
        app,
        database,
        "as",
        ProtocolMessage,
        FlowLink,
        incoming_peer=incoming_peer,
        resolve_flow=resolve_flow,
    )


def _mount_under_issuer_path(app: Flask) -> None:
    """An issuer such as ``http://host/realms/x`` puts every route under ``/realms/x``,
    so discovery is at issuer + ``/.well-known/...`` as UMA requires (checklist DISC-1)."""
    prefix = urlsplit(app.config["ISSUER"]).path.rstrip("/")
    if not prefix:
        return
    app.config["APPLICATION_ROOT"] = prefix
    app.wsgi_app = DispatcherMiddleware(NotFound(), {prefix: app.wsgi_app})
