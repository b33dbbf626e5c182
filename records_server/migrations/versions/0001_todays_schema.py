"""Today's schema, the first revision: the tables as the code made them before Alembic.

On a database made before Alembic it creates only what is missing there (an index added
later, such as ix_permission_tickets_previous), keeping every row.

Revision ID: 0001
Revises: (none: the first revision)
Create Date: 2026-12-02 17:31:20.090581
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app_support.migrations import create_index_if_missing, create_table_if_missing

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_table_if_missing(
        "ehr_flow_links",
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("flow_id", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_digest"),
    )
    create_index_if_missing(
        "ix_ehr_flow_links_recorded_at", "ehr_flow_links", ["recorded_at"], unique=False
    )

    create_table_if_missing(
        "ehr_patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("sub", sa.String(length=255), nullable=True),
        sa.Column("lock_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sub"),
        sa.UniqueConstraint("username"),
    )
    create_table_if_missing(
        "ehr_protocol_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started", sa.Float(), nullable=False),
        sa.Column("finished", sa.Float(), nullable=False),
        sa.Column("recorder", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("peer", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("request_shown", sa.JSON(), nullable=False),
        sa.Column("response_shown", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    create_index_if_missing(
        "ix_ehr_protocol_messages_flow_id", "ehr_protocol_messages", ["flow_id"], unique=False
    )
    create_index_if_missing(
        "ix_ehr_protocol_messages_recorded_at",
        "ehr_protocol_messages",
        ["recorded_at"],
        unique=False,
    )

    create_table_if_missing(
        "ehr_settings",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    create_table_if_missing(
        "ehr_access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("resource", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("client_id", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["ehr_patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    create_index_if_missing(
        "ix_ehr_access_log_patient_at", "ehr_access_log", ["patient_id", "at"], unique=False
    )

    create_table_if_missing(
        "ehr_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("provisioned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("uma_resource_id", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["ehr_patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id"),
        sa.UniqueConstraint("uma_resource_id"),
    )
    create_table_if_missing(
        "ehr_introspection_cache",
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["ehr_patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_digest", "patient_id"),
    )
    create_index_if_missing(
        "ix_ehr_introspection_cache_expires_at",
        "ehr_introspection_cache",
        ["expires_at"],
        unique=False,
    )

    create_table_if_missing(
        "ehr_protection_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scope", sa.String(length=255), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("broken_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["ehr_patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_id"),
    )
    create_table_if_missing(
        "ehr_record_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("uma_resource_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["ehr_patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_id", "name"),
        sa.UniqueConstraint("uma_resource_id"),
    )
    create_table_if_missing(
        "ehr_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_set_id", sa.Integer(), nullable=False),
        sa.Column("fhir_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.JSON(), nullable=False),
        sa.Column("author_sub", sa.String(length=255), nullable=True),
        sa.Column("author_name", sa.String(length=200), nullable=True),
        sa.Column("client_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["record_set_id"], ["ehr_record_sets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fhir_id"),
    )
    create_index_if_missing(
        "ix_ehr_entries_record_set", "ehr_entries", ["record_set_id", "id"], unique=False
    )

    create_table_if_missing(
        "ehr_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_pk", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("systolic", sa.Integer(), nullable=False),
        sa.Column("diastolic", sa.Integer(), nullable=False),
        sa.Column("pulse", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_pk"], ["ehr_devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_pk", "seq", name="uq_ehr_readings_device_seq"),
    )
    create_index_if_missing(
        "ix_ehr_readings_device_measured",
        "ehr_readings",
        ["device_pk", "measured_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("ehr_readings")
    op.drop_table("ehr_entries")
    op.drop_table("ehr_record_sets")
    op.drop_table("ehr_protection_links")
    op.drop_table("ehr_introspection_cache")
    op.drop_table("ehr_devices")
    op.drop_table("ehr_access_log")
    op.drop_table("ehr_settings")
    op.drop_table("ehr_protocol_messages")
    op.drop_table("ehr_patients")
    op.drop_table("ehr_flow_links")
