"""The UMA protection API (FedAuthz §3–4): resource registration and the permission endpoint.

Every call needs a PAT; the PAT names the owner, its client names the resource server.
"""

import functools
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, current_app, g, jsonify, request, url_for

from app_support.database import autocommit

from .. import db
from ..discovery import PATHS
from ..errors import ProtectionError, UnsupportedMethod
from ..jsonbody import parse_json
from ..oauth2 import require_pat
from ..resources import (
    delete_resource,
    describe,
    get_resource,
    list_resource_ids,
    register_resource,
    update_resource,
)
from ..tickets import request_permission

bp = Blueprint("protection", __name__)

RREG = PATHS["resource_registration_endpoint"]
ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
UMA_PROTECTION = "uma_protection"


def _json(body, status: int = 200, headers: dict | None = None):
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def pat_required(view):
    """Authenticate the PAT (checklist PAT-2, PAT-3) and put its owner's and RS's ids on ``g``."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            pat = require_pat.acquire_token([UMA_PROTECTION])
        except OAuth2Error as error:
            status, body, headers = error()
            response = _json(dict(body), status)
            for name, value in headers:
                if name.lower() == "www-authenticate":
                    response.headers[name] = value
            return response
        g.owner_id = pat.owner_id
        g.rs_pk = pat.client_pk
        try:
            return view(*args, **kwargs)
        except ProtectionError as error:
            return _protection_error(error)

    return wrapper


def _protection_error(error: ProtectionError, headers: dict | None = None):
    return _json(error.body(), error.status_code, headers)


def _body():
    return parse_json(request.get_data(), request.content_type)


def _issuer_url(endpoint: str, **values) -> str:
    """An absolute URL below the issuer. Not the request's host: behind a balancer that
    rewrites Host it names one node, which the client may not reach (and which differs from
    node to node)."""
    issuer = urlsplit(current_app.config["ISSUER"])
    return f"{issuer.scheme}://{issuer.netloc}{url_for(endpoint, **values)}"


def _policy_uri(resource_id: str) -> str:
    return _issuer_url("console.resource", resource_id=resource_id)


def _not_allowed(allowed: str):
    error = UnsupportedMethod(f"{request.method} is not supported here; use {allowed}.")
    return _protection_error(error, {"Allow": allowed})


@bp.route(RREG, methods=ALL_METHODS, strict_slashes=False)
@pat_required
def resource_set_collection():
    if request.method == "POST":
        resource = register_resource(db.session(), g.owner_id, g.rs_pk, _body())
        location = _issuer_url("protection.resource_set_item", resource_id=resource.id)
        return _json(
            {"_id": resource.id, "user_access_policy_uri": _policy_uri(resource.id)},
            201,
            {"Location": location},
        )
    if request.method == "GET":
        return _json(list_resource_ids(db.session(), g.owner_id, g.rs_pk, request.args))
    return _not_allowed("GET, POST")


@bp.route(RREG + "/<resource_id>", methods=ALL_METHODS)
@pat_required
def resource_set_item(resource_id: str):
    session = db.session()
    if request.method == "GET":
        resource = get_resource(session, g.owner_id, g.rs_pk, resource_id)
        return _json(describe(resource))
    if request.method == "PUT":
        resource = update_resource(session, g.owner_id, g.rs_pk, resource_id, _body())
        return _json({"_id": resource.id, "user_access_policy_uri": _policy_uri(resource.id)})
    if request.method == "DELETE":
        delete_resource(session, g.owner_id, g.rs_pk, resource_id)
        return "", 204
    return _not_allowed("GET, PUT, DELETE")


def autocommitted(view):
    """The view's statements, the PAT's lookup included, each commit on their own."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        autocommit(db.session())
        return view(*args, **kwargs)

    return wrapper


@bp.route(PATHS["permission_endpoint"], methods=ALL_METHODS, strict_slashes=False)
@autocommitted  # two reads and one INSERT (tickets.request_permission): nothing to roll back
@pat_required
def permission():
    if request.method != "POST":
        return _not_allowed("POST")
    ticket = request_permission(
        db.session(), g.owner_id, g.rs_pk, _body(), current_app.config["TICKET_TTL"]
    )
    return _json({"ticket": ticket}, 201)
