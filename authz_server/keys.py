"""Signing keys: generated once, kept in the database, rotated without breaking issued tokens."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import bindparam, select
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

_keys = SigningKey.__table__
# The hot path reads only which kids exist and their dates; the private JWK (a JSON document
# to decode) is fetched once per kid per process, when the parsed key is not cached yet.
_KEY_DATES = (
    select(_keys.c.kid, _keys.c.superseded_at)
    .where(_keys.c.superseded_at.is_(None) | (_keys.c.superseded_at > bindparam("cutoff")))
    .order_by(_keys.c.created_at.desc())
)
_KEY_JWK = select(_keys.c.private_jwk).where(_keys.c.kid == bindparam("kid"))


def _parsed_key(session: Session, kid: str) -> RSAKey:
    key = _parsed.get(kid)
    if key is None:
        jwk = session.execute(_KEY_JWK, {"kid": kid}).scalar_one()
        key = _parsed[kid] = RSAKey.import_key(jwk)
    return key


@dataclass(frozen=True)
class KeyRing:
    """The key that signs new tokens, and every key whose signatures may still be valid."""

    current: RSAKey
    published: list[RSAKey]

    def signing_set(self) -> KeySet:
        """Only the current key, so joserfc writes its ``kid`` into headers."""
        return KeySet([self.current])

    def verification_set(self) -> KeySet:
        return KeySet(self.published)


def key_ring(session: Session, grace_seconds: int) -> KeyRing:
    """Current and published keys from one small query (a grant needs both)."""
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    rows = session.execute(_KEY_DATES, {"cutoff": cutoff}).all()
    live = [row.kid for row in rows if row.superseded_at is None]
    if not live:
        raise LookupError("no signing key: run ensure_signing_key first")
    # The newest key not superseded signs; rows come newest first.
    return KeyRing(_parsed_key(session, live[0]), [_parsed_key(session, r.kid) for r in rows])


def signing_key_set(session: Session) -> KeySet:
    """A key set holding only the current key, so joserfc writes its ``kid`` into headers."""
    return key_ring(session, 0).signing_set()


def published_keys(session: Session, grace_seconds: int) -> list[RSAKey]:
    """Every key whose signatures may still be valid: current ones and recently superseded."""
    return key_ring(session, grace_seconds).published


def public_jwks(session: Session, grace_seconds: int) -> dict:
    """The JWKS document: public halves only."""
    return {"keys": [key.as_dict(private=False) for key in published_keys(session, grace_seconds)]}


def verification_key_set(session: Session, grace_seconds: int) -> KeySet:
    return key_ring(session, grace_seconds).verification_set()


def rotate_signing_key(session: Session) -> str:
    """Start signing with a new key; the old ones stay in the JWKS for the grace period."""
    now = utcnow()
    for row in session.scalars(select(SigningKey).where(SigningKey.superseded_at.is_(None))):
        row.superseded_at = now
    jwk = new_private_jwk()
    session.add(SigningKey(kid=jwk["kid"], private_jwk=jwk, created_at=now))
    session.commit()
    return jwk["kid"]
