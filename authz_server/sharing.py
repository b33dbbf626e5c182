"""The owner's side of sharing: policies, pending requests, approvals and denials.

Plain functions over a session; the owner JSON API (and later the console) call them.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from . import audit
from .errors import InvalidRequest, NotFound
from .models import AccessRequest, Client, Group, Policy, Resource, User, utcnow
from .policy import ASK, DENY, SUBJECT_EMAIL_DOMAIN, SUBJECT_GROUP, SUBJECT_USER
from .resources import parse_scope_list

PENDING, APPROVED, DENIED = "pending", "approved", "denied"
SATISFIED = "satisfied"  # covered by a policy the owner made without answering the request


@dataclass(frozen=True)
class Subject:
    kind: str
    user: User | None = None
    group: Group | None = None
    email_domain: str | None = None


def parse_subject(session: Session, doc) -> Subject:
    """``{"type": "user", "username"|"email": …}``, ``{"type": "group", "name": …}`` or
    ``{"type": "email_domain", "domain": "surgery.example"}``."""
    if not isinstance(doc, dict):
        raise InvalidRequest("'subject' must be an object with a 'type'.")
    kind = doc.get("type")
    if kind == SUBJECT_USER:
        if isinstance(doc.get("username"), str):
            user = session.scalar(select(User).where(User.username == doc["username"]))
        elif isinstance(doc.get("email"), str):
            user = session.scalar(select(User).where(User.email == doc["email"].lower()))
        else:
            raise InvalidRequest("A user subject needs 'username' or 'email'.")
        if user is None or user.is_service_account:
            raise InvalidRequest("No such person on this server.")
        return Subject(SUBJECT_USER, user=user)
    if kind == SUBJECT_GROUP:
        if not isinstance(doc.get("name"), str):
            raise InvalidRequest("A group subject needs a 'name'.")
        group = session.scalar(select(Group).where(Group.name == doc["name"]))
        if group is None:
            raise InvalidRequest("No such group on this server.")
        return Subject(SUBJECT_GROUP, group=group)
    if kind == SUBJECT_EMAIL_DOMAIN:
        domain = doc.get("domain")
        if not isinstance(domain, str) or "." not in domain or "@" in domain.lstrip("@"):
            raise InvalidRequest("'domain' must look like 'surgery.example'.")
        return Subject(SUBJECT_EMAIL_DOMAIN, email_domain=domain.lstrip("@").lower())
    raise InvalidRequest("'type' must be 'user', 'group' or 'email_domain'.")


def parse_expiry(value, now: datetime | None = None) -> datetime | None:
    """RFC 3339 with a timezone, in the future; null means until revoked."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest("'expires_at' must be an RFC 3339 date-time or null.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest("'expires_at' is not an RFC 3339 date-time.") from None
    if moment.tzinfo is None:
        raise InvalidRequest("'expires_at' needs a timezone, e.g. 2026-12-31T12:00:00Z.")
    if moment <= (now or utcnow()):
        raise InvalidRequest("'expires_at' is in the past.")
    return moment


def owned_resources(session: Session, owner: User, ids) -> list[Resource]:
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise InvalidRequest("'resources' must be a non-empty array of resource ids.")
    found = {
        r.id: r
        for r in session.scalars(
            select(Resource).where(Resource.id.in_(ids), Resource.owner_id == owner.id)
        )
    }
    missing = [i for i in ids if i not in found]
    if missing:
        # Someone else's resource is indistinguishable from a missing one.
        raise NotFound(f"No resource '{missing[0]}' of yours.")
    return [found[i] for i in dict.fromkeys(ids)]


def create_policy(
    session: Session,
    owner: User,
    subject: Subject,
    resources: list[Resource],
    scopes: list[str],
    expires_at: datetime | None,
    from_request: AccessRequest | None = None,
) -> Policy:
    if not scopes:
        raise InvalidRequest("Choose at least one scope to share.")
    for resource in resources:
        unknown = set(scopes) - set(resource.scopes)
        if unknown:
            raise InvalidRequest(
                f"'{resource.name or resource.id}' has no scope {', '.join(sorted(unknown))}."
            )
    policy = Policy(
        owner_id=owner.id,
        subject_type=subject.kind,
        subject_user_id=subject.user.id if subject.user else None,
        subject_group_id=subject.group.id if subject.group else None,
        subject_email_domain=subject.email_domain,
        scopes=scopes,
        expires_at=expires_at,
        resources=resources,
        from_request_id=from_request.id if from_request else None,
    )
    session.add(policy)
    session.commit()
    return policy


def create_policy_from_json(session: Session, owner: User, doc) -> Policy:
    if not isinstance(doc, dict):
        raise InvalidRequest("A policy must be a JSON object.")
    return create_policy(
        session,
        owner,
        parse_subject(session, doc.get("subject")),
        owned_resources(session, owner, doc.get("resources")),
        parse_scope_list(doc.get("scopes"), "scopes"),
        parse_expiry(doc.get("expires_at")),
    )


def owner_policy(session: Session, owner: User, policy_id: int) -> Policy:
    policy = session.get(Policy, policy_id)
    if policy is None or policy.owner_id != owner.id:
        raise NotFound(f"No policy {policy_id} of yours.")
    return policy


def revoke_policy(session: Session, owner: User, policy_id: int) -> Policy:
    """Takes effect at once: introspection re-checks live policies for every RPT."""
    policy = owner_policy(session, owner, policy_id)
    if policy.revoked_at is None:
        policy.revoked_at = utcnow()
        session.commit()
    return policy


def list_policies(session: Session, owner: User, include_revoked: bool = False) -> list[Policy]:
    query = select(Policy).where(Policy.owner_id == owner.id)
    if not include_revoked:
        query = query.where(Policy.revoked_at.is_(None))
    return list(session.scalars(query.order_by(Policy.created_at.desc(), Policy.id.desc())))


@dataclass
class RequesterHistory:
    """This requester's unanswered and refused asks for some resources (one query)."""

    pending: dict[str, AccessRequest]
    denied: set[str]


# Built once: every grant runs it (bound parameters, cached compilation).
_OPEN_OR_REFUSED = select(AccessRequest).where(
    AccessRequest.requester_id == bindparam("requester_id"),
    AccessRequest.resource_id.in_(bindparam("ids", expanding=True)),
    AccessRequest.status.in_((PENDING, DENIED)),
)


def requester_history(session: Session, requester: User, resource_ids) -> RequesterHistory:
    rows = session.scalars(
        _OPEN_OR_REFUSED, {"requester_id": requester.id, "ids": list(resource_ids)}
    )
    history = RequesterHistory({}, set())
    for row in rows:
        if row.status == PENDING:
            history.pending[row.resource_id] = row
        else:
            history.denied.add(row.resource_id)
    return history


def record_access_requests(
    session: Session,
    owner_id: int,
    requester: User,
    client: Client,
    asks: dict[str, set[str]],
    history: RequesterHistory,
) -> None:
    """One pending request per requester and resource: a repeat ask widens the scopes."""
    for resource_id, scopes in asks.items():
        existing = history.pending.get(resource_id)
        if existing is not None:
            merged = sorted(set(existing.scopes) | scopes)
            if merged != existing.scopes:
                existing.scopes = merged
            existing.client_pk = client.id
            continue
        session.add(
            AccessRequest(
                owner_id=owner_id,
                requester_id=requester.id,
                resource_id=resource_id,
                client_pk=client.id,
                scopes=sorted(scopes),
            )
        )


def close_satisfied_requests(history: RequesterHistory, resource_ids) -> None:
    """A pending request the requester now gets through policy needs no answer any more."""
    for resource_id in resource_ids:
        found = history.pending.get(resource_id)
        if found is not None:
            found.status = SATISFIED
            found.decided_at = utcnow()


def list_requests(session: Session, owner: User, status: str | None = PENDING):
    query = select(AccessRequest).where(AccessRequest.owner_id == owner.id)
    if status:
        query = query.where(AccessRequest.status == status)
    return list(session.scalars(query.order_by(AccessRequest.created_at.desc())))


def _pending(session: Session, owner: User, request_id: int) -> AccessRequest:
    found = session.get(AccessRequest, request_id)
    if found is None or found.owner_id != owner.id:
        raise NotFound(f"No request {request_id} of yours.")
    if found.status != PENDING:
        raise InvalidRequest(f"Request {request_id} was already {found.status}.")
    return found


def approve_request(
    session: Session,
    owner: User,
    request_id: int,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> Policy:
    """Share: a policy for this requester on this resource, optionally narrowed and timed."""
    found = _pending(session, owner, request_id)
    chosen = scopes if scopes is not None else found.scopes
    if not chosen:
        raise InvalidRequest("Choose at least one scope to share.")
    # Any scope of the resource may be chosen, not only the asked ones: "share read too".
    policy = create_policy(
        session,
        owner,
        Subject(SUBJECT_USER, user=found.requester),
        [found.resource],
        chosen,
        expires_at,
        from_request=found,
    )
    found.status = APPROVED
    found.decided_at = utcnow()
    # Earlier refusals of this requester for this resource no longer stand.
    for old in session.scalars(
        select(AccessRequest).where(
            AccessRequest.requester_id == found.requester_id,
            AccessRequest.resource_id == found.resource_id,
            AccessRequest.status == DENIED,
        )
    ):
        old.status = "superseded"
    _audit_answer(session, found, "granted", "owner approved the request", chosen)
    session.commit()
    return policy


def _audit_answer(session: Session, found: AccessRequest, outcome, reason, scopes) -> None:
    audit.record(
        session,
        found.owner_id,
        outcome=outcome,
        reason=reason,
        requester=found.requester.username,
        client=found.client.display_name,
        resource_id=found.resource_id,
        resource_name=found.resource.name,
        scopes=scopes,
    )


def deny_request(session: Session, owner: User, request_id: int) -> AccessRequest:
    found = _pending(session, owner, request_id)
    found.status = DENIED
    found.decided_at = utcnow()
    _audit_answer(session, found, "denied", "owner denied the request", found.scopes)
    session.commit()
    return found


def set_uncovered(session: Session, owner: User, resource_id: str, value: str) -> Resource:
    if value not in (ASK, DENY):
        raise InvalidRequest("'uncovered' must be 'ask' or 'deny'.")
    resource = owned_resources(session, owner, [resource_id])[0]
    resource.uncovered = value
    session.commit()
    return resource


def policy_json(policy: Policy) -> dict:
    subject: dict = {"type": policy.subject_type}
    if policy.subject_user:
        subject["username"] = policy.subject_user.username
    if policy.subject_group:
        subject["name"] = policy.subject_group.name
    if policy.subject_email_domain:
        subject["domain"] = policy.subject_email_domain
    return {
        "id": policy.id,
        "subject": subject,
        "resources": [r.id for r in policy.resources],
        "scopes": policy.scopes,
        "expires_at": policy.expires_at.isoformat() if policy.expires_at else None,
        "created_at": policy.created_at.isoformat(),
        "revoked_at": policy.revoked_at.isoformat() if policy.revoked_at else None,
        "from_request": policy.from_request_id,
    }


def request_json(found: AccessRequest) -> dict:
    return {
        "id": found.id,
        "requester": {
            "username": found.requester.username,
            "name": found.requester.full_name,
            "email": found.requester.email,
        },
        "client": found.client.display_name,
        "resource": {"id": found.resource_id, "name": found.resource.name},
        "scopes": found.scopes,
        "status": found.status,
        "created_at": found.created_at.isoformat(),
        "decided_at": found.decided_at.isoformat() if found.decided_at else None,
    }
