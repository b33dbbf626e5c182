"""The doctor app: Bob, Carol and others reach patients' records as UMA requesting parties."""

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from app_support import trace, ui
from app_support.database import ensure_secret_key

from . import config as config_module
from . import db
from .uma import UmaClient

csrf = CSRFProtect()


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: defaults → ``DOCTOR_*`` environment → ``test_config``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(config_module.from_environ())
    if test_config:
        app.config.update(test_config)
    for name in ("AS_ISSUER", "EHR_URL", "PUBLIC_URL"):
        app.config[name] = app.config[name].rstrip("/")
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)

    from .models import FlowLink, ProtocolMessage, Setting
    from .schema import MIGRATIONS

    database = db.init_app(app, app.config["DATABASE_URL"])
    database.prepare_schema(MIGRATIONS, upgrade=app.config["MIGRATE_ON_START"])
    as_issuer = app.config["AS_ISSUER"]
    trace.install(
        app,
        database,
        "client",
        ProtocolMessage,
        FlowLink,
        peer_of=lambda url: "as" if url.startswith(as_issuer + "/") else "ehr",
    )
    app.extensions["doctor_uma"] = UmaClient(
        app.config["CLIENT_ID"],
        app.config["CLIENT_SECRET"],
        trusted=frozenset([as_issuer]),
        timeout=app.config["HTTP_TIMEOUT"],
        http=trace.TracedSession(),
    )
    ensure_secret_key(app, database, Setting)

    from . import auth, errors, oidc, views

    csrf.init_app(app)
    ui.init_app(app)
    oidc.init_app(app)
    auth.init_app(app)
    views.init_app(app)
    errors.init_app(app)
    return app
