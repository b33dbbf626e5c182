"""Patients' PATs (FedAuthz §1.3): stored per patient with their refresh token, refreshed
transparently — also while the patient is offline — and used for every protection API call.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import update
from sqlalchemy.orm import Session

from .as_client import ASClient, ASUnavailable, PatRejected
from .db import utcnow
from .models import Patient, ProtectionLink

log = logging.getLogger(__name__)
T = TypeVar("T")


class NotLinked(Exception):
    """The patient has not linked her records to the AS (or the link no longer works)."""


def lock_patient(session: Session, patient_id: int) -> None:
    """Take a write lock on one patient's link and registrations until the next commit.

    A row UPDATE is a row lock on PostgreSQL and the database write lock on SQLite, so two
    workers never refresh the same refresh token (the AS rotates it) or register the same
    record set twice."""
    session.execute(
        update(Patient)
        .where(Patient.id == patient_id)
        .values(lock_version=Patient.lock_version + 1)
    )


def store_link(session: Session, patient: Patient, token: dict) -> ProtectionLink:
    """Keep the PAT from the code flow (scope ``uma_protection``), replacing an older one."""
    link = patient.link or ProtectionLink(patient=patient)
    _apply_token(link, token)
    link.linked_at = utcnow()
    session.add(link)
    return link


def _apply_token(link: ProtectionLink, token: dict) -> None:
    link.access_token = token["access_token"]
    link.refresh_token = token.get("refresh_token") or link.refresh_token
    expires_at = token.get("expires_at")
    if expires_at is None:
        expires_at = datetime.now(UTC).timestamp() + int(token.get("expires_in", 300))
    link.expires_at = datetime.fromtimestamp(int(expires_at), UTC)
    link.scope = token.get("scope", link.scope or "")
    link.broken_at = None


def refresh_pat(session: Session, client: ASClient, patient: Patient, margin: int, force=False):
    """Refresh the PAT if it expires within ``margin`` seconds (or ``force``), and commit.

    The common case (a PAT still fresh) takes no lock. A refresh happens under the patient
    lock, so a second worker waiting there finds the fresh token instead of spending the
    refresh token the AS has just rotated."""
    link = patient.link
    if (
        not force
        and link is not None
        and link.broken_at is None
        and link.expires_at - timedelta(seconds=margin) > utcnow()
    ):
        return link.access_token
    lock_patient(session, patient.id)
    link = (
        session.get(ProtectionLink, patient.link.id, populate_existing=True)
        if patient.link
        else None
    )
    if link is None or link.broken_at is not None:
        session.rollback()
        raise NotLinked(patient.username)
    if not force and link.expires_at - timedelta(seconds=margin) > utcnow():
        session.commit()
        return link.access_token
    if not link.refresh_token:
        return _broken(session, link, "no refresh token")
    oauth = OAuth2Session(
        client.client_id, client.client_secret, token_endpoint_auth_method="client_secret_basic"
    )
    try:
        token = oauth.refresh_token(
            client.endpoint("token_endpoint"),
            refresh_token=link.refresh_token,
            timeout=client.timeout,
        )
    except OAuthError as error:
        if error.error == "invalid_grant":  # the refresh token is revoked or expired
            return _broken(session, link, error.error)
        session.rollback()  # the AS's trouble, not the link's: try again next time
        raise ASUnavailable(f"refreshing the PAT: {error.error}") from None
    except (requests.RequestException, ASUnavailable) as error:
        session.rollback()
        raise ASUnavailable(f"refreshing the PAT: {error}") from None
    _apply_token(link, dict(token))
    session.commit()
    log.info("refreshed the PAT of %s", patient.username)
    return link.access_token


def _broken(session: Session, link: ProtectionLink, why: str):
    """The AS refused the refresh: the patient must link again; say so instead of retrying."""
    link.broken_at = utcnow()
    session.commit()
    log.warning("the PAT of patient %s cannot be refreshed (%s)", link.patient_id, why)
    raise PatRejected(f"refresh refused: {why}")


def with_pat(
    session: Session, client: ASClient, patient: Patient, call: Callable[[str], T], margin: int
) -> T:
    """Run ``call(pat)``; if the AS rejects the PAT, refresh it once and run again."""
    pat = refresh_pat(session, client, patient, margin)
    try:
        return call(pat)
    except PatRejected:
        session.rollback()
        pat = refresh_pat(session, client, patient, margin, force=True)
        return call(pat)
