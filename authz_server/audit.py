"""The audit log: every authorization decision, per owner (who, which app, what, outcome, why)."""

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import AuditEvent

OUTCOMES = ("granted", "partial", "pending", "denied", "need_info", "invalid")


def record(
    session: Session,
    owner_id: int,
    *,
    outcome: str,
    reason: str,
    requester: str | None,
    client: str | None,
    resource_id: str | None = None,
    resource_name: str | None = None,
    scopes: list[str] | None = None,
) -> None:
    """Add one event; the caller commits with the decision it belongs to."""
    session.add(
        AuditEvent(
            owner_id=owner_id,
            requester=requester,
            client=client,
            resource_id=resource_id,
            resource_name=resource_name,
            scopes=sorted(scopes or []),
            outcome=outcome,
            reason=reason,
        )
    )


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
