"""The PAT as the protection API sees it (UMA FedAuthz §1.3): whose resources, which RS.

Every call to the protection API authenticates one, and needs nothing but the owner's id,
the resource server's id and what decides the token's validity. So it is read as one row
through a statement built once, not as a ``Token`` with its ``User`` and ``Client`` objects.
"""

import time
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .models import Client, Token, secret_digest

_TOKENS = Token.__table__
_CLIENTS = Client.__table__
# tokens.access_token and clients.client_id are both unique: two index lookups.
_PAT_BY_DIGEST = (
    select(
        _TOKENS.c.user_id,
        _CLIENTS.c.id.label("client_pk"),
        _TOKENS.c.scope,
        _TOKENS.c.issued_at,
        _TOKENS.c.expires_in,
        _TOKENS.c.access_token_revoked_at,
        _TOKENS.c.refresh_token_revoked_at,
    )
    .join(_CLIENTS, _CLIENTS.c.client_id == _TOKENS.c.client_id)
    .where(_TOKENS.c.access_token == bindparam("digest"))
)


@dataclass(frozen=True)
class Pat:
    """An access token's owner, its client, and the token interface Authlib's validator reads."""

    owner_id: int
    client_pk: int
    scope: str
    issued_at: int
    expires_in: int
    revoked: bool

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        # As Authlib's OAuth2TokenMixin: no lifetime means no expiry.
        return bool(self.expires_in) and self.issued_at + self.expires_in < time.time()

    def is_revoked(self) -> bool:
        return self.revoked


def find_pat(session: Session, value: str) -> Pat | None:
    """The access token with this value, if it has an owner; None otherwise."""
    row = session.execute(_PAT_BY_DIGEST, {"digest": secret_digest(value)}).first()
    if row is None or row.user_id is None:
        return None
    return Pat(
        owner_id=row.user_id,
        client_pk=row.client_pk,
        scope=row.scope,
        issued_at=row.issued_at,
        expires_in=row.expires_in,
        # As OAuth2TokenMixin.is_revoked: revoking either half of the grant ends the token.
        revoked=bool(row.access_token_revoked_at or row.refresh_token_revoked_at),
    )
