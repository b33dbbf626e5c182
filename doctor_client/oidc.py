"""The doctor app as a relying party of the AS (app_support.oidc): people sign in there."""

from app_support.oidc import SIGN_IN_SCOPE, authz
from app_support.oidc import init_app as _register

__all__ = ["SIGN_IN_SCOPE", "authz", "init_app"]


def init_app(app) -> None:
    _register(app, app.config["HTTP_TIMEOUT"])
