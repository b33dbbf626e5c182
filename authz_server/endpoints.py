"""Token-side endpoints: introspection (RFC 7662 + UMA FedAuthz §5), revocation (RFC 7009),
dynamic client registration (RFC 7591), userinfo (OIDC Core §5.3)."""

import time
from dataclasses import dataclass

from authlib.common.security import generate_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientMetadataClaims
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint as _RegistrationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from authlib.oidc.core import UserInfoEndpoint as _UserInfoEndpoint
from flask import current_app
from joserfc.errors import InvalidClaimError
from sqlalchemy import bindparam, select

from . import db
from .grants import SECRET_AUTH, user_info
from .keys import signing_key_set
from .models import (
    PAT_BEARER_AUTH,
    PUBLIC_CLIENT_AUTH,
    Client,
    Pct,
    Rpt,
    Token,
    secret_digest,
    utcnow,
)
from .rpts import live_permissions

UMA_PROTECTION = "uma_protection"
REALM = "uma-health"


@dataclass
class FoundToken:
    """A presented token and what it turned out to be."""

    row: Token | Rpt | Pct
    kind: str  # "access_token" | "refresh_token" | "rpt" | "pct"
    # Who is asking about it (introspection): the authenticated client and its PAT, if any.
    caller: Client | None = None
    pat: Token | None = None

    def check_client(self, client) -> bool:
        if self.kind in ("rpt", "pct"):
            return self.row.client_pk == client.id
        return self.row.client_id == client.client_id

    def is_active(self) -> bool:
        if self.kind == "refresh_token":
            return self.row.is_refresh_token_active()
        if self.kind in ("rpt", "pct"):
            return self.row.revoked_at is None and self.row.expires_at > utcnow()
        return not self.row.is_revoked() and not self.row.is_expired()


LOOKUP_ORDER = ("access_token", "refresh_token", "rpt", "pct")
# One statement per kind, built once: every PAT-authenticated request runs one of them.
_BY_DIGEST = {
    "access_token": select(Token).where(Token.access_token == bindparam("digest")),
    "refresh_token": select(Token).where(Token.refresh_token == bindparam("digest")),
    "rpt": select(Rpt).where(Rpt.digest == bindparam("digest")),
    "pct": select(Pct).where(Pct.digest == bindparam("digest")),
}


def find_token(token_string: str, hint: str | None, kinds=LOOKUP_ORDER) -> FoundToken | None:
    """Look a token up by digest: the hinted kind first, then the others (RFC 7662 §2.1)."""
    digest = secret_digest(token_string)
    session = db.session()
    ordered = sorted(kinds, key=lambda kind: kind != hint)
    for kind in ordered:
        row = session.scalar(_BY_DIGEST[kind], {"digest": digest})
        if row is not None:
            return FoundToken(row, kind)
    return None


def authenticate_with_pat(query_client, request):
    """Client authentication by PAT, for the introspection endpoint (checklist INT-2).

    No Bearer header: not this method, let the next one try. A Bearer header that is not an
    active PAT: 401 invalid_token with a Bearer challenge (RFC 7662 §2.3 → RFC 6750 §3).
    """
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    found = find_token(value.strip(), "access_token", ("access_token",)) if value.strip() else None
    if found is None or found.kind != "access_token" or not found.is_active():
        raise InvalidTokenError("The PAT is unknown, expired or revoked.", realm=REALM)
    if UMA_PROTECTION not in (scope_to_list(found.row.scope) or []):
        raise InvalidTokenError("This token is not a PAT (no uma_protection scope).", realm=REALM)
    request.pat = found.row
    return query_client(found.row.client_id)


class IntrospectionEndpoint(_IntrospectionEndpoint):
    """RFC 7662, authorised by a PAT or by client credentials."""

    CLIENT_AUTH_METHODS = [*SECRET_AUTH, PAT_BEARER_AUTH]

    def check_params(self, request, client):
        # An unknown hint is not an error: the server searches every kind (RFC 7662 §2.1).
        if not request.form.get("token"):
            raise InvalidRequestError("'token' is required.")

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint, ("access_token", "refresh_token", "rpt"))

    def authenticate_token(self, request, client):
        token = super().authenticate_token(request, client)
        if token is not None:
            token.caller, token.pat = client, getattr(request, "pat", None)
        return token

    def check_permission(self, token, client, request):
        # Any resource server may ask about an RPT: it then learns only the permissions on
        # resources it registered for its PAT's owner (INT-U4). Other tokens: only the
        # caller's own (INT-3).
        return token.kind == "rpt" or token.check_client(client)

    def create_introspection_payload(self, token):
        if token is None or not token.is_active():
            return {"active": False}
        if token.kind == "rpt":
            return self.introspect_rpt(token.row, token.caller, token.pat)
        return self.introspect_token(token)

    def introspect_rpt(self, rpt: Rpt, caller: Client, pat: Token | None) -> dict:
        """UMA FedAuthz §5.1.1: ``permissions``, and no ``scope``."""

        def visible(resource) -> bool:
            return resource.client_pk == caller.id and (
                pat is None or resource.owner_id == pat.user_id
            )

        permissions = live_permissions(db.session(), rpt, visible)
        if not permissions:
            return {"active": False}
        return {
            "active": True,
            "permissions": permissions,
            "exp": int(rpt.expires_at.timestamp()),
            "iat": int(rpt.issued_at.timestamp()),
            "sub": rpt.requester.sub,
            "username": rpt.requester.username,
            "client_id": rpt.client.client_id,
            "token_type": "Bearer",
            "iss": current_app.config["ISSUER"],
        }

    def introspect_token(self, token):
        row = token.row
        body = {
            "active": True,
            "client_id": row.client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": row.scope,
            "iat": row.issued_at,
            "exp": row.expires_at if token.kind == "access_token" else row.refresh_token_expires_at,
            "iss": current_app.config["ISSUER"],
        }
        if row.user is not None:
            body["sub"] = row.user.sub
            body["username"] = row.user.username
        return body


class UnsupportedTokenType(OAuth2Error):
    error = "unsupported_token_type"
    status_code = 400


class RevocationEndpoint(_RevocationEndpoint):
    """RFC 7009, plus RPTs and PCTs (``token_type_hint=pct``, UMA Grant §3.7).

    Revoking either value of an OAuth grant ends both its access and refresh token."""

    CLIENT_AUTH_METHODS = [*SECRET_AUTH, PUBLIC_CLIENT_AUTH]
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token", "pct")

    def check_params(self, request, client):
        if not request.form.get("token"):
            raise InvalidRequestError("'token' is required.")
        hint = request.form.get("token_type_hint")
        if hint and hint not in self.SUPPORTED_TOKEN_TYPES:
            # RFC 7009 §2.2.1: a 400 error (Authlib's class would answer 401).
            raise UnsupportedTokenType(
                f"token_type_hint must be one of {self.SUPPORTED_TOKEN_TYPES}."
            )

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        if token.kind in ("rpt", "pct"):
            token.row.revoked_at = token.row.revoked_at or utcnow()
        else:
            now = int(time.time())
            token.row.access_token_revoked_at = token.row.access_token_revoked_at or now
            token.row.refresh_token_revoked_at = token.row.refresh_token_revoked_at or now
        db.session().commit()


class UmaClientMetadataClaims(ClientMetadataClaims):
    """RFC 7591 metadata plus UMA's ``claims_redirect_uris`` (UMA Grant §2, checklist DISC-6)."""

    REGISTERED_CLAIMS = [*ClientMetadataClaims.REGISTERED_CLAIMS, "claims_redirect_uris"]
    STRINGS = (
        "client_name",
        "client_uri",
        "logo_uri",
        "scope",
        "tos_uri",
        "policy_uri",
        "jwks_uri",
        "software_id",
        "software_version",
        "token_endpoint_auth_method",
    )
    STRING_LISTS = (
        "redirect_uris",
        "claims_redirect_uris",
        "grant_types",
        "response_types",
        "contacts",
    )

    def validate(self, now=None, leeway=0):
        # Authlib's own checks assume the JSON types are right; a number where a string
        # belongs would crash them, so the types are checked first (RFC 7591 §2).
        for name in self.STRINGS:
            if name in self and not isinstance(self[name], str):
                raise InvalidClaimError(name)
        for name in self.STRING_LISTS:
            value = self.get(name)
            if name in self and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise InvalidClaimError(name)
        jwks = self.get("jwks")
        if "jwks" in self and not (isinstance(jwks, dict) and isinstance(jwks.get("keys"), list)):
            raise InvalidClaimError("jwks")
        super().validate(now, leeway)
        uris = self.get("claims_redirect_uris")
        if uris is None:
            return
        if not isinstance(uris, list) or not uris:
            raise InvalidClaimError("claims_redirect_uris")
        for uri in uris:
            self._validate_uri("claims_redirect_uris", uri)


class ClientRegistrationEndpoint(_RegistrationEndpoint):
    """RFC 7591 open registration (a demo choice, switchable with AS_OPEN_REGISTRATION)."""

    def __init__(self, server=None):
        super().__init__(server, claims_classes=[UmaClientMetadataClaims])

    def authenticate_token(self, request):
        return current_app.config["OPEN_REGISTRATION"]

    def get_server_metadata(self):
        from .discovery import openid_configuration

        return openid_configuration(current_app.config["ISSUER"])

    def extract_client_metadata(self, request):
        metadata = super().extract_client_metadata(request)
        metadata.setdefault("grant_types", ["authorization_code"])
        metadata.setdefault("response_types", ["code"])
        metadata.setdefault("token_endpoint_auth_method", "client_secret_basic")
        metadata.setdefault("scope", "openid profile email")
        request.client_metadata = metadata
        return metadata

    def generate_client_secret(self, request):
        if request.client_metadata["token_endpoint_auth_method"] == PUBLIC_CLIENT_AUTH:
            return None
        return generate_token(48)

    def generate_client_info(self, request):
        info = super().generate_client_info(request)
        if info["client_secret"] is None:  # a public client gets no secret at all
            del info["client_secret"]
        return info

    def save_client(self, client_info, client_metadata, request):
        client = Client(
            client_id=client_info["client_id"],
            client_id_issued_at=client_info["client_id_issued_at"],
            client_secret_expires_at=client_info["client_secret_expires_at"],
        )
        client.set_secret(client_info.get("client_secret"))
        client.set_client_metadata(client_metadata)
        session = db.session()
        session.add(client)
        session.commit()
        return client


class UserInfoEndpoint(_UserInfoEndpoint):
    """OIDC userinfo by GET or POST with a Bearer access token holding ``openid``."""

    def get_issuer(self):
        return current_app.config["ISSUER"]

    def generate_user_info(self, user, scope):
        return user_info(user, scope)

    def resolve_private_key(self):
        return signing_key_set(db.session())
