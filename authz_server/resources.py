"""Resource registration (UMA FedAuthz §3): validating descriptions and the five operations.

Every operation is scoped to one (owner, resource server) pair: the owner is the one the PAT
identifies and the resource server is the client that holds it, so neither another owner's
resources nor another RS's registrations are visible (RREG-6, PAT-4, PAT-6).
"""

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import InvalidRequest, NotFound
from .models import Resource

MAX_SCOPES = 100
MAX_TEXT = {"name": 500, "type": 500, "description": 5000, "icon_uri": 2000}
LOCALIZABLE = ("name", "description")


@dataclass(frozen=True)
class ResourceDescription:
    """A validated resource description (FedAuthz §3.1)."""

    resource_scopes: list[str]
    name: str | None = None
    description: str | None = None
    type: str | None = None
    icon_uri: str | None = None
    localized: dict | None = None


def _text(doc: dict, member: str) -> str | None:
    value = doc.get(member)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{member}' must be a string.")
    limit = MAX_TEXT[member.split("#")[0]]
    if len(value) > limit:
        raise InvalidRequest(f"'{member}' is longer than {limit} characters.")
    return value


def _absolute_uri(value: str | None, member: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if not parts.scheme or (parts.scheme in ("http", "https") and not parts.netloc):
        raise InvalidRequest(f"'{member}' must be an absolute URI.")
    return value


def parse_scope_list(value, member: str = "resource_scopes") -> list[str]:
    """An array of scope strings, duplicates folded, order kept."""
    if not isinstance(value, list):
        raise InvalidRequest(f"'{member}' must be an array of strings.")
    if len(value) > MAX_SCOPES:
        raise InvalidRequest(f"'{member}' may hold at most {MAX_SCOPES} scopes.")
    scopes: list[str] = []
    for scope in value:
        if not isinstance(scope, str) or not scope.strip() or len(scope) > 500:
            raise InvalidRequest(f"Every entry of '{member}' must be a non-empty string.")
        if scope not in scopes:
            scopes.append(scope)
    return scopes


def parse_description(doc) -> ResourceDescription:
    """Validate a create/update body. Unknown members are extensions and are ignored."""
    if not isinstance(doc, dict):
        raise InvalidRequest("A resource description must be a JSON object.")
    if "resource_scopes" not in doc:
        raise InvalidRequest("'resource_scopes' is required.")
    localized = {}
    for member in doc:
        base, _, tag = member.partition("#")
        if tag and base in LOCALIZABLE:
            localized[member] = _text(doc, member)
    return ResourceDescription(
        resource_scopes=parse_scope_list(doc["resource_scopes"]),
        name=_text(doc, "name"),
        description=_text(doc, "description"),
        type=_text(doc, "type"),
        icon_uri=_absolute_uri(_text(doc, "icon_uri"), "icon_uri"),
        localized=localized,
    )


def _apply(resource: Resource, desc: ResourceDescription) -> None:
    resource.scopes = desc.resource_scopes
    resource.name = desc.name
    resource.description = desc.description
    resource.type = desc.type
    resource.icon_uri = desc.icon_uri
    resource.localized = desc.localized or {}


def register_resource(session: Session, owner_id: int, rs_pk: int, doc) -> Resource:
    """Create: the AS assigns the ``_id``."""
    desc = parse_description(doc)
    resource = Resource(id=secrets.token_urlsafe(12), owner_id=owner_id, client_pk=rs_pk)
    _apply(resource, desc)
    session.add(resource)
    session.commit()
    return resource


def get_resource(session: Session, owner_id: int, rs_pk: int, resource_id: str) -> Resource:
    """Read: only this owner's resources registered by this RS exist for it."""
    resource = session.get(Resource, resource_id)
    if resource is None or resource.owner_id != owner_id or resource.client_pk != rs_pk:
        raise NotFound(f"No resource with _id '{resource_id}' is registered for this owner.")
    return resource


def update_resource(session: Session, owner_id: int, rs_pk: int, resource_id: str, doc) -> Resource:
    """Update: a complete replacement of the description (FedAuthz §3.2.3)."""
    resource = get_resource(session, owner_id, rs_pk, resource_id)
    _apply(resource, parse_description(doc))
    session.commit()
    return resource


def delete_resource(session: Session, owner_id: int, rs_pk: int, resource_id: str) -> None:
    """Delete: protection ends at once; tickets naming it can no longer be redeemed."""
    resource = get_resource(session, owner_id, rs_pk, resource_id)
    session.delete(resource)
    session.commit()


def _int_arg(args, name: str) -> int | None:
    """A non-negative integer query argument; a negative ``max`` means "no limit" as in Keycloak."""
    raw = args.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer.") from None
    if value < 0:
        if name == "first":
            raise InvalidRequest("'first' must not be negative.")
        return None
    return value


def list_resource_ids(session: Session, owner_id: int, rs_pk: int, args=None) -> list[str]:
    """List: the ``_id`` of every resource of this owner at this RS.

    The optional filters ``name`` (with ``exactName``), ``type``, ``first`` and ``max`` are
    the ones python-keycloak sends; the spec defines none and a plain GET lists everything.
    """
    args = args or {}
    query = select(Resource.id).where(Resource.owner_id == owner_id, Resource.client_pk == rs_pk)
    if args.get("name"):
        if str(args.get("exactName", "")).lower() == "true":
            query = query.where(Resource.name == args["name"])
        else:
            query = query.where(Resource.name.contains(args["name"], autoescape=True))
    if args.get("type"):
        query = query.where(Resource.type == args["type"])
    query = query.order_by(Resource.created_at, Resource.id)
    query = query.offset(_int_arg(args, "first")).limit(_int_arg(args, "max"))
    return list(session.scalars(query))


def describe(resource: Resource) -> dict:
    """The read response: the stored description plus ``_id``."""
    body = {"_id": resource.id, "resource_scopes": list(resource.scopes)}
    for member in ("name", "description", "type", "icon_uri"):
        value = getattr(resource, member)
        if value is not None:
            body[member] = value
    body.update(resource.localized or {})
    return body
