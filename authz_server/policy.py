"""Policy evaluation for the UMA grant: the authorization assessment of UMA Grant §3.3.4.

Plain Python, no Flask and no database: the grant loads what it needs into these value
objects, so every rule here is unit-tested on its own (tests/authz/test_policy.py).
"""

from dataclasses import dataclass, field
from datetime import datetime

ASK = "ask"
DENY = "deny"

SUBJECT_USER = "user"
SUBJECT_GROUP = "group"
SUBJECT_EMAIL_DOMAIN = "email_domain"


class InvalidScopeRequest(Exception):
    """A requested scope matches no scope of any resource in the ticket (checklist 6.4)."""


@dataclass(frozen=True)
class Requester:
    """What the AS knows about the requesting party, from verified claims."""

    user_id: int
    username: str
    email: str | None = None
    email_verified: bool = False
    group_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Rule:
    """One owner policy, as the assessment needs it."""

    id: int
    subject_type: str
    resource_ids: frozenset[str]
    scopes: frozenset[str]
    user_id: int | None = None
    group_id: int | None = None
    email_domain: str | None = None
    expires_at: datetime | None = None

    def is_live(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def covers(self, requester: Requester) -> bool:
        if self.subject_type == SUBJECT_USER:
            return self.user_id == requester.user_id
        if self.subject_type == SUBJECT_GROUP:
            return self.group_id in requester.group_ids
        if self.subject_type == SUBJECT_EMAIL_DOMAIN:
            # Only a verified address proves membership of a domain.
            email = (requester.email or "").lower()
            domain = (self.email_domain or "").lower().lstrip("@")
            return requester.email_verified and bool(domain) and email.endswith("@" + domain)
        return False  # unknown subject kinds grant nothing: default deny


@dataclass(frozen=True)
class ResourceInfo:
    id: str
    scopes: frozenset[str]
    uncovered: str = ASK


def requested_scopes(
    ticket: list[tuple[str, list[str]]],
    resources: dict[str, ResourceInfo],
    client_registered: set[str],
    requested: set[str] | None,
) -> dict[str, set[str]]:
    """RequestedScopes(resource) = TicketScopes(resource) ∪ (RegisteredScopes ∩ RequestedScopes).

    A scope in RegisteredScopes ∩ RequestedScopes is added only to resources that have it
    (checklist 6.2, inferred). A requested scope the client is not registered for is ignored
    (ASMT-2); one that is registered but fits no resource in the ticket is ``invalid_scope``.
    """
    extra = (client_registered & requested) if requested else set()
    available = set().union(*(r.scopes for r in resources.values())) if resources else set()
    unmatched = extra - available
    if unmatched:
        raise InvalidScopeRequest(
            f"Scope(s) {', '.join(sorted(unmatched))} match no resource in the ticket."
        )
    result: dict[str, set[str]] = {}
    for resource_id, ticket_scopes in ticket:
        resource = resources[resource_id]
        result[resource_id] = set(ticket_scopes) | (extra & resource.scopes)
    return result


@dataclass
class Assessment:
    """CandidateGrantedScopes per resource, and what could not be granted."""

    requested: dict[str, set[str]]
    granted: dict[str, set[str]] = field(default_factory=dict)
    # Resources for which some live policy covers the requester (even with no scopes asked).
    covered: set[str] = field(default_factory=set)
    # Latest moment each granted (resource, scope) stays allowed; None: until revoked.
    expiry: dict[tuple[str, str], datetime | None] = field(default_factory=dict)

    def missing(self) -> dict[str, set[str]]:
        """Requested scopes not granted, and resources asked with no scopes but not covered."""
        out = {}
        for resource_id, scopes in self.requested.items():
            lacking = scopes - self.granted.get(resource_id, set())
            if lacking or (not scopes and resource_id not in self.covered):
                out[resource_id] = lacking
        return out

    @property
    def complete(self) -> bool:
        return not self.missing()

    @property
    def anything_granted(self) -> bool:
        return any(self.granted.values()) or any(
            not scopes and rid in self.covered for rid, scopes in self.requested.items()
        )

    def permission_expiry(self, resource_id: str) -> datetime | None:
        """A permission lasts as long as its shortest-lived scope."""
        ends = [self.expiry[(resource_id, s)] for s in self.granted.get(resource_id, ())]
        bounded = [e for e in ends if e is not None]
        return min(bounded) if bounded else None


def assess(
    requested: dict[str, set[str]],
    rules: list[Rule],
    requester: Requester | None,
    now: datetime,
) -> Assessment:
    """Evaluate every requested scope against the live rules that cover this requester.

    Default deny (ASMT-1, SEC-DEFAULT-DENY): without an identified requester, or without a
    live rule naming the resource, the scope, and a subject the requester matches, nothing
    is granted.
    """
    result = Assessment(requested=requested)
    if requester is None:
        return result
    applicable = [r for r in rules if r.is_live(now) and r.covers(requester)]
    for resource_id, scopes in requested.items():
        granting = [r for r in applicable if resource_id in r.resource_ids]
        if granting:
            result.covered.add(resource_id)
        granted = set()
        for scope in scopes:
            by = [r for r in granting if scope in r.scopes]
            if by:
                granted.add(scope)
                ends = [r.expires_at for r in by]
                result.expiry[(resource_id, scope)] = (
                    None if any(e is None for e in ends) else max(ends)
                )
        result.granted[resource_id] = granted
    return result


@dataclass(frozen=True)
class Decision:
    """What the grant answers: an RPT (possibly partial) or one of the UMA errors."""

    outcome: str  # "granted" | "partial" | "submitted" | "denied"
    # Resources (with the scopes still lacking) to put before the owner as pending requests.
    to_ask: dict[str, set[str]] = field(default_factory=dict)


def decide(
    assessment: Assessment,
    resources: dict[str, ResourceInfo],
    denied_before: set[str] = frozenset(),
) -> Decision:
    """Turn an assessment into the grant's answer (UMA Grant §3.3.4 step 5).

    - everything granted → RPT;
    - something granted → RPT with the partial CandidateGrantedScopes ("partial grants per
      policy"), and what is lacking still goes to the owner where the resource says "ask";
    - nothing granted → ``request_submitted`` if a lacking resource says "ask" and its owner
      has not already refused this requester, else ``request_denied``.
    """
    missing = assessment.missing()
    if not missing:
        return Decision("granted")
    to_ask = {
        rid: scopes
        for rid, scopes in missing.items()
        if resources[rid].uncovered == ASK and rid not in denied_before
    }
    if assessment.anything_granted:
        return Decision("partial", to_ask)
    if to_ask:
        return Decision("submitted", to_ask)
    return Decision("denied")
