"""The UMA grant at the token endpoint (UMA Grant §3.3; checklist section 6).

``UmaTicketGrant`` is the Authlib extension grant; ``UmaGrantProcess`` runs one request:
redeem the ticket → identify the requesting party → assess → answer with an RPT or a
typed UMA error. Policy rules live in policy.py, ticket rules in tickets.py.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.util import scope_to_list
from flask import current_app
from sqlalchemy import Row, Table, bindparam, insert, select

from app_support.trace import tracer

from . import audit, db
from .claims import ID_TOKEN_FORMAT, ClaimTokenRejected, verify_id_token
from .discovery import PATHS, UMA_TICKET_GRANT
from .errors import NeedInfo, RequestDenied, RequestSubmitted
from .grants import ANY_CLIENT_AUTH
from .keys import KeyRing, key_ring
from .models import Pct, User, secret_digest, utcnow
from .policy import InvalidScopeRequest, assess, decide, requested_scopes
from .rpts import (
    RPT_TABLE,
    find_rpt,
    issue_rpt,
    live_permissions,
    requester_of,
    resource_info,
    resources_and_rules,
    revoke_rpts_from_ticket,
)
from .sharing import close_satisfied_requests, record_access_requests, requester_history
from .tickets import TicketUnusable, claim_ticket, rotate_ticket, usable_ticket
from .trace_rules import ask_key

# Built once: the grant runs them on every request (bound parameters, cached compilation).
# The requesting party as the grant uses them: a read-only row of these columns (the PCT
# path hands over the equivalent ``User``; only these attributes are read).
_USERS = User.__table__
_PERSON = select(
    _USERS.c.id,
    _USERS.c.sub,
    _USERS.c.username,
    _USERS.c.email,
    _USERS.c.email_verified,
    _USERS.c.is_service_account,
)
_PERSON_BY_SUB = _PERSON.where(_USERS.c.sub == bindparam("sub"))
_PERSON_BY_ID = _PERSON.where(_USERS.c.id == bindparam("id"))
_PCT_BY_DIGEST = select(Pct).where(Pct.digest == bindparam("digest"))


@dataclass
class Identified:
    """The requesting party, and whether claims arrived in this request (→ issue a PCT)."""

    user: Row | User | None
    fresh_claims: bool = False
    why_not: str = "no claims were presented"


class UmaGrantProcess:
    def __init__(self, request, client):
        self.request = request
        self.client = client
        self.data = request.payload.data
        self.session = db.session()
        self.config = current_app.config
        self.now = utcnow()
        self.ticket: Row | None = None
        # Rows to insert in ``finish``, after the ticket is claimed: (table, values).
        self.inserts: list[tuple[Table, dict]] = []
        self.audit_events: list[dict] = []

    @cached_property
    def keys(self) -> KeyRing:
        """Read once per grant: the pushed ID token is verified and the RPT signed with it."""
        return key_ring(self.session, self.config["KEY_GRACE_SECONDS"])

    # -- step 1: the ticket -----------------------------------------------------------

    def load_ticket(self) -> Row:
        """Read the ticket; it is claimed only in ``finish``, so the write is short."""
        try:
            self.ticket = usable_ticket(self.session, self.data["ticket"])
            return self.ticket
        except TicketUnusable as error:
            if error.ticket is not None and error.reason == "ticket already used":
                revoke_rpts_from_ticket(self.session, error.ticket.id)  # TKT-6
            if error.ticket is not None:
                self._audit(error.ticket.owner_id, "invalid", error.reason)
            raise InvalidGrantError(error.reason) from None

    def finish(self) -> None:
        """Claim the ticket and commit everything the grant wrote, in one short transaction.

        Everything before this only read (autoflush is off), so the write lock is held for
        one UPDATE and a few INSERTs, not for the policy evaluation and the signing.
        """
        if self.ticket is not None and not claim_ticket(self.session, self.ticket):
            self.session.rollback()  # someone redeemed it meanwhile: nothing of ours stands
            raise InvalidGrantError("ticket already used")
        for table, values in self.inserts:
            self.session.execute(insert(table), values)
        audit.record_events(self.session, self.audit_events)
        self.session.commit()

    # -- step 2: who is asking ---------------------------------------------------------

    def identify(self, ticket: Row) -> Identified:
        claim_token = self.data.get("claim_token")
        if claim_token:
            if self.data.get("claim_token_format") != ID_TOKEN_FORMAT:
                return Identified(None, why_not="unsupported claim token format")
            try:
                claims = verify_id_token(
                    claim_token,
                    self.keys.verification_set(),
                    self.config["ISSUER"],
                    self.client.client_id,
                )
            except ClaimTokenRejected as error:
                return Identified(None, why_not=f"claim token refused: {error}")
            user = self.session.execute(_PERSON_BY_SUB, {"sub": claims["sub"]}).first()
            if user is None or user.is_service_account:  # service accounts are nobody's claims
                return Identified(None, why_not="claim token names no known person")
            return Identified(user, fresh_claims=True)
        if ticket.requester_id and ticket.bound_client_pk == self.client.id:
            # Gathered at the claims interaction endpoint, or carried over from this client's
            # previous attempt (a request_submitted poll).
            person = self.session.execute(_PERSON_BY_ID, {"id": ticket.requester_id}).first()
            return Identified(person, fresh_claims=ticket.claims_gathered)
        pct_value = self.data.get("pct")
        if pct_value:
            pct = self.session.scalar(_PCT_BY_DIGEST, {"digest": secret_digest(pct_value)})
            # A PCT works only for the client it was issued to (SEC-PCT).
            if (
                pct is not None
                and pct.client_pk == self.client.id
                and pct.revoked_at is None
                and pct.expires_at > self.now
            ):
                return Identified(pct.requester)
            return Identified(None, why_not="the PCT is not valid for this client")
        return Identified(None)

    # -- step 3: assess and answer ----------------------------------------------------

    def run(self):
        ticket = self.load_ticket()
        old_rpt = self.upgradeable_rpt()
        ticket_perms = [(p["resource_id"], p["resource_scopes"]) for p in ticket.permissions]
        ids = [rid for rid, _ in ticket_perms]
        resources, rules = resources_and_rules(self.session, ids)
        if len(resources) != len(set(ids)):
            self._audit(ticket.owner_id, "invalid", "a resource in the ticket was deregistered")
            raise InvalidGrantError("A resource in the ticket is no longer registered.")
        infos = {rid: resource_info(r) for rid, r in resources.items()}

        try:
            requested = requested_scopes(
                ticket_perms,
                infos,
                set(scope_to_list(self.client.scope) or []),
                set(scope_to_list(self.data.get("scope")) or []) or None,
            )
        except InvalidScopeRequest as error:
            raise InvalidScopeError(str(error)) from None

        who = self.identify(ticket)
        if who.user is None:
            self._audit_each(ticket.owner_id, resources, requested, "need_info", who.why_not)
            raise NeedInfo(
                ticket=rotate_ticket(self.session, ticket, self.config["TICKET_TTL"], commit=False),
                redirect_user=self.config["ISSUER"] + PATHS["claims_interaction_endpoint"],
                required_claims=[
                    {
                        "claim_token_format": [ID_TOKEN_FORMAT],
                        "issuer": [self.config["ISSUER"]],
                        "name": "sub",
                        "friendly_name": "who you are at this authorization server",
                    }
                ],
                description=f"Claims needed: {who.why_not}.",
            )

        requester = requester_of(self.session, who.user, rules)
        assessment = assess(requested, rules, requester, self.now)
        history = requester_history(self.session, who.user, ids)
        decision = decide(assessment, infos, history.denied)

        if decision.to_ask:
            record_access_requests(
                self.session, ticket.owner_id, who.user, self.client, decision.to_ask, history
            )
        missing = assessment.missing()
        close_satisfied_requests(history, set(resources) - set(missing))
        for rid, resource in resources.items():
            if rid not in missing:
                outcome, reason = "granted", "allowed by policy"
            elif rid in decision.to_ask:
                outcome, reason = "pending", "no policy covers it; the owner has been asked"
            else:
                outcome, reason = "denied", "no policy covers it and the owner does not ask"
            self._audit(ticket.owner_id, outcome, reason, who.user, resource, requested[rid])

        if decision.outcome == "submitted":
            interval = self.config["UMA_POLL_INTERVAL"]
            raise RequestSubmitted(
                ticket=rotate_ticket(
                    self.session,
                    ticket,
                    max(self.config["TICKET_TTL"], 4 * interval),
                    requester_id=who.user.id,
                    bound_client_pk=self.client.id,
                    commit=False,
                ),
                interval=interval,
                description="The owner has been asked; poll again with the new ticket.",
            )
        if decision.outcome == "denied":
            raise RequestDenied(description="The owner's policies do not allow this.")
        return self.respond(ticket, who, assessment, old_rpt)

    def upgradeable_rpt(self):
        """UPG: an earlier RPT of this client, possibly expired, offered for upgrade."""
        value = self.data.get("rpt")
        if not value:
            return None
        rpt = find_rpt(self.session, value)
        if rpt is None or rpt.client_pk != self.client.id or rpt.revoked_at is not None:
            raise InvalidGrantError("The 'rpt' is not a valid RPT of this client.")
        return rpt

    def respond(self, ticket, who: Identified, assessment, old_rpt):
        permissions = []
        for rid, scopes in assessment.requested.items():
            granted = assessment.granted.get(rid, set())
            if granted or (not scopes and rid in assessment.covered):
                permissions.append(
                    {
                        "resource_id": rid,
                        "resource_scopes": sorted(granted),
                        "exp": assessment.permission_expiry(rid),
                    }
                )
        upgraded = False
        if old_rpt is not None and old_rpt.requester_id == who.user.id:
            # Only permissions the old RPT still has under live policy carry over.
            merged = {p["resource_id"]: p for p in permissions}
            for kept in live_permissions(self.session, old_rpt, lambda _r: True, self.now):
                mine = merged.get(kept["resource_id"])
                if mine is None:
                    merged[kept["resource_id"]] = {**kept, "exp": None}
                else:
                    mine["resource_scopes"] = sorted(
                        set(mine["resource_scopes"]) | set(kept["resource_scopes"])
                    )
            permissions = list(merged.values())
            old_rpt.revoked_at = self.now  # UPG-4: the old string stops working
            upgraded = True

        ttl = self.config["RPT_TTL"]
        token, row = issue_rpt(
            self.keys.signing_set(),
            self.config["ISSUER"],
            self.client,
            who.user,
            permissions,
            ttl,
            ticket.id,
        )
        self.inserts.append((RPT_TABLE, row))
        body = {"access_token": token, "token_type": "Bearer", "expires_in": ttl}
        if who.fresh_claims:
            body["pct"] = self.issue_pct(who.user)
        if upgraded:
            body["upgraded"] = True
        return (
            200,
            body,
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                ("Pragma", "no-cache"),
            ],
        )

    def issue_pct(self, user: Row | User) -> str:
        value = "pct." + secrets.token_urlsafe(32)
        row = {
            "digest": secret_digest(value),
            "client_pk": self.client.id,
            "requester_id": user.id,
            "issued_at": self.now,
            "expires_at": self.now + timedelta(seconds=self.config["PCT_TTL"]),
        }
        self.inserts.append((Pct.__table__, row))
        return value

    # -- audit ------------------------------------------------------------------------

    def _audit(self, owner_id, outcome, reason, user=None, resource=None, scopes=None):
        trace = tracer()
        if resource is not None:
            trace.note(f"{resource.name}: {outcome}, {reason}")
            if outcome == "pending" and user is not None:
                trace.link(ask_key(owner_id, user.id, resource.id))
        self.audit_events.append(
            audit.event(
                owner_id,
                outcome=outcome,
                reason=reason,
                requester=user.username if user else None,
                client=self.client.display_name,
                resource_id=resource.id if resource else None,
                resource_name=resource.name if resource else None,
                scopes=scopes,
            )
        )

    def _audit_each(self, owner_id, resources, requested, outcome, reason):
        for rid, resource in resources.items():
            self._audit(owner_id, outcome, reason, None, resource, sorted(requested[rid]))


class UmaTicketGrant(BaseGrant, TokenEndpointMixin):
    """``grant_type=urn:ietf:params:oauth:grant-type:uma-ticket`` (UMA Grant §3.3.1)."""

    GRANT_TYPE = UMA_TICKET_GRANT
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_AUTH

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("This client may not use the UMA grant.")
        self.request.client = client
        data = self.request.payload.data
        if not data.get("ticket"):
            raise InvalidRequestError("'ticket' is required.")
        if bool(data.get("claim_token")) != bool(data.get("claim_token_format")):
            raise InvalidRequestError("'claim_token' and 'claim_token_format' go together.")

    def create_token_response(self):
        process = UmaGrantProcess(self.request, self.request.client)
        with process.session.no_autoflush:
            try:
                response = process.run()
            except OAuth2Error:
                # Whatever the answer, the presented ticket is used up (TKT-3) and the
                # rotated ticket, pending request and audit events are kept.
                process.finish()
                raise
        process.finish()
        return response
