"""Permission requests and tickets (UMA FedAuthz §4, UMA Grant §3.2, checklist 6.8).

A ticket is 256 random bits, URL-safe, shown to the RS once and stored only as its SHA-256
digest; it expires after a configurable lifetime and can be redeemed once.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.orm import Session

from .errors import InvalidRequest, InvalidResourceId, InvalidScope
from .models import PermissionTicket, Resource, secret_digest, utcnow
from .resources import parse_scope_list

MAX_PERMISSIONS = 100

# The grant path runs these on every request: built once, with bound parameters, and in
# SQLAlchemy Core, because nothing here needs ORM objects (rows read like them).
_TICKETS = PermissionTicket.__table__
_RESOURCES = Resource.__table__
_FIND_TICKET = select(_TICKETS).where(_TICKETS.c.ticket_digest == bindparam("digest"))
_CLAIM_TICKET = (
    update(_TICKETS)
    .where(
        _TICKETS.c.id == bindparam("ticket_id"),
        _TICKETS.c.used_at.is_(None),
        _TICKETS.c.expires_at > bindparam("now"),
    )
    .values(used_at=bindparam("claimed_at"))
)
_RS_RESOURCES = select(_RESOURCES.c.id, _RESOURCES.c.scopes).where(
    _RESOURCES.c.id.in_(bindparam("ids", expanding=True)),
    _RESOURCES.c.owner_id == bindparam("owner_id"),
    _RESOURCES.c.client_pk == bindparam("client_pk"),
)


@dataclass(frozen=True)
class RequestedPermission:
    resource_id: str
    resource_scopes: list[str]


def parse_permission_request(body) -> list[RequestedPermission]:
    """One permission object, or an array of one or more (PERM-2). Repeated ids are merged."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidRequest("The array of permissions is empty.")
    if len(items) > MAX_PERMISSIONS:
        raise InvalidRequest(f"At most {MAX_PERMISSIONS} permissions per request.")
    merged: dict[str, list[str]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise InvalidRequest("Each permission must be a JSON object.")
        resource_id = item.get("resource_id")
        if not isinstance(resource_id, str) or not resource_id:
            raise InvalidRequest("'resource_id' is required and must be a string.")
        if "resource_scopes" not in item:
            raise InvalidRequest("'resource_scopes' is required (it may be an empty array).")
        scopes = merged.setdefault(resource_id, [])
        for scope in parse_scope_list(item["resource_scopes"]):
            if scope not in scopes:
                scopes.append(scope)
    return [RequestedPermission(rid, scopes) for rid, scopes in merged.items()]


def check_permissions(
    session: Session, owner_id: int, rs_pk: int, permissions: list[RequestedPermission]
) -> None:
    """Every resource must be this RS's registration for this owner, every scope registered."""
    params = {"ids": [p.resource_id for p in permissions], "owner_id": owner_id, "client_pk": rs_pk}
    found = {r.id: r for r in session.execute(_RS_RESOURCES, params)}
    for permission in permissions:
        resource = found.get(permission.resource_id)
        if resource is None:
            # Also for another owner's resource: one ticket speaks for one owner (PERM-5).
            raise InvalidResourceId(
                f"Resource '{permission.resource_id}' is not registered for this owner."
            )
        unknown = [s for s in permission.resource_scopes if s not in resource.scopes]
        if unknown:
            raise InvalidScope(
                f"Scope(s) {', '.join(unknown)} are not registered for resource "
                f"'{permission.resource_id}'."
            )


def _store_ticket(
    session: Session,
    owner_id: int,
    rs_pk: int,
    permissions: list[dict],
    ttl_seconds: int,
    **context,
) -> str:
    """Insert a new ticket row and return its only plaintext copy.

    A Core INSERT: nobody reads the row back in this request, so no ORM object is built.
    """
    value = secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(
        insert(_TICKETS),
        {
            "ticket_digest": secret_digest(value),
            "owner_id": owner_id,
            "client_pk": rs_pk,
            "permissions": permissions,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl_seconds),
            **context,
        },
    )
    return value


def issue_ticket(
    session: Session,
    owner_id: int,
    rs_pk: int,
    permissions: list[RequestedPermission],
    ttl_seconds: int,
) -> str:
    """A ticket for exactly these permissions (PERM-3)."""
    value = _store_ticket(
        session,
        owner_id,
        rs_pk,
        [{"resource_id": p.resource_id, "resource_scopes": p.resource_scopes} for p in permissions],
        ttl_seconds,
    )
    session.commit()
    return value


def request_permission(session: Session, owner_id: int, rs_pk: int, body, ttl_seconds: int) -> str:
    """The permission endpoint's whole job: validate, then one ticket for all permissions."""
    permissions = parse_permission_request(body)
    check_permissions(session, owner_id, rs_pk, permissions)
    return issue_ticket(session, owner_id, rs_pk, permissions, ttl_seconds)


def find_ticket(session: Session, ticket: str) -> Row | None:
    """The ticket row for a presented value, whether or not it is still redeemable.

    A read-only row with the columns of ``PermissionTicket``: tickets change only through
    ``claim_ticket``'s conditional UPDATE."""
    return session.execute(_FIND_TICKET, {"digest": secret_digest(ticket)}).first()


class TicketUnusable(Exception):
    """Unknown, expired or already redeemed: the grant answers ``invalid_grant`` (TKT-3)."""

    def __init__(self, reason: str, ticket: Row | None = None):
        super().__init__(reason)
        self.reason = reason
        self.ticket = ticket


def usable_ticket(session: Session, value: str) -> Row:
    """The ticket for this value if it can still be redeemed; reading only."""
    ticket = find_ticket(session, value)
    if ticket is None:
        raise TicketUnusable("unknown ticket")
    if ticket.used_at is not None:
        raise TicketUnusable("ticket already used", ticket)
    if ticket.expires_at <= utcnow():
        raise TicketUnusable("ticket expired", ticket)
    return ticket


def claim_ticket(session: Session, ticket: Row) -> bool:
    """Mark the ticket used unless someone else did first (TKT-2, TKT-3).

    The conditional UPDATE is what makes a ticket single-use under concurrency: of two
    requests racing with the same ticket, exactly one changes the row. It becomes durable
    with the caller's commit, and holds the row (or SQLite's write lock) until then.
    """
    now = utcnow()
    claimed = session.execute(
        _CLAIM_TICKET, {"ticket_id": ticket.id, "now": now, "claimed_at": now}
    )
    return claimed.rowcount == 1


def redeem_ticket(session: Session, value: str) -> Row:
    """Check, claim and commit in one go (the claims interaction endpoint's use)."""
    ticket = usable_ticket(session, value)
    if not claim_ticket(session, ticket):
        session.rollback()
        raise TicketUnusable("ticket already used", ticket)
    session.commit()
    return ticket


def rotate_ticket(
    session: Session,
    old: Row,
    ttl_seconds: int,
    requester_id: int | None = None,
    bound_client_pk: int | None = None,
    claims_gathered: bool = False,
    commit: bool = True,
) -> str:
    """A new ticket for the same permissions (TKT-4: it always differs from the old one)."""
    value = _store_ticket(
        session,
        old.owner_id,
        old.client_pk,
        old.permissions,
        ttl_seconds,
        requester_id=requester_id,
        bound_client_pk=bound_client_pk,
        claims_gathered=claims_gathered,
        previous_id=old.id,
    )
    if commit:
        session.commit()
    return value
