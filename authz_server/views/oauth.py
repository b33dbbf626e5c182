"""Machine endpoints of the OAuth/OIDC server: token, revocation, introspection, userinfo,
registration, JWKS. Each is a one-liner into Authlib."""

from flask import Blueprint, current_app, jsonify, request

from .. import db
from ..discovery import PATHS
from ..errors import InvalidRequest
from ..jsonbody import parse_json
from ..keys import public_jwks
from ..oauth2 import authorization

bp = Blueprint("oauth", __name__)


@bp.route(PATHS["token_endpoint"], methods=["POST"])
def token():
    return authorization().create_token_response()


@bp.route(PATHS["revocation_endpoint"], methods=["POST"])
def revoke():
    return authorization().create_endpoint_response("revocation")


@bp.route(PATHS["introspection_endpoint"], methods=["POST"])
def introspect():
    return authorization().create_endpoint_response("introspection")


@bp.route(PATHS["userinfo_endpoint"], methods=["GET", "POST"])
def userinfo():
    return authorization().create_endpoint_response("userinfo")


@bp.route(PATHS["registration_endpoint"], methods=["POST"])
def register():
    # Authlib reads the body with get_json(), which answers bad JSON with an HTML page;
    # check it first so the client gets RFC 7591 §3.2.2 JSON.
    try:
        metadata = parse_json(request.get_data(), request.content_type)
    except InvalidRequest as error:
        return _registration_error(error.description)
    if not isinstance(metadata, dict):
        return _registration_error("Client metadata must be a JSON object.")
    return authorization().create_endpoint_response("client_registration")


def _registration_error(description: str):
    response = jsonify(error="invalid_client_metadata", error_description=description)
    response.status_code = 400
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route(PATHS["jwks_uri"])
def jwks():
    response = jsonify(public_jwks(db.session(), current_app.config["KEY_GRACE_SECONDS"]))
    # Short caching: an RP that sees an unknown kid refetches within a minute of a rotation.
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
