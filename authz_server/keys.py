"""Signing keys: generated once, kept in the database, rotated without breaking issued tokens."""

import secrets
from datetime import timedelta

from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Setting, SigningKey, utcnow

SIGNING_ALG = "RS256"


def new_private_jwk() -> dict:
    """A fresh RSA-2048 private key as a JWK dict with a random ``kid``."""
    key = RSAKey.generate_key(
        2048, parameters={"kid": secrets.token_urlsafe(12), "use": "sig", "alg": SIGNING_ALG}
    )
    return key.as_dict(private=True)


BOOTSTRAP_MARKER = "first_signing_key"


def ensure_signing_key(session: Session, initial_jwk: dict | None = None) -> None:
    """Create the first key unless one exists. Safe when several workers start at once:
    the marker row's primary key lets exactly one of them commit a key."""
    if session.scalar(select(SigningKey.kid).limit(1)) is not None:
        return
    jwk = initial_jwk or new_private_jwk()
    session.add(Setting(name=BOOTSTRAP_MARKER, value=jwk["kid"]))
    session.add(SigningKey(kid=jwk["kid"], private_jwk=jwk))
    try:
        session.commit()
    except IntegrityError:  # another worker created the first key
        session.rollback()


# Parsed keys by kid. Key material never changes under a kid, so this cache cannot go stale;
# which kid is current is still read from the database every time (rotation is immediate).
_parsed: dict[str, RSAKey] = {}


def _import(row: SigningKey) -> RSAKey:
    key = _parsed.get(row.kid)
    if key is None:
        key = _parsed[row.kid] = RSAKey.import_key(row.private_jwk)
    return key


def current_key(session: Session) -> RSAKey:
    """The key that signs new tokens: the newest one not superseded."""
    row = session.scalars(
        select(SigningKey)
        .where(SigningKey.superseded_at.is_(None))
        .order_by(SigningKey.created_at.desc())
        .limit(1)
    ).first()
    if row is None:
        raise LookupError("no signing key: run ensure_signing_key first")
    return _import(row)


def signing_key_set(session: Session) -> KeySet:
    """A key set holding only the current key, so joserfc writes its ``kid`` into headers."""
    return KeySet([current_key(session)])


def published_keys(session: Session, grace_seconds: int) -> list[RSAKey]:
    """Every key whose signatures may still be valid: current ones and recently superseded."""
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    rows = session.scalars(
        select(SigningKey)
        .where((SigningKey.superseded_at.is_(None)) | (SigningKey.superseded_at > cutoff))
        .order_by(SigningKey.created_at.desc())
    )
    return [_import(row) for row in rows]


def public_jwks(session: Session, grace_seconds: int) -> dict:
    """The JWKS document: public halves only."""
    return {"keys": [key.as_dict(private=False) for key in published_keys(session, grace_seconds)]}


def verification_key_set(session: Session, grace_seconds: int) -> KeySet:
    return KeySet(published_keys(session, grace_seconds))


def rotate_signing_key(session: Session) -> str:
    """Start signing with a new key; the old ones stay in the JWKS for the grace period."""
    now = utcnow()
    for row in session.scalars(select(SigningKey).where(SigningKey.superseded_at.is_(None))):
        row.superseded_at = now
    jwk = new_private_jwk()
    session.add(SigningKey(kid=jwk["kid"], private_jwk=jwk, created_at=now))
    session.commit()
    return jwk["kid"]
