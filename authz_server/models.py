"""Tables of the authorization server: people, clients, tokens, resources, tickets, keys."""

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime

from authlib.integrations.sqla_oauth2 import (
    OAuth2AuthorizationCodeMixin,
    OAuth2ClientMixin,
    OAuth2TokenMixin,
)
from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app_support.trace import FlowLinkColumns, ProtocolMessageColumns

from .db import Base, UTCDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


def secret_digest(value: str) -> str:
    """SHA-256 of a credential: tokens, tickets, codes and client secrets are stored this way."""
    return hashlib.sha256(value.encode()).hexdigest()


user_groups = Table(
    "user_groups",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)


class User(UserMixin, Base):
    """A person who signs in, or a client's service account (the "organization" PAT owner)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The OIDC subject: opaque and never reassigned, unlike a username.
    sub: Mapped[str] = mapped_column(String(64), unique=True, default=lambda: uuid.uuid4().hex)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(255), unique=True)
    email_verified: Mapped[bool] = mapped_column(default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_service_account: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Loaded on access: only the grant's policy check needs them, not every token lookup.
    groups: Mapped[list[Group]] = relationship(secondary=user_groups)

    def set_password(self, password: str, method: str = "scrypt") -> None:
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def get_user_id(self) -> int:
        return self.id

    @property
    def is_active(self) -> bool:
        # Service accounts own resources but never sign in.
        return not self.is_service_account

    @property
    def group_names(self) -> list[str]:
        return sorted(g.name for g in self.groups)


PUBLIC_CLIENT_AUTH = "none"
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# A resource server authenticating to introspection with its PAT (UMA FedAuthz §5).
PAT_BEARER_AUTH = "uma_pat_bearer"


class Client(OAuth2ClientMixin, Base):
    """An OAuth client: the EHR (an RS), the doctor app, a dynamically registered RP."""

    __tablename__ = "clients"
    __table_args__ = (Index("uq_clients_client_id", "client_id", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The user that owns resources registered with a client_credentials PAT.
    service_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    service_account: Mapped[User | None] = relationship(lazy="joined")

    # The mixin stores the secret as given; we keep only its digest.
    def set_secret(self, plaintext: str | None) -> None:
        self.client_secret = secret_digest(plaintext) if plaintext else None

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.client_secret:
            return False
        return hmac.compare_digest(self.client_secret, secret_digest(client_secret))

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == PUBLIC_CLIENT_AUTH

    @property
    def claims_redirect_uris(self) -> list[str]:
        return self.client_metadata.get("claims_redirect_uris", [])

    @property
    def display_name(self) -> str:
        return self.client_name or self.client_id

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # A confidential client may send its secret either way (RFC 6749 §2.3.1);
        # a public client has none to send.
        if method == PAT_BEARER_AUTH:
            return endpoint == "introspection"
        if self.is_public:
            return method == PUBLIC_CLIENT_AUTH
        return method in SECRET_AUTH_METHODS

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (RFC 3986 §6.2.1), no prefix or pattern matching.
        return redirect_uri in self.redirect_uris


class AuthorizationCode(OAuth2AuthorizationCodeMixin, Base):
    """A code of the authorization code flow; ``code`` holds its digest."""

    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user: Mapped[User] = relationship(lazy="joined")


class Token(OAuth2TokenMixin, Base):
    """An access token with its refresh token; both columns hold digests."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user: Mapped[User | None] = relationship(lazy="joined")
    refresh_token_expires_at: Mapped[int] = mapped_column(Integer, default=0)
    client: Mapped[Client] = relationship(
        primaryjoin="foreign(Token.client_id) == Client.client_id", viewonly=True, lazy="joined"
    )

    def get_client(self) -> Client:
        return self.client

    @property
    def expires_at(self) -> int:
        return self.issued_at + self.expires_in

    def is_refresh_token_active(self) -> bool:
        return not self.refresh_token_revoked_at and self.refresh_token_expires_at > time.time()

    def get_user(self) -> User | None:
        return self.user


class Resource(Base):
    """A resource registered by a resource server for one owner (UMA FedAuthz §3)."""

    __tablename__ = "resources"
    __table_args__ = (Index("ix_resources_owner_client", "owner_id", "client_pk"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_pk: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String(500))
    icon_uri: Mapped[str | None] = mapped_column(String(2000))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # What happens to a requester no policy covers: "ask" the owner, or "deny" outright.
    uncovered: Mapped[str] = mapped_column(String(8), default="ask")
    # Internationalised variants such as "name#fr" (RFC 7591 §2.2).
    localized: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Loaded on access: the grant path reads resources by the thousand and needs neither.
    owner: Mapped[User] = relationship()
    client: Mapped[Client] = relationship()


class PermissionTicket(Base):
    """A permission ticket (UMA Grant §3.2): single-use, short-lived, stored as a digest."""

    __tablename__ = "permission_tickets"
    # Deleting a ticket nulls the previous_id pointing at it: without this index, each
    # deletion scans the table (purge_expired went quadratic). Partial, so the permission
    # request's INSERT (previous_id NULL) adds no index entry.
    __table_args__ = (
        Index(
            "ix_permission_tickets_previous",
            "previous_id",
            sqlite_where=text("previous_id IS NOT NULL"),
            postgresql_where=text("previous_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_digest: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_pk: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    # [{"resource_id": ..., "resource_scopes": [...]}, ...] exactly as the RS asked.
    permissions: Mapped[list[dict]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Claims already known for this ticket: the requesting party who signed in at the claims
    # interaction endpoint (or was identified earlier in the same flow), valid only for the
    # client the ticket was handed to.
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    bound_client_pk: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE")
    )
    # True when requester_id was gathered at the claims interaction endpoint just now.
    claims_gathered: Mapped[bool] = mapped_column(default=False)
    # The ticket this one replaced (need_info, request_submitted, claims redirect): TKT-4.
    previous_id: Mapped[int | None] = mapped_column(
        ForeignKey("permission_tickets.id", ondelete="SET NULL")
    )


class SigningKey(Base):
    """A private JWK. The newest one signs; superseded ones stay published for a grace period."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Setting(Base):
    """Small server-wide values that must be the same in every worker (e.g. the session key)."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


policy_resources = Table(
    "policy_resources",
    Base.metadata,
    Column("policy_id", ForeignKey("policies.id", ondelete="CASCADE"), primary_key=True),
    Column("resource_id", ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True),
    # The grant looks policies up by resource: never by scanning an owner's policies.
    Index("ix_policy_resources_resource", "resource_id", "policy_id"),
)


class Policy(Base):
    """An owner's sharing rule: subject, resources, scopes, optional expiry (DESIGN.md)."""

    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # "user" | "group" | "email_domain"
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    subject_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE")
    )
    subject_email_domain: Mapped[str | None] = mapped_column(String(255))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the policy came from approving a pending request.
    from_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_requests.id", ondelete="SET NULL")
    )

    # Loaded on access only: a group policy may cover thousands of resources.
    resources: Mapped[list[Resource]] = relationship(secondary=policy_resources)
    subject_user: Mapped[User | None] = relationship(foreign_keys=[subject_user_id])
    subject_group: Mapped[Group | None] = relationship()


class AccessRequest(Base):
    """A requester's ask that no policy covered, waiting for the owner (request_submitted)."""

    __tablename__ = "access_requests"
    __table_args__ = (
        Index("ix_access_requests_lookup", "requester_id", "resource_id", "status"),
        Index("ix_access_requests_owner", "owner_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    resource_id: Mapped[str] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    client_pk: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # approved | denied
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    resource: Mapped[Resource] = relationship()
    client: Mapped[Client] = relationship()


class Rpt(Base):
    """An issued RPT (a signed JWT): who holds it, for whom, and what it permits."""

    __tablename__ = "rpts"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("permission_tickets.id", ondelete="SET NULL"), index=True
    )
    # [{"resource_id", "resource_scopes"}]; liveness is re-checked against policies on use.
    permissions: Mapped[list[dict]] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    client: Mapped[Client] = relationship(lazy="joined")
    requester: Mapped[User] = relationship(lazy="joined")


class Pct(Base):
    """A persisted claims token: a reference to the requesting party, bound to one client.

    It holds no claims itself (checklist SEC-PCT, SEC-GUESS): the value is random and only its
    digest is stored; the claims are read from the requester's account when it is used.
    """

    __tablename__ = "pcts"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    requester: Mapped[User] = relationship(lazy="joined")


class AuditEvent(Base):
    """One authorization decision about one resource, for the owner's access history."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_owner_at", "owner_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requester: Mapped[str | None] = mapped_column(String(80))
    client: Mapped[str | None] = mapped_column(String(200))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    resource_name: Mapped[str | None] = mapped_column(String(500))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    outcome: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text, default="")


class ProtocolMessage(ProtocolMessageColumns, Base):
    """A UMA message this app sent or received during a traced flow (the teaching layer)."""

    table_prefix = "authz"


class FlowLink(FlowLinkColumns, Base):
    """A ticket or waiting request (as a digest) that leads back to its flow."""

    table_prefix = "authz"
