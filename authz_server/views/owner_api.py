"""The owner's JSON API: policies, pending requests, uncovered-requester settings, audit log.

Session-authenticated (the owner signed in here). Every write needs the CSRF token of the
session in an ``X-CSRFToken`` header and a JSON body, so another site cannot forge one.
"""

from flask import Blueprint, jsonify, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select

from .. import audit, db
from ..errors import InvalidRequest, ProtectionError
from ..jsonbody import parse_json
from ..models import Resource
from ..sharing import (
    approve_request,
    create_policy_from_json,
    deny_request,
    list_policies,
    list_requests,
    parse_expiry,
    policy_json,
    request_json,
    revoke_policy,
    set_uncovered,
)

bp = Blueprint("owner_api", __name__, url_prefix="/api/owner")
# Ids in paths are bounded (max=2**31-1): a larger number is a 404, not a database overflow.


@bp.before_request
def _signed_in():
    if not current_user.is_authenticated:
        return _error(ProtectionError("Sign in first.", status_code=401), "login_required")


@bp.errorhandler(ProtectionError)
def _protection_error(error: ProtectionError):
    return _error(error)


def _error(error: ProtectionError, code: str | None = None):
    response = jsonify(error=code or error.error, error_description=error.description)
    response.status_code = error.status_code
    response.headers["Cache-Control"] = "no-store"
    return response


def _body() -> dict:
    body = parse_json(request.get_data(), request.content_type)
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


def _int_arg(name: str, default: int, maximum: int) -> int:
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer.") from None
    return max(1, min(value, maximum))


@bp.get("/session")
def session_info():
    """The CSRF token for this session: readable by same-origin scripts only."""
    return jsonify(username=current_user.username, csrf_token=generate_csrf())


@bp.get("/resources")
def resources():
    rows = db.session().scalars(
        select(Resource).where(Resource.owner_id == current_user.id).order_by(Resource.name)
    )
    return jsonify(
        [
            {
                "id": r.id,
                "name": r.name,
                "type": r.type,
                "scopes": r.scopes,
                "uncovered": r.uncovered,
                "resource_server": r.client.display_name,
            }
            for r in rows
        ]
    )


@bp.put("/resources/<resource_id>/settings")
def resource_settings(resource_id: str):
    resource = set_uncovered(db.session(), current_user, resource_id, _body().get("uncovered"))
    return jsonify(id=resource.id, uncovered=resource.uncovered)


@bp.get("/policies")
def policies():
    include = request.args.get("include_revoked") in ("1", "true")
    return jsonify([policy_json(p) for p in list_policies(db.session(), current_user, include)])


@bp.post("/policies")
def create_policy():
    policy = create_policy_from_json(db.session(), current_user, _body())
    return jsonify(policy_json(policy)), 201


@bp.delete("/policies/<int(max=2147483647):policy_id>")
def revoke(policy_id: int):
    return jsonify(policy_json(revoke_policy(db.session(), current_user, policy_id)))


@bp.get("/requests")
def requests_():
    status = request.args.get("status", "pending")
    found = list_requests(db.session(), current_user, None if status == "all" else status)
    return jsonify([request_json(r) for r in found])


@bp.post("/requests/<int(max=2147483647):request_id>/approve")
def approve(request_id: int):
    body = _body() if request.get_data() else {}
    scopes = body.get("scopes")
    if scopes is not None and (
        not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)
    ):
        raise InvalidRequest("'scopes' must be an array of strings.")
    policy = approve_request(
        db.session(), current_user, request_id, scopes, parse_expiry(body.get("expires_at"))
    )
    return jsonify(policy_json(policy)), 201


@bp.post("/requests/<int(max=2147483647):request_id>/deny")
def deny(request_id: int):
    return jsonify(request_json(deny_request(db.session(), current_user, request_id)))


@bp.get("/audit")
def audit_log():
    page = _int_arg("page", 1, 10_000)
    per_page = _int_arg("per_page", 50, 200)
    events, total = audit.query(
        db.session(),
        current_user.id,
        outcome=request.args.get("outcome") or None,
        requester=request.args.get("requester") or None,
        resource_id=request.args.get("resource_id") or None,
        page=page,
        per_page=per_page,
    )
    return jsonify(
        events=[audit.as_json(e) for e in events], total=total, page=page, per_page=per_page
    )
