"""What the owner's console shows and the choices it offers, as plain functions over a session:
who has access to which resource now, the sharing durations, the apps holding a PAT.

No Flask in here; the console views parse forms, call these and ``sharing``, and render.
"""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time

from authlib.oauth2.rfc6749.util import scope_to_list
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from .errors import InvalidRequest
from .models import AccessRequest, Client, Policy, Resource, Token, User, utcnow
from .policy import SUBJECT_EMAIL_DOMAIN, SUBJECT_GROUP
from .sharing import PENDING, owner_policy

# The Share dialog's durations (issue 7): label → how long, None = until revoked.
DURATIONS = {
    "1d": ("1 day", timedelta(days=1)),
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
    "forever": ("until I revoke", None),
    "custom": ("until a date…", None),
}
UMA_PROTECTION = "uma_protection"


def expiry_for(choice: str, custom: date | None, now: datetime | None = None) -> datetime | None:
    """The policy's ``expires_at`` for a duration choice; a custom date lasts to its end."""
    now = now or utcnow()
    if choice not in DURATIONS:
        raise InvalidRequest("Choose how long to share.")
    if choice == "custom":
        if custom is None:
            raise InvalidRequest("Pick the date the sharing should end.")
        end = datetime.combine(custom, day_time(23, 59, 59), UTC)
        if end <= now:
            raise InvalidRequest("That date is in the past.")
        return end
    length = DURATIONS[choice][1]
    return now + length if length else None


def subject_label(policy: Policy) -> str:
    if policy.subject_type == SUBJECT_GROUP and policy.subject_group:
        return f"group {policy.subject_group.name}"
    if policy.subject_type == SUBJECT_EMAIL_DOMAIN:
        return f"anyone with a verified email at {policy.subject_email_domain}"
    user = policy.subject_user
    return f"{user.full_name or user.username} ({user.username})" if user else "?"


@dataclass
class Access:
    policy: Policy
    who: str
    scopes: list[str]
    expires_at: datetime | None


def access_now(session: Session, owner: User) -> dict[str, list[Access]]:
    """Resource id → the live policies that cover it (not revoked, not expired)."""
    now = utcnow()
    policies = session.scalars(
        select(Policy).where(
            Policy.owner_id == owner.id,
            Policy.revoked_at.is_(None),
            or_(Policy.expires_at.is_(None), Policy.expires_at > now),
        )
    )
    covered: dict[str, list[Access]] = {}
    for policy in policies:
        entry = Access(policy, subject_label(policy), policy.scopes, policy.expires_at)
        for resource in policy.resources:
            covered.setdefault(resource.id, []).append(entry)
    return covered


def pending_count(session: Session, owner: User) -> int:
    return session.scalar(
        select(func.count())
        .select_from(AccessRequest)
        .where(AccessRequest.owner_id == owner.id, AccessRequest.status == PENDING)
    )


def update_policy(
    session: Session, owner: User, policy_id: int, scopes: list[str], expires_at
) -> Policy:
    """Change what a live policy shares and for how long; takes effect at the next check."""
    policy = owner_policy(session, owner, policy_id)
    if policy.revoked_at is not None:
        raise InvalidRequest("That sharing was revoked; share again instead.")
    if not scopes:
        raise InvalidRequest("Choose at least one scope, or revoke instead.")
    for resource in policy.resources:
        unknown = set(scopes) - set(resource.scopes)
        if unknown:
            raise InvalidRequest(
                f"'{resource.name or resource.id}' has no scope {', '.join(sorted(unknown))}."
            )
    policy.scopes, policy.expires_at = list(scopes), expires_at
    session.commit()
    return policy


@dataclass
class ConnectedApp:
    client: Client
    since: datetime
    resources: int


def connected_apps(session: Session, owner: User) -> list[ConnectedApp]:
    """Resource servers holding a live PAT (or a refresh token for one) of this owner."""
    now = int(time.time())
    tokens = session.scalars(
        select(Token).where(
            Token.user_id == owner.id,
            Token.refresh_token_revoked_at == 0,
            Token.refresh_token_expires_at > now,
        )
    ).all()
    apps: dict[str, ConnectedApp] = {}
    for token in tokens:
        if UMA_PROTECTION not in (scope_to_list(token.scope) or []):
            continue
        client = session.scalar(select(Client).where(Client.client_id == token.client_id))
        if client is None:
            continue
        since = datetime.fromtimestamp(token.issued_at, UTC)
        app = apps.setdefault(client.client_id, ConnectedApp(client, since, 0))
        app.since = min(app.since, since)
    for app in apps.values():
        app.resources = session.scalar(
            select(func.count())
            .select_from(Resource)
            .where(Resource.owner_id == owner.id, Resource.client_pk == app.client.id)
        )
    return sorted(apps.values(), key=lambda a: a.client.display_name)


def disconnect(session: Session, owner: User, client_id: str) -> int:
    """Revoke every PAT and refresh token this resource server holds for the owner. Its
    registrations stay (so policies are kept), but it can no longer ask for tickets or
    introspect for her until she links again."""
    now = int(time.time())
    result = session.execute(
        update(Token)
        .where(Token.user_id == owner.id, Token.client_id == client_id)
        .values(access_token_revoked_at=now, refresh_token_revoked_at=now)
    )
    session.commit()
    return result.rowcount
