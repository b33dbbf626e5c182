"""Tables of the doctor app: the people who sign in, their UMA tokens (never shown to the
browser, SEC-RPT-CONF), requests waiting on an owner or a sign-in, what they have opened."""

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app_support.trace import FlowLinkColumns, ProtocolMessageColumns

from .db import Base, UTCDateTime, utcnow


class Setting(Base):
    __tablename__ = "doctor_settings"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Person(UserMixin, Base):
    """A requesting party signed in with the AS. The ID token is kept to push as a claim
    token (UMA Grant §3.3.1) while it is valid."""

    __tablename__ = "doctor_people"

    id: Mapped[int] = mapped_column(primary_key=True)
    sub: Mapped[str] = mapped_column(String(255), unique=True)
    username: Mapped[str] = mapped_column(String(80), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    id_token: Mapped[str | None] = mapped_column(Text)
    id_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Wallet(Base):
    """One person's RPT and PCT at one AS. The RPT is upgraded as more is opened."""

    __tablename__ = "doctor_wallets"
    __table_args__ = (UniqueConstraint("person_id", "as_uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("doctor_people.id", ondelete="CASCADE"))
    as_uri: Mapped[str] = mapped_column(String(500))
    rpt: Mapped[str | None] = mapped_column(Text)
    rpt_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pct: Mapped[str | None] = mapped_column(Text)


class PendingAction(Base):
    """A request that could not finish at once: waiting for the owner (``request_submitted``,
    polled every ``interval``) or for the person to sign in at the AS (``need_info``; the
    unguessable ``state`` comes back on the claims redirect, SEC-CSRF-C). A write keeps its
    body here, so nothing typed is lost while Alice decides."""

    __tablename__ = "doctor_pending"
    __table_args__ = (Index("ix_doctor_pending_person", "person_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("doctor_people.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "waiting" | "claims"
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|done|denied|failed
    method: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[dict | None] = mapped_column(JSON)
    as_uri: Mapped[str] = mapped_column(String(500))
    ticket: Mapped[str] = mapped_column(Text)
    interval: Mapped[int] = mapped_column(Integer, default=5)
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Visit(Base):
    """A resource this person opened, and how the last attempt went ("Shared with me")."""

    __tablename__ = "doctor_visits"
    __table_args__ = (UniqueConstraint("person_id", "url"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("doctor_people.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(String(300), default="")
    outcome: Mapped[str] = mapped_column(String(32))  # granted | waiting | denied | failed
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Flow(Base):
    """One thing a person did (open a record, write a note) and every UMA message it took,
    across the three apps: what "How did I get this?" tells."""

    __tablename__ = "doctor_flows"
    __table_args__ = (Index("ix_doctor_flows_person", "person_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("doctor_people.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProtocolMessage(ProtocolMessageColumns, Base):
    """A UMA message this app sent or received during a traced flow (the teaching layer)."""

    table_prefix = "doctor"


class FlowLink(FlowLinkColumns, Base):
    """A ticket or waiting request (as a digest) that leads back to its flow."""

    table_prefix = "doctor"
