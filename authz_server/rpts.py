"""RPTs: issuing them as signed JWTs, and re-checking what they still permit.

An RPT carries its permissions, but the AS never trusts that snapshot on introspection: every
permission is re-assessed against the owner's live policies, so revoking a policy or letting
it expire ends access at once ("no means no", checklist PRIV-TTL).
"""

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .models import Policy, Resource, Rpt, User, policy_resources, secret_digest, utcnow
from .policy import Requester, ResourceInfo, Rule, assess


def requester_of(user: User) -> Requester:
    return Requester(
        user_id=user.id,
        username=user.username,
        email=user.email,
        email_verified=user.email_verified,
        group_ids=frozenset(g.id for g in user.groups),
    )


def resource_info(resource: Resource) -> ResourceInfo:
    return ResourceInfo(resource.id, frozenset(resource.scopes), resource.uncovered)


def load_rules(session: Session, resource_ids: list[str]) -> list[Rule]:
    """The unrevoked policies naming any of these resources: two indexed lookups, no scan."""
    if not resource_ids:
        return []
    links = session.execute(
        select(policy_resources.c.policy_id, policy_resources.c.resource_id).where(
            policy_resources.c.resource_id.in_(resource_ids)
        )
    ).all()
    covered: dict[int, set[str]] = {}
    for policy_id, resource_id in links:
        covered.setdefault(policy_id, set()).add(resource_id)
    if not covered:
        return []
    rows = session.execute(
        select(
            Policy.id,
            Policy.subject_type,
            Policy.scopes,
            Policy.subject_user_id,
            Policy.subject_group_id,
            Policy.subject_email_domain,
            Policy.expires_at,
        ).where(Policy.id.in_(covered), Policy.revoked_at.is_(None))
    )
    return [
        Rule(
            id=row.id,
            subject_type=row.subject_type,
            resource_ids=frozenset(covered[row.id]),
            scopes=frozenset(row.scopes),
            user_id=row.subject_user_id,
            group_id=row.subject_group_id,
            email_domain=row.subject_email_domain,
            expires_at=row.expires_at,
        )
        for row in rows
    ]


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def issue_rpt(
    session: Session,
    keys: KeySet,
    issuer: str,
    client,
    requester: User,
    permissions: list[dict],
    ttl_seconds: int,
    ticket_id: int | None,
) -> tuple[str, Rpt]:
    """Sign and record an RPT. ``permissions`` items may carry ``exp`` (a datetime)."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl_seconds)
    jti = secrets.token_urlsafe(16)
    claims_permissions = []
    for p in permissions:
        item = {"resource_id": p["resource_id"], "resource_scopes": p["resource_scopes"]}
        if p.get("exp") is not None and p["exp"] < expires:
            item["exp"] = _epoch(p["exp"])
        claims_permissions.append(item)
    claims = {
        "iss": issuer,
        "sub": requester.sub,
        "azp": client.client_id,
        "aud": client.client_id,
        "iat": _epoch(now),
        "exp": _epoch(expires),
        "jti": jti,
        "permissions": claims_permissions,
    }
    token = jwt.encode({"alg": "RS256", "typ": "uma-rpt+jwt"}, claims, keys)
    row = Rpt(
        digest=secret_digest(token),
        jti=jti,
        client_pk=client.id,
        requester_id=requester.id,
        ticket_id=ticket_id,
        permissions=[
            {"resource_id": p["resource_id"], "resource_scopes": p["resource_scopes"]}
            for p in permissions
        ],
        issued_at=now,
        expires_at=expires,
    )
    session.add(row)  # committed with the rest of the grant
    return token, row


def find_rpt(session: Session, token: str) -> Rpt | None:
    return session.scalar(select(Rpt).where(Rpt.digest == secret_digest(token)))


def live_permissions(
    session: Session,
    rpt: Rpt,
    visible: Callable[[Resource], bool],
    now: datetime | None = None,
) -> list[dict]:
    """What the RPT still permits, on the resources this caller may learn about.

    Each permission keeps only the scopes a live policy still grants this requester; its
    ``exp`` is the earlier of the token's and the granting policies' (checklist INT-U2).
    """
    now = now or utcnow()
    ids = [p["resource_id"] for p in rpt.permissions]
    resources = {r.id: r for r in session.scalars(select(Resource).where(Resource.id.in_(ids)))}
    requested = {
        p["resource_id"]: set(p["resource_scopes"])
        for p in rpt.permissions
        if p["resource_id"] in resources and visible(resources[p["resource_id"]])
    }
    assessment = assess(
        requested, load_rules(session, list(requested)), requester_of(rpt.requester), now
    )
    out = []
    for resource_id, scopes in requested.items():
        granted = assessment.granted.get(resource_id, set())
        if scopes and not granted:
            continue
        if not scopes and resource_id not in assessment.covered:
            continue
        expiry = assessment.permission_expiry(resource_id)
        exp = min(rpt.expires_at, expiry) if expiry else rpt.expires_at
        out.append(
            {"resource_id": resource_id, "resource_scopes": sorted(granted), "exp": _epoch(exp)}
        )
    return out


def revoke_rpts_from_ticket(session: Session, ticket_id: int) -> None:
    """A replayed ticket may be stolen: revoke what was issued for it (TKT-6, SEC-TICKET)."""
    session.execute(
        update(Rpt)
        .where(Rpt.ticket_id == ticket_id, Rpt.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
