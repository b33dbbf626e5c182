"""Tables of the EHR: patients, their record sets and entries, the link to the AS, logs."""

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app_support.trace import FlowLinkColumns, ProtocolMessageColumns

from .db import Base, UTCDateTime, utcnow


class Setting(Base):
    """A server-wide value shared by every worker (the session secret)."""

    __tablename__ = "ehr_settings"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Patient(UserMixin, Base):
    """A patient of this EHR; signs in with her account at the AS (matched by username)."""

    __tablename__ = "ehr_patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    # The AS's subject identifier, pinned at the first sign-in: later sign-ins must match it.
    sub: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Bumped to take a write lock on this patient's registrations (see registration.py).
    lock_version: Mapped[int] = mapped_column(Integer, default=0)

    record_sets: Mapped[list["RecordSet"]] = relationship(
        back_populates="patient", order_by="RecordSet.id", lazy="selectin"
    )
    link: Mapped["ProtectionLink | None"] = relationship(back_populates="patient", lazy="joined")


class RecordSet(Base):
    """One UMA resource: a named set of a patient's FHIR entries (history, labs, …)."""

    __tablename__ = "ehr_record_sets"
    __table_args__ = (UniqueConstraint("patient_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("ehr_patients.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    # The AS's ``_id`` once registered (FedAuthz §3.2); None while unprotected.
    uma_resource_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="record_sets")


class Entry(Base):
    """A FHIR R4 resource in a record set, with who added it and through which app."""

    __tablename__ = "ehr_entries"
    __table_args__ = (Index("ix_ehr_entries_record_set", "record_set_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_set_id: Mapped[int] = mapped_column(ForeignKey("ehr_record_sets.id", ondelete="CASCADE"))
    fhir_id: Mapped[str] = mapped_column(String(64), unique=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource: Mapped[dict] = mapped_column(JSON)
    # None for the records the EHR holds from the start; otherwise the RPT's subject.
    author_sub: Mapped[str | None] = mapped_column(String(255))
    author_name: Mapped[str | None] = mapped_column(String(200))
    client_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProtectionLink(Base):
    """A patient's PAT (FedAuthz §1.3): kept with its refresh token so the EHR can keep
    registering and asking for permissions while she is offline. Stored as issued, since the
    EHR must present it; the database is the EHR's own secret store."""

    __tablename__ = "ehr_protection_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("ehr_patients.id", ondelete="CASCADE"), unique=True
    )
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scope: Mapped[str] = mapped_column(String(255), default="")
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the AS refused to refresh the PAT: the patient has to link again.
    broken_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    patient: Mapped[Patient] = relationship(back_populates="link")


class IntrospectionCache(Base):
    """An AS introspection answer for one RPT, as seen with one patient's PAT (INT-U4), kept
    a few seconds (RFC 7662 §4). In the database so every worker shares it."""

    __tablename__ = "ehr_introspection_cache"

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("ehr_patients.id", ondelete="CASCADE"), primary_key=True
    )
    body: Mapped[dict] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AccessLog(Base):
    """Every protected access at the EHR: who, through which client, what, and the outcome."""

    __tablename__ = "ehr_access_log"
    __table_args__ = (Index("ix_ehr_access_log_patient_at", "patient_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    patient_id: Mapped[int] = mapped_column(ForeignKey("ehr_patients.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(String(255))
    client_id: Mapped[str | None] = mapped_column(String(255))
    # granted | ticket (401 + permission ticket) | as_unreachable (403 + Warning) | refused
    outcome: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)


class Device(Base):
    """A monitor provisioned to a patient. Its feed becomes a UMA resource of hers the first
    time it announces itself over MQTT, and stops being one when it is retired."""

    __tablename__ = "ehr_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("ehr_patients.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32), default="blood_pressure")
    model: Mapped[str | None] = mapped_column(String(128))
    firmware: Mapped[str | None] = mapped_column(String(64))
    provisioned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    uma_resource_id: Mapped[str | None] = mapped_column(String(128), unique=True)

    patient: Mapped[Patient] = relationship()


class Reading(Base):
    """One blood-pressure reading; (device, seq) is unique, so a redelivery changes nothing."""

    __tablename__ = "ehr_readings"
    __table_args__ = (
        UniqueConstraint("device_pk", "seq", name="uq_ehr_readings_device_seq"),
        Index("ix_ehr_readings_device_measured", "device_pk", "measured_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("ehr_devices.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    systolic: Mapped[int] = mapped_column(Integer)
    diastolic: Mapped[int] = mapped_column(Integer)
    pulse: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProtocolMessage(ProtocolMessageColumns, Base):
    """A UMA message this app sent or received during a traced flow (the teaching layer)."""

    table_prefix = "ehr"


class FlowLink(FlowLinkColumns, Base):
    """A ticket or waiting request (as a digest) that leads back to its flow."""

    table_prefix = "ehr"
