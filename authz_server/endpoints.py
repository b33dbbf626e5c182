"""Token-side endpoints: introspection (RFC 7662 + UMA FedAuthz §5), revocation (RFC 7009),
dynamic client registration (RFC 7591), userinfo (OIDC Core §5.3)."""

import time
from dataclasses import dataclass

from authlib.common.security import generate_token
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
from sqlalchemy import select

from . import db
from .grants import SECRET_AUTH, user_info
from .keys import signing_key_set
from .models import PAT_BEARER_AUTH, PUBLIC_CLIENT_AUTH, Client, Token, secret_digest

UMA_PROTECTION = "uma_protection"
REALM = "uma-health"


@dataclass
class FoundToken:
    """A token row and which of its two values was presented."""

    row: Token
    kind: str  # "access_token" | "refresh_token"

    def check_client(self, client) -> bool:
        return self.row.client_id == client.client_id

    def is_active(self) -> bool:
        if self.kind == "refresh_token":
            return self.row.is_refresh_token_active()
        return not self.row.is_revoked() and not self.row.is_expired()


def find_token(token_string: str, hint: str | None) -> FoundToken | None:
    """Look a token up by digest: the hinted kind first, then the other (RFC 7662 §2.1)."""
    digest = secret_digest(token_string)
    session = db.session()
    kinds = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        kinds.reverse()
    for kind in kinds:
        column = Token.access_token if kind == "access_token" else Token.refresh_token
        row = session.scalar(select(Token).where(column == digest))
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
    found = find_token(value.strip(), "access_token") if value.strip() else None
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
        return find_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        # A caller learns only about tokens issued to itself (checklist INT-3).
        return token.check_client(client)

    def create_introspection_payload(self, token):
        if token is None or not token.is_active():
            return {"active": False}
        return self.introspect_token(token)

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


class RevocationEndpoint(_RevocationEndpoint):
    """RFC 7009. Revoking either value ends the whole grant: access and refresh token."""

    CLIENT_AUTH_METHODS = [*SECRET_AUTH, PUBLIC_CLIENT_AUTH]

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        now = int(time.time())
        token.row.access_token_revoked_at = token.row.access_token_revoked_at or now
        token.row.refresh_token_revoked_at = token.row.refresh_token_revoked_at or now
        db.session().commit()


class UmaClientMetadataClaims(ClientMetadataClaims):
    """RFC 7591 metadata plus UMA's ``claims_redirect_uris`` (UMA Grant §2, checklist DISC-6)."""

    REGISTERED_CLAIMS = [*ClientMetadataClaims.REGISTERED_CLAIMS, "claims_redirect_uris"]

    def validate(self, now=None, leeway=0):
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
