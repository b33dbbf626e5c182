"""The Authlib server singletons and the one function that wires them to an app."""

import secrets
import time
from functools import cached_property

from authlib.integrations.flask_oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.integrations.flask_oauth2 import ResourceProtector as _ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator as _BearerTokenValidator
from authlib.oauth2.rfc6750 import InsufficientScopeError, InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import current_app
from flask import request as flask_request
from sqlalchemy import bindparam, insert, select
from werkzeug.datastructures import MultiDict

from . import db
from .endpoints import (
    REALM,
    ClientRegistrationEndpoint,
    IntrospectionEndpoint,
    RevocationEndpoint,
    UserInfoEndpoint,
    authenticate_with_pat,
    find_token,
)
from .grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    OpenIDCode,
    RefreshTokenGrant,
    S256CodeChallenge,
)
from .keys import signing_key_set
from .models import PAT_BEARER_AUTH, Client, Token, secret_digest
from .pats import find_pat
from .uma_grant import UmaTicketGrant


def non_ascii_parameter(values: MultiDict) -> str | None:
    """The first parameter whose value is not printable ASCII, if any.

    RFC 6749 Appendix A defines every OAuth parameter as VSCHAR/NQCHAR (%x20-7E); Authlib
    also refuses to build an error description with other characters, so they are caught
    here, before it sees them.
    """
    for name, value in values.items(multi=True):
        if not _printable_ascii(name):
            return "(a parameter name)"
        if not _printable_ascii(value):
            return name
    return None


def _printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _without_empty(values: MultiDict) -> MultiDict:
    return MultiDict([(k, v) for k, v in values.items(multi=True) if v != ""])


class _NonEmptyPayload(FlaskOAuth2Payload):
    """Request parameters with empty values dropped: ``scope=`` counts as no scope at all.

    RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were omitted
    from the request." Clients such as python-keycloak send ``username=&password=``.
    """

    @cached_property  # one payload per request, read a dozen times by Authlib
    def data(self):
        return _without_empty(self._request.values)


class OAuth2Request(FlaskOAuth2Request):
    def __init__(self, request):
        super().__init__(request)
        self.payload = _NonEmptyPayload(request)

    @property
    def form(self):
        return _without_empty(self._request.form)

    @property
    def args(self):
        return _without_empty(self._request.args)


class AuthorizationServer(_AuthorizationServer):
    def create_oauth2_request(self, request):
        return OAuth2Request(flask_request)

    def create_token_response(self, request=None):
        # RFC 6749 §3.2: request parameters MUST NOT be included more than once.
        oauth_request = self.create_oauth2_request(request)
        bad = non_ascii_parameter(flask_request.form)
        if bad:
            error = InvalidRequestError(f"Parameter '{bad}' has characters outside ASCII.")
            return self.handle_error_response(oauth_request, error)
        repeated = [k for k, v in oauth_request.payload.datalist.items() if len(v) > 1]
        if repeated:
            error = InvalidRequestError(f"Parameter '{repeated[0]}' is repeated.")
            return self.handle_error_response(oauth_request, error)
        if not oauth_request.payload.grant_type:
            # Missing is invalid_request (RFC 6749 §5.2), not an unsupported grant type.
            error = InvalidRequestError("'grant_type' is required.")
            return self.handle_error_response(oauth_request, error)
        return super().create_token_response(request)


class InsufficientScope(InsufficientScopeError):
    """Authlib's error plus the Bearer challenge RFC 6750 §3 requires on a 403."""

    def get_headers(self):
        challenge = f'Bearer realm="{REALM}", error="{self.error}"'
        return [*super().get_headers(), ("WWW-Authenticate", challenge)]


class BearerTokenValidator(_BearerTokenValidator):
    def authenticate_token(self, token_string):
        found = find_token(token_string, "access_token")
        return found.row if found is not None and found.kind == "access_token" else None

    def validate_token(self, token, scopes, request):
        try:
            super().validate_token(token, scopes, request)
        except InsufficientScopeError as error:
            raise InsufficientScope(error.description) from None


class PatValidator(BearerTokenValidator):
    """The protection API's PATs: a lean row with the owner's and the RS's ids (pats.py)."""

    def authenticate_token(self, token_string):
        return find_pat(db.session(), token_string)


class ResourceProtector(_ResourceProtector):
    """Bearer token checks for userinfo and the protection API (RFC 6750 §3, checklist PAT-2)."""

    def parse_request_authorization(self, request):
        # RFC 6750 §3: a missing or non-Bearer credential is answered like an invalid token,
        # with 401 and a WWW-Authenticate challenge, not Authlib's 403.
        auth = request.headers.get("Authorization", "")
        token_type, _, token_string = auth.partition(" ")
        if token_type.lower() != "bearer" or not token_string.strip():
            raise InvalidTokenError("A Bearer access token is required (RFC 6750).", realm=REALM)
        return self.get_token_validator("bearer"), token_string.strip()


class TokenGenerator(JWTBearerTokenGenerator):
    """Access tokens are signed JWTs (RFC 9068) with ``kid`` and ``jti``; refresh tokens opaque."""

    def get_jwks(self):
        return signing_key_set(db.session())


def _access_token_ttl(client, grant_type):
    return current_app.config["ACCESS_TOKEN_TTL"]


_TOKENS = Token.__table__


def _refresh_token_value(**_kwargs):
    return "rt." + secrets.token_urlsafe(32)


def save_token(token: dict, request) -> None:
    """Persist digests of both values, never the values themselves.

    A Core INSERT: nothing reads the row back in this request, so no ORM object is built.
    """
    now = int(time.time())
    refresh = token.get("refresh_token")
    user = request.user
    session = db.session()
    session.execute(
        insert(_TOKENS),
        {
            "client_id": request.client.client_id,
            "user_id": user.id if user is not None else None,
            "token_type": token["token_type"],
            "access_token": secret_digest(token["access_token"]),
            "refresh_token": secret_digest(refresh) if refresh else None,
            "scope": token.get("scope", ""),
            "issued_at": now,
            "expires_in": token["expires_in"],
            "refresh_token_expires_at": (
                now + current_app.config["REFRESH_TOKEN_TTL"] if refresh else 0
            ),
        },
    )
    session.commit()


# Built once: every token request authenticates a client with it.
_CLIENT_BY_ID = select(Client).where(Client.client_id == bindparam("client_id"))


def query_client(client_id: str) -> Client | None:
    return db.session().scalar(_CLIENT_BY_ID, {"client_id": client_id})


# Stateless: its validator reads the current app's database.
require_oauth = ResourceProtector()
require_oauth.register_token_validator(BearerTokenValidator(realm=REALM))
require_pat = ResourceProtector()
require_pat.register_token_validator(PatValidator(realm=REALM))


def authorization() -> AuthorizationServer:
    """The current app's authorization server."""
    return current_app.extensions["authz_oauth"]


def init_app(app) -> AuthorizationServer:
    """Build this app's authorization server: grants, endpoints, token generator.

    One server per app rather than a module singleton, because the issuer (and so every
    token's ``iss``) is per app and tests run several apps in one process.
    """
    config = app.config
    server = AuthorizationServer()
    server.init_app(app, query_client=query_client, save_token=save_token)
    server.register_token_generator(
        "default",
        TokenGenerator(
            issuer=config["ISSUER"],
            refresh_token_generator=_refresh_token_value,
            expires_generator=_access_token_ttl,
        ),
    )
    server.register_client_auth_method(PAT_BEARER_AUTH, authenticate_with_pat)
    server.register_grant(
        AuthorizationCodeGrant, [S256CodeChallenge(required=True), OpenIDCode(require_nonce=False)]
    )
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(UmaTicketGrant)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(ClientRegistrationEndpoint)
    server.register_endpoint(UserInfoEndpoint(resource_protector=require_oauth))
    app.extensions["authz_oauth"] = server
    return server
