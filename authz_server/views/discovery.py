"""The two discovery documents at issuer + /.well-known/…, and Keycloak-shaped aliases.

python-keycloak builds its URLs as ``{server}/realms/{realm}/...``. The aliases below answer
those paths with the very same views, so a Keycloak client works against this AS unmodified:

| Keycloak path (under /realms/<realm>)        | served by              |
| --- | --- |
| /.well-known/uma2-configuration              | UMA discovery          |
| /.well-known/openid-configuration            | OIDC discovery         |
| /protocol/openid-connect/token               | token endpoint         |
| /protocol/openid-connect/token/introspect    | introspection endpoint |
| /protocol/openid-connect/revoke              | revocation endpoint    |
| /protocol/openid-connect/certs               | JWKS                   |
| /protocol/openid-connect/userinfo            | userinfo               |
| /protocol/openid-connect/auth                | authorization endpoint |

The documents keep the real issuer and endpoint URLs; only the entry paths are aliased.
"""

from flask import Blueprint, abort, current_app, jsonify

from ..discovery import openid_configuration, uma2_configuration

bp = Blueprint("discovery", __name__)


@bp.route("/.well-known/openid-configuration")
def openid_config():
    return jsonify(openid_configuration(current_app.config["ISSUER"]))


@bp.route("/.well-known/uma2-configuration")
def uma2_config():
    return jsonify(uma2_configuration(current_app.config["ISSUER"]))


@bp.route("/healthz")
def healthz():
    """Liveness, for the demo launcher and container health checks; 503 on a database whose
    schema this code does not match."""
    body, status = current_app.extensions["authz_db"].health()
    return jsonify(body), status


KEYCLOAK_ALIASES = {
    "/.well-known/uma2-configuration": ("discovery.uma2_config", ["GET"]),
    "/.well-known/openid-configuration": ("discovery.openid_config", ["GET"]),
    "/protocol/openid-connect/token": ("oauth.token", ["POST"]),
    "/protocol/openid-connect/token/introspect": ("oauth.introspect", ["POST"]),
    "/protocol/openid-connect/revoke": ("oauth.revoke", ["POST"]),
    "/protocol/openid-connect/certs": ("oauth.jwks", ["GET"]),
    "/protocol/openid-connect/userinfo": ("oauth.userinfo", ["GET", "POST"]),
    # GET only: the consent form always posts to the real, CSRF-protected endpoint.
    "/protocol/openid-connect/auth": ("auth.authorize", ["GET"]),
}

keycloak_bp = Blueprint("keycloak", __name__, url_prefix="/realms/<realm>")


def _alias(endpoint: str):
    def view(realm, **kwargs):
        if realm != current_app.config["KEYCLOAK_REALM"]:
            abort(404)
        return current_app.view_functions[endpoint](**kwargs)

    view.__name__ = "alias_" + endpoint.replace(".", "_")
    return view


for _path, (_endpoint, _methods) in KEYCLOAK_ALIASES.items():
    keycloak_bp.add_url_rule(_path, view_func=_alias(_endpoint), methods=_methods)
