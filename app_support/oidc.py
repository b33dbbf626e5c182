"""An app as an OpenID Connect relying party of the AS, with Authlib's Flask client: the
code flow with PKCE S256, the nonce checked and the ID token verified against the JWKS,
every endpoint discovered from the issuer."""

from authlib.integrations.flask_client import OAuth
from flask import current_app

SIGN_IN_SCOPE = "openid profile email"
EXTENSION = "app_support_oauth"


def init_app(app, timeout: float) -> None:
    """Register the AS (``AS_ISSUER``, ``CLIENT_ID``, ``CLIENT_SECRET`` of ``app.config``).
    One registry per app: tests run several apps, each against its own AS."""
    oauth = OAuth(app)
    oauth.register(
        "authz",
        client_id=app.config["CLIENT_ID"],
        client_secret=app.config["CLIENT_SECRET"],
        server_metadata_url=app.config["AS_ISSUER"] + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": SIGN_IN_SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "timeout": timeout,
        },
    )
    app.extensions[EXTENSION] = oauth


def authz():
    """The current app's AS, as an Authlib client app."""
    return current_app.extensions[EXTENSION].authz
