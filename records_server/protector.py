"""UMA protection of the EHR's API (UMA Grant §3.1–3.2, §3.5): check the RPT by introspection,
or ask the AS for a permission ticket and answer 401 with ``WWW-Authenticate: UMA``.

The challenge and the "AS unreachable" answer are built here and nowhere else.
"""

import hashlib
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import after_this_request, current_app, jsonify, request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app_support.trace import tracer

from . import db
from .as_client import ASClient, ASUnavailable, NotRegistered, PatRejected
from .db import utcnow
from .models import AccessLog, IntrospectionCache, Patient
from .pats import NotLinked, with_pat
from .rpt_check import grants

UNREACHABLE_WARNING = '199 - "UMA Authorization Server Unreachable"'


@dataclass
class Requester:
    """Who the RPT was issued to, as the AS's introspection tells it."""

    sub: str | None
    username: str | None
    client_id: str | None


class Refused(Exception):
    """The request does not get through; ``response`` says why, in the protocol's words."""

    def __init__(self, response):
        super().__init__(response.status_code)
        self.response = response


def as_client() -> ASClient:
    return current_app.extensions["ehr_as"]


def _margin() -> int:
    return current_app.config["PAT_REFRESH_MARGIN"]


def require(patient: Patient, resource_id: str | None, label: str, scope: str) -> Requester:
    """Let the request through with an RPT granting ``scope`` on the UMA resource
    ``resource_id`` (a record set or a device feed, ``label`` in the access log), or raise
    ``Refused`` with the 401 + ticket (RS-2, RS-5) or the 403 + Warning (RS-3)."""
    session = db.session()
    rpt = _bearer_token()
    log = _access_logger(patient, label, scope)
    if resource_id is None or patient.link is None:
        log("refused", 403, None)
        raise Refused(
            _json_error(
                403,
                "not_protected",
                f"{patient.username} has not put these records under her authorization "
                "server yet, so nobody else can reach them.",
            )
        )
    client = as_client()
    requester = None
    try:
        if rpt:
            answer = _introspect(patient, rpt)
            if answer.get("active") is True:
                requester = Requester(
                    answer.get("sub"), answer.get("username"), answer.get("client_id")
                )
            if grants(answer, resource_id, scope, time.time()):
                tracer().note(f"the RPT grants {scope} on {label}")

                @after_this_request
                def _log_outcome(response):
                    log("granted", response.status_code, requester)
                    return response

                return requester
        # No token, or one that does not cover this request: as if no token came (RS-5).
        if rpt:
            tracer().note(f"the RPT does not grant {scope} on {label}: a new ticket")
        permission = [{"resource_id": resource_id, "resource_scopes": [scope]}]
        ticket = with_pat(
            session, client, patient, lambda pat: client.request_ticket(pat, permission), _margin()
        )
    except (ASUnavailable, NotLinked, NotRegistered) as error:
        session.rollback()
        log("as_unreachable", 403, None)
        current_app.logger.warning("UMA check for %s failed: %s", label, error)
        raise Refused(_unreachable(_why_no_ticket(error, patient, label))) from None
    log("ticket", 401, requester)
    raise Refused(_challenge(client.metadata()["issuer"], ticket))


def _challenge(as_uri: str, ticket: str):
    """UMA Grant §3.2: ``WWW-Authenticate: UMA realm, as_uri, ticket``, quoted auth-params."""
    response = _json_error(
        401,
        "uma_ticket",
        "An RPT is needed. Take the ticket in WWW-Authenticate to the authorization server "
        "named in as_uri.",
    )
    realm = current_app.config["REALM"]
    response.headers["WWW-Authenticate"] = (
        f'UMA realm="{realm}", as_uri="{as_uri}", ticket="{ticket}"'
    )
    return response


def _why_no_ticket(error: Exception, patient: Patient, label: str) -> str:
    """RS-3 covers every way of failing to get a ticket; only one of them passes by itself,
    so the description says which one it was and what ends it."""
    if isinstance(error, (NotLinked, PatRejected)):
        return (
            f"{patient.username}'s authorization server no longer accepts this EHR's "
            "protection token, so nobody can be let in until she protects her records again."
        )
    if isinstance(error, NotRegistered):
        return (
            f"The authorization server no longer knows '{label}' as a resource, so no ticket "
            "could be had. The EHR registers it again when it restarts."
        )
    return "The authorization server could not be asked for a permission ticket; try again later."


def _unreachable(description: str):
    """UMA Grant §3.2: no ticket could be had, so 403 and the spec's Warning (RS-3)."""
    response = _json_error(403, "as_unreachable", description)
    response.headers["Warning"] = UNREACHABLE_WARNING
    return response


def _json_error(status: int, error: str, description: str):
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _bearer_token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _introspect(patient: Patient, rpt: str) -> dict:
    """The AS's answer about ``rpt``, seen with this patient's PAT, reused for a few seconds."""
    session = db.session()
    digest = hashlib.sha256(rpt.encode()).hexdigest()
    now = utcnow()
    cached = session.scalar(
        select(IntrospectionCache).where(
            IntrospectionCache.token_digest == digest,
            IntrospectionCache.patient_id == patient.id,
            IntrospectionCache.expires_at > now,
        )
    )
    if cached is not None:
        tracer().note("the AS's answer about this RPT came from the EHR's short cache")
        return cached.body
    client = as_client()
    answer = with_pat(session, client, patient, lambda pat: client.introspect(pat, rpt), _margin())
    ttl = current_app.config["INTROSPECTION_CACHE_SECONDS"]
    exp = answer.get("exp")
    if isinstance(exp, int | float):
        ttl = min(ttl, max(0, int(exp - now.timestamp())))
    if ttl > 0:
        _remember(digest, patient.id, answer, now + timedelta(seconds=ttl))
    return answer


def _remember(digest: str, patient_id: int, answer: dict, expires_at) -> None:
    session = db.session()
    session.execute(delete(IntrospectionCache).where(IntrospectionCache.expires_at <= utcnow()))
    session.execute(
        delete(IntrospectionCache).where(
            IntrospectionCache.token_digest == digest, IntrospectionCache.patient_id == patient_id
        )
    )
    session.add(
        IntrospectionCache(
            token_digest=digest, patient_id=patient_id, body=answer, expires_at=expires_at
        )
    )
    try:
        session.commit()
    except IntegrityError:  # another worker cached the same answer a moment ago
        session.rollback()


def _access_logger(patient: Patient, label: str, scope: str):
    def log(outcome: str, status: int, requester: Requester | None) -> None:
        session = db.session()
        session.add(
            AccessLog(
                patient_id=patient.id,
                resource=label,
                scope=scope,
                method=request.method,
                subject=requester.username or requester.sub if requester else None,
                client_id=requester.client_id if requester else None,
                outcome=outcome,
                status=status,
            )
        )
        session.commit()

    return log
