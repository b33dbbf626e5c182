"""A person's requests to the EHR, carried through the UMA grant and remembered: tokens in the
database, requests that must wait (for the owner, or for the person to sign in at the AS)
kept as ``PendingAction`` rows, and each resource's last outcome as a ``Visit``.

Flask-free: functions take a database session, the ``UmaClient`` and plain values.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import utcnow
from .models import PendingAction, Person, Visit, Wallet
from .uma import (
    SAME_TICKET,
    Answered,
    Denied,
    Failed,
    NeedsSignIn,
    Outcome,
    Tokens,
    UmaClient,
    Waiting,
)


@dataclass
class SignInRedirect:
    """Where to send the person: the AS's claims interaction endpoint (UMA Grant §3.3.2)."""

    url: str
    state: str  # the client's ``state`` on this trip, to recognise the way back


@dataclass
class WaitingPage:
    pending: PendingAction


Result = Answered | SignInRedirect | WaitingPage | Denied | Failed


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def load_tokens(session: Session, person: Person, as_uri: str) -> tuple[Wallet, Tokens]:
    wallet = session.scalar(
        select(Wallet).where(Wallet.person_id == person.id, Wallet.as_uri == as_uri)
    )
    if wallet is None:
        wallet = Wallet(person_id=person.id, as_uri=as_uri)
        session.add(wallet)
        try:
            session.commit()
        except IntegrityError:  # another worker made it a moment ago
            session.rollback()
            wallet = session.scalar(
                select(Wallet).where(Wallet.person_id == person.id, Wallet.as_uri == as_uri)
            )
    id_token = None
    if person.id_token and person.id_token_expires_at and person.id_token_expires_at > utcnow():
        id_token = person.id_token  # an expired one would only earn need_info
    expires = wallet.rpt_expires_at.timestamp() if wallet.rpt_expires_at else None
    return wallet, Tokens(id_token=id_token, rpt=wallet.rpt, rpt_expires_at=expires, pct=wallet.pct)


def store_tokens(wallet: Wallet, tokens: Tokens) -> None:
    wallet.rpt, wallet.pct = tokens.rpt, tokens.pct
    wallet.rpt_expires_at = (
        datetime.fromtimestamp(tokens.rpt_expires_at, UTC) if tokens.rpt_expires_at else None
    )


class Requests:
    """One person's requests through one client, as the views need them."""

    def __init__(
        self,
        session: Session,
        client: UmaClient,
        person: Person,
        as_uri: str,
        claims_redirect_uri: str,
    ):
        self.session, self.client, self.person = session, client, person
        self.as_uri, self.claims_redirect_uri = as_uri, claims_redirect_uri

    def perform(self, method: str, url: str, body: dict | None = None, title: str = "") -> Result:
        wallet, tokens = load_tokens(self.session, self.person, self.as_uri)
        outcome = self.client.call(method, url, tokens, body)
        store_tokens(wallet, tokens)
        return self._settle(outcome, method, url, body, title)

    def resume_after_sign_in(self, state: str, ticket: str) -> Result | None:
        """The claims redirect came back (UMA Grant §3.3.3): the ``state`` must be one we
        issued to this person and not used yet (SEC-CSRF-C); None when it is not."""
        pending = self.session.scalar(
            select(PendingAction).where(
                PendingAction.state_digest == digest(state),
                PendingAction.person_id == self.person.id,
                PendingAction.kind == "claims",
                PendingAction.status == "open",
            )
        )
        if pending is None or not self._claim(pending):
            return None
        pending.state_digest = None  # single use
        if ticket == pending.ticket:  # TKT-4: the redirect back must bring a new ticket
            pending.status, pending.message = "failed", SAME_TICKET
            self.session.commit()
            return Failed(SAME_TICKET)
        return self._continue(pending, ticket)

    def sign_in_refused(self, state: str, description: str) -> None:
        """The person cancelled at the AS: the request behind ``state`` ends here."""
        self.session.execute(
            update(PendingAction)
            .where(
                PendingAction.state_digest == digest(state),
                PendingAction.person_id == self.person.id,
                PendingAction.status == "open",
            )
            .values(status="denied", message=description, state_digest=None)
        )
        self.session.commit()

    def poll(self, pending: PendingAction) -> Result:
        """One poll of a ``request_submitted`` request, if its interval has passed."""
        if pending.status != "open" or pending.next_poll_at > utcnow():
            return WaitingPage(pending)
        if not self._claim(pending):  # another tab or worker is polling it right now
            return WaitingPage(pending)
        return self._continue(pending, pending.ticket)

    def pending(self, pending_id: int) -> PendingAction | None:
        pending = self.session.get(PendingAction, pending_id)
        return pending if pending is not None and pending.person_id == self.person.id else None

    # -- internals

    def _claim(self, pending: PendingAction) -> bool:
        """Take the request for this poll, atomically: a ticket must be redeemed once, and a
        note posted once, even with two tabs open or several workers answering."""
        claimed = self.session.execute(
            update(PendingAction)
            .where(PendingAction.id == pending.id, PendingAction.status == "open")
            .values(status="running")
        ).rowcount
        self.session.commit()
        self.session.refresh(pending)
        return claimed == 1

    def _continue(self, pending: PendingAction, ticket: str) -> Result:
        wallet, tokens = load_tokens(self.session, self.person, pending.as_uri)
        outcome = self.client.redeem(pending.as_uri, ticket, tokens)
        if outcome is None or outcome == "invalid_grant":
            # An RPT now (or a dead ticket: start over once): make the request itself.
            outcome = self.client.call(pending.method, pending.url, tokens, pending.body)
        store_tokens(wallet, tokens)
        result = self._settle(outcome, pending.method, pending.url, pending.body, "", pending)
        if isinstance(result, Denied):
            pending.status, pending.message = "denied", result.description
        elif isinstance(result, Failed) and pending.kind == "waiting":
            # Most likely the AS or the EHR is away for a moment: keep the request (and its
            # note) and try again at the next poll.
            pending.status, pending.message = "open", result.description
            pending.next_poll_at = utcnow() + timedelta(seconds=pending.interval)
        elif pending.status == "running":
            pending.status = "failed" if isinstance(result, Failed) else "done"
            pending.message = getattr(result, "description", None)
        self.session.commit()
        return result

    def _settle(self, outcome: Outcome, method, url, body, title, again=None) -> Result:
        """Turn an outcome into what the person sees next; ``again`` is the waiting request
        being polled, which keeps its page when the owner has still not answered."""
        result: Result = outcome
        if isinstance(outcome, NeedsSignIn):
            state = secrets.token_urlsafe(32)
            self._remember(
                "claims",
                method,
                url,
                body,
                outcome.as_uri,
                outcome.ticket,
                state_digest=digest(state),
            )
            query = urlencode(
                {
                    "client_id": self.client.client_id,
                    "ticket": outcome.ticket,
                    "claims_redirect_uri": self.claims_redirect_uri,
                    "state": state,
                }
            )
            separator = "&" if "?" in outcome.redirect_user else "?"
            result = SignInRedirect(outcome.redirect_user + separator + query, state)
        elif isinstance(outcome, Waiting) and again is not None and again.kind == "waiting":
            # Still waiting: the same request, its page and its note, with the new ticket.
            again.status, again.ticket = "open", outcome.ticket
            again.interval = max(1, outcome.interval)
            again.next_poll_at = utcnow() + timedelta(seconds=again.interval)
            result = WaitingPage(again)
        elif isinstance(outcome, Waiting):
            pending = self._remember(
                "waiting",
                method,
                url,
                body,
                outcome.as_uri,
                outcome.ticket,
                interval=outcome.interval,
            )
            result = WaitingPage(pending)
        if method == "GET":
            self._visit(url, title, _visit_outcome(result))
        self.session.commit()
        return result

    def _remember(self, kind, method, url, body, as_uri, ticket, interval=5, state_digest=None):
        pending = PendingAction(
            person_id=self.person.id,
            kind=kind,
            method=method,
            url=url,
            body=body,
            as_uri=as_uri,
            ticket=ticket,
            interval=max(1, interval),
            next_poll_at=utcnow() + timedelta(seconds=max(1, interval)),
            state_digest=state_digest,
        )
        self.session.add(pending)
        self.session.flush()
        return pending

    def _visit(self, url: str, title: str, outcome: str) -> None:
        visit = self.session.scalar(
            select(Visit).where(Visit.person_id == self.person.id, Visit.url == url)
        )
        if visit is None:
            visit = Visit(person_id=self.person.id, url=url)
            self.session.add(visit)
        visit.title = title or visit.title or url
        visit.outcome, visit.at = outcome, utcnow()


def _visit_outcome(result: Result) -> str:
    if isinstance(result, Answered):
        return "granted" if result.response.ok else "failed"
    if isinstance(result, (WaitingPage, SignInRedirect)):
        return "waiting"
    return "denied" if isinstance(result, Denied) else "failed"
