"""OAuth grants: authorization code (+PKCE S256, +OIDC), refresh token, client credentials."""

import time

from authlib.oauth2.rfc6749 import InvalidRequestError, grants
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import db
from .keys import signing_key_set
from .models import AuthorizationCode, Client, Token, User, secret_digest

SECRET_AUTH = ["client_secret_basic", "client_secret_post"]
ANY_CLIENT_AUTH = [*SECRET_AUTH, "none"]


def user_info(user: User, scope: str) -> UserInfo:
    """Claims about a person, released per scope (OIDC Core §5.4)."""
    info = UserInfo(sub=user.sub)
    scopes = scope_to_list(scope) or []
    if "profile" in scopes:
        info["name"] = user.full_name
        info["preferred_username"] = user.username
    if "email" in scopes and user.email:
        info["email"] = user.email
        info["email_verified"] = user.email_verified
    return info


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (HEART), and required of every public client.

    Authlib lets a public client obtain a code without a challenge and fails it later at the
    token endpoint; refusing at the authorization endpoint tells the developer at once.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            # RFC 7636 §4.3 defaults an absent method to "plain", which we do not accept.
            raise InvalidRequestError("code_challenge_method must be 'S256'.")
        if grant.request.client.is_public and not data.get("code_challenge"):
            raise InvalidRequestError("Public clients must use PKCE (code_challenge, S256).")

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.code_challenge_method


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """RFC 6749 §4.1; codes are stored as digests and are single-use."""

    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_AUTH

    def save_authorization_code(self, code, request):
        data = request.payload.data
        session = db.session()
        session.add(
            AuthorizationCode(
                code=secret_digest(code),
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri or "",
                response_type=request.payload.response_type,
                scope=request.client.get_allowed_scope(request.payload.scope),
                user_id=request.user.id,
                nonce=data.get("nonce"),
                auth_time=int(time.time()),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )
        )
        session.commit()

    def query_authorization_code(self, code, client):
        row = db.session().scalar(
            select(AuthorizationCode).where(
                AuthorizationCode.code == secret_digest(code),
                AuthorizationCode.client_id == client.client_id,
            )
        )
        ttl = current_app.config["AUTHORIZATION_CODE_TTL"]
        if row is not None and row.auth_time + ttl >= time.time():
            return row
        return None

    def delete_authorization_code(self, authorization_code):
        session = db.session()
        session.delete(authorization_code)
        session.commit()

    def authenticate_user(self, authorization_code):
        return db.session().get(User, authorization_code.user_id)


class OpenIDCode(_OpenIDCode):
    """ID tokens for the code flow: RS256, ``kid`` of the current key (OIDC Core §3.1.3.7)."""

    def exists_nonce(self, nonce, request):
        return (
            db.session().scalar(
                select(AuthorizationCode.id).where(
                    AuthorizationCode.client_id == request.payload.client_id,
                    AuthorizationCode.nonce == nonce,
                )
            )
            is not None
        )

    def resolve_client_private_key(self, client):
        return signing_key_set(db.session())

    def get_client_claims(self, client):
        config = current_app.config
        return {
            "iss": config["ISSUER"],
            "aud": [client.get_client_id()],
            "exp": int(time.time()) + config["ID_TOKEN_TTL"],
        }

    def generate_user_info(self, user, scope):
        return user_info(user, scope)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """RFC 6749 §6 with rotation: each refresh token works once (RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ANY_CLIENT_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        digest = secret_digest(refresh_token)
        row = db.session().scalar(select(Token).where(Token.refresh_token == digest))
        if row is not None and row.is_refresh_token_active():
            return row
        return None

    def authenticate_user(self, refresh_token):
        return refresh_token.user

    def revoke_old_credential(self, refresh_token):
        now = int(time.time())
        refresh_token.refresh_token_revoked_at = now
        refresh_token.access_token_revoked_at = now
        db.session().commit()


def service_account_for(client: Client) -> User:
    """The owner of resources registered with this client's own credentials (PAT-5).

    Made on first use. Several workers may make it at once: the unique username lets one
    insert win, and the others read the winner's account back.
    """
    if client.service_account is not None:
        return client.service_account
    session = db.session()
    username = f"service-account-{client.client_id}"
    try:
        account = User(username=username, is_service_account=True)
        session.add(account)
        session.flush()
    except IntegrityError:
        session.rollback()
        account = session.scalar(select(User).where(User.username == username))
    client.service_account_id = account.id
    session.commit()
    return account


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """RFC 6749 §4.4. The token's owner is the client's service account.

    ``openid`` means nothing without a user and is dropped; with no other scope requested the
    token carries the client's registered scopes, so a resource server that asks for a token
    the way Keycloak clients do (``scope=openid``) still gets its ``uma_protection`` PAT.
    """

    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_AUTH

    def create_token_response(self):
        requested = [s for s in scope_to_list(self.request.payload.scope) or [] if s != "openid"]
        if not requested:
            requested = [s for s in scope_to_list(self.client.scope) or [] if s != "openid"]
        self.request.user = service_account_for(self.client)
        token = self.generate_token(
            user=self.request.user, scope=" ".join(requested), include_refresh_token=False
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
