"""The AS's share of the protocol trace (app_support.trace): who sent what it receives, and
how a request that carries no flow header (a browser's) finds its flow."""

import re

from flask import Request

from app_support.trace import Tracer, tracer

from . import db
from .discovery import PATHS
from .models import AccessRequest

# Alice answers a pending request in her console, or through the owner API.
_ANSWER = re.compile(r"^/(?:console/requests|api/owner/requests)/(\d{1,10})(?:/approve|/deny)?$")


def incoming_peer(request: Request) -> str | None:
    path = request.path
    if path == PATHS["token_endpoint"]:
        return "client"
    if path == PATHS["introspection_endpoint"] or path.startswith("/uma/"):
        return "ehr"
    if path == PATHS["claims_interaction_endpoint"]:
        return "party"
    if _ANSWER.match(path) and request.method == "POST":
        return "alice"
    return None


def resolve_flow(request: Request) -> str | None:
    """Tickets come back through the person's browser; Alice answers a request by its id."""
    trace: Tracer = tracer()
    if request.path == PATHS["claims_interaction_endpoint"] and request.args.get("ticket"):
        return trace.flow_of(request.args["ticket"])
    answer = _ANSWER.match(request.path)
    if answer and request.method == "POST":
        found = db.session().get(AccessRequest, int(answer.group(1)))
        if found is not None:
            return trace.flow_of(ask_key(found.owner_id, found.requester_id, found.resource_id))
    return None


def ask_key(owner_id: int, requester_id: int, resource_id: str) -> str:
    """The pending request a flow created: one per requester and resource."""
    return f"ask:{owner_id}:{requester_id}:{resource_id}"
