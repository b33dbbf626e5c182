"""RPTs: issuing them as signed JWTs, and re-checking what they still permit.

An RPT carries its permissions, but the AS never trusts that snapshot on introspection: every
permission is re-assessed against the owner's live policies, so revoking a policy or letting
it expire ends access at once ("no means no", checklist PRIV-TTL).
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.orm import Session

from .models import (
    Policy,
    Resource,
    Rpt,
    User,
    policy_resources,
    secret_digest,
    user_groups,
    utcnow,
)
from .policy import SUBJECT_GROUP, Requester, ResourceInfo, Rule, assess

RPT_TABLE = Rpt.__table__
_resources = Resource.__table__
_links = policy_resources
_policies = Policy.__table__

# The resources, and the unrevoked policies naming each (none: NULL policy columns), in one
# statement: resources by primary key, then ix_policy_resources_resource, then each policy
# by primary key. Never a scan, and one round trip for what the grant and introspection
# would otherwise ask in two.
_RESOURCES_AND_RULES = (
    select(
        _resources.c.id,
        _resources.c.name,
        _resources.c.scopes,
        _resources.c.uncovered,
        _resources.c.owner_id,
        _resources.c.client_pk,
        _policies.c.id.label("policy_id"),
        _policies.c.subject_type,
        _policies.c.scopes.label("policy_scopes"),
        _policies.c.subject_user_id,
        _policies.c.subject_group_id,
        _policies.c.subject_email_domain,
        _policies.c.expires_at.label("policy_expires_at"),
    )
    .select_from(_resources)
    .outerjoin(_links, _links.c.resource_id == _resources.c.id)
    .outerjoin(
        _policies, and_(_policies.c.id == _links.c.policy_id, _policies.c.revoked_at.is_(None))
    )
    .where(_resources.c.id.in_(bindparam("ids", expanding=True)))
)
_GROUP_IDS = select(user_groups.c.group_id).where(user_groups.c.user_id == bindparam("user_id"))


def requester_of(session: Session, user: User, rules: list[Rule]) -> Requester:
    """The requester as the rules need them: group ids are read only if a rule names a group."""
    group_ids: frozenset[int] = frozenset()
    if any(rule.subject_type == SUBJECT_GROUP for rule in rules):
        group_ids = frozenset(session.execute(_GROUP_IDS, {"user_id": user.id}).scalars())
    return Requester(
        user_id=user.id,
        username=user.username,
        email=user.email,
        email_verified=user.email_verified,
        group_ids=group_ids,
    )


@dataclass(frozen=True)
class Registered:
    """A registered resource as the grant and introspection read it."""

    id: str
    name: str | None
    scopes: list[str]
    uncovered: str
    owner_id: int
    client_pk: int


def resource_info(resource: Registered) -> ResourceInfo:
    return ResourceInfo(resource.id, frozenset(resource.scopes), resource.uncovered)


def resources_and_rules(
    session: Session, resource_ids: list[str]
) -> tuple[dict[str, Registered], list[Rule]]:
    """The resources still registered among these ids, and the unrevoked policies naming
    any of them (each with the subset of these ids it names): one indexed query."""
    if not resource_ids:
        return {}, []
    resources: dict[str, Registered] = {}
    covered: dict[int, set[str]] = {}
    policy_rows = {}
    for row in session.execute(_RESOURCES_AND_RULES, {"ids": list(resource_ids)}):
        if row.id not in resources:
            resources[row.id] = Registered(
                row.id, row.name, row.scopes, row.uncovered, row.owner_id, row.client_pk
            )
        if row.policy_id is not None:
            covered.setdefault(row.policy_id, set()).add(row.id)
            policy_rows.setdefault(row.policy_id, row)
    rules = [
        Rule(
            id=policy_id,
            subject_type=row.subject_type,
            resource_ids=frozenset(covered[policy_id]),
            scopes=frozenset(row.policy_scopes),
            user_id=row.subject_user_id,
            group_id=row.subject_group_id,
            email_domain=row.subject_email_domain,
            expires_at=row.policy_expires_at,
        )
        for policy_id, row in policy_rows.items()
    ]
    return resources, rules


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def issue_rpt(
    keys: KeySet,
    issuer: str,
    client,
    requester: User,
    permissions: list[dict],
    ttl_seconds: int,
    ticket_id: int | None,
) -> tuple[str, dict]:
    """Sign an RPT; return it and the row that records it, for the caller to insert with
    the rest of the grant (``RPT_TABLE``). ``permissions`` items may carry ``exp``."""
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
    row = {
        "digest": secret_digest(token),
        "jti": jti,
        "client_pk": client.id,
        "requester_id": requester.id,
        "ticket_id": ticket_id,
        "permissions": [
            {"resource_id": p["resource_id"], "resource_scopes": p["resource_scopes"]}
            for p in permissions
        ],
        "issued_at": now,
        "expires_at": expires,
    }
    return token, row


def find_rpt(session: Session, token: str) -> Rpt | None:
    return session.scalar(select(Rpt).where(Rpt.digest == secret_digest(token)))


def live_permissions(
    session: Session,
    rpt: Rpt,
    visible: Callable[[Registered], bool],
    now: datetime | None = None,
) -> list[dict]:
    """What the RPT still permits, on the resources this caller may learn about.

    Each permission keeps only the scopes a live policy still grants this requester; its
    ``exp`` is the earlier of the token's and the granting policies' (checklist INT-U2).
    """
    now = now or utcnow()
    resources, rules = resources_and_rules(session, [p["resource_id"] for p in rpt.permissions])
    requested = {
        p["resource_id"]: set(p["resource_scopes"])
        for p in rpt.permissions
        if p["resource_id"] in resources and visible(resources[p["resource_id"]])
    }
    # Rules naming only invisible resources grant nothing here: assess looks at `requested`.
    assessment = assess(requested, rules, requester_of(session, rpt.requester, rules), now)
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
