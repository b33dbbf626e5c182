"""The audit log: every authorization decision, per owner (who, which app, what, outcome, why)."""

from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from .models import AuditEvent, utcnow

OUTCOMES = ("granted", "partial", "pending", "denied", "need_info", "invalid")


def event(
    owner_id: int,
    *,
    outcome: str,
    reason: str,
    requester: str | None,
    client: str | None,
    resource_id: str | None = None,
    resource_name: str | None = None,
    scopes: list[str] | None = None,
) -> dict:
    """One event's row, to be written with the decision it belongs to."""
    return {
        "owner_id": owner_id,
        "at": utcnow(),
        "requester": requester,
        "client": client,
        "resource_id": resource_id,
        "resource_name": resource_name,
        "scopes": sorted(scopes or []),
        "outcome": outcome,
        "reason": reason,
    }


def record(session: Session, owner_id: int, **details) -> None:
    """Write one event; the caller commits with the decision it belongs to."""
    record_events(session, [event(owner_id, **details)])


def record_events(session: Session, events: list[dict]) -> None:
    # A Core INSERT, not an ORM object: the events are never read back in the same request,
    # and the unit of work would cost more than the insert itself.
    if events:
        session.execute(insert(AuditEvent.__table__), events)


def query(
    session: Session,
    owner_id: int,
    *,
    outcome: str | None = None,
    requester: str | None = None,
    resource_id: str | None = None,
    since: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[AuditEvent], int]:
    """One owner's events, newest first, filtered, with the total count for paging."""
    where = [AuditEvent.owner_id == owner_id]
    if outcome:
        where.append(AuditEvent.outcome == outcome)
    if requester:
        where.append(AuditEvent.requester == requester)
    if resource_id:
        where.append(AuditEvent.resource_id == resource_id)
    if since:
        where.append(AuditEvent.at >= since)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*where))
    events = session.scalars(
        select(AuditEvent)
        .where(*where)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return list(events), total


def as_json(event: AuditEvent) -> dict:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "requester": event.requester,
        "client": event.client,
        "resource_id": event.resource_id,
        "resource_name": event.resource_name,
        "scopes": event.scopes,
        "outcome": event.outcome,
        "reason": event.reason,
    }
