"""Expired protocol rows leave the database: tickets, RPTs, PCTs, tokens and codes.

Every one of them is dead once expired, but a row is kept a while longer
(``KEEP_EXPIRED_SECONDS``, a day by default), so the checks that still read an expired row
find it while it matters: a ticket seen again revokes the RPTs issued from it (TKT-6), and an
expired RPT may be offered for an upgrade (UPG). Access requests and the audit log are the
owner's history and stay.

Run by ``uma-health-as purge-expired`` (``make demo`` runs it on every start; a deployment
runs it from cron). The grant path never pays for it.
"""

from datetime import datetime, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session

from .models import AuthorizationCode, Pct, PermissionTicket, Rpt, Token


def purge_expired(session: Session, now: datetime, keep: timedelta) -> dict[str, int]:
    """Delete what expired before ``now - keep``; commits; returns rows deleted per table."""
    cutoff = now - keep
    epoch = int(cutoff.timestamp())  # Authlib's token and code columns hold Unix seconds
    statements = {
        # RPTs before their tickets: rpts.ticket_id would otherwise be set to NULL first.
        "rpts": delete(Rpt).where(Rpt.expires_at < cutoff),
        "permission_tickets": delete(PermissionTicket).where(PermissionTicket.expires_at < cutoff),
        "pcts": delete(Pct).where(Pct.expires_at < cutoff),
        # A token row holds an access token and maybe a refresh token: both must be dead.
        "tokens": delete(Token).where(
            Token.issued_at + Token.expires_in < epoch,
            or_(Token.refresh_token.is_(None), Token.refresh_token_expires_at < epoch),
        ),
        "authorization_codes": delete(AuthorizationCode).where(AuthorizationCode.auth_time < epoch),
    }
    deleted = {table: session.execute(stmt).rowcount for table, stmt in statements.items()}
    session.commit()
    return deleted
