"""The EHR as a relying party of the AS (app_support.oidc): sign-in, and the code flow that
yields a patient's PAT (scope ``openid uma_protection``)."""

from app_support.oidc import SIGN_IN_SCOPE, authz
from app_support.oidc import init_app as _register

PROTECT_SCOPE = "openid uma_protection"

__all__ = ["PROTECT_SCOPE", "SIGN_IN_SCOPE", "authz", "init_app"]


def init_app(app) -> None:
    _register(app, app.config["AS_TIMEOUT"])
