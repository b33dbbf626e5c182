"""Today's schema, the first revision: the tables as the code made them before Alembic.

On a database made before Alembic it creates only what is missing there (an index added
later, such as ix_permission_tickets_previous), keeping every row.

Revision ID: 0001
Revises: (none: the first revision)
Create Date: 2026-12-02 17:31:21.026374
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
        "doctor_flow_links",
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("flow_id", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_digest"),
    )
    create_index_if_missing(
        "ix_doctor_flow_links_recorded_at", "doctor_flow_links", ["recorded_at"], unique=False
    )

    create_table_if_missing(
        "doctor_people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sub", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("id_token", sa.Text(), nullable=True),
        sa.Column("id_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sub"),
    )
    create_table_if_missing(
        "doctor_protocol_messages",
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
        "ix_doctor_protocol_messages_flow_id", "doctor_protocol_messages", ["flow_id"], unique=False
    )
    create_index_if_missing(
        "ix_doctor_protocol_messages_recorded_at",
        "doctor_protocol_messages",
        ["recorded_at"],
        unique=False,
    )

    create_table_if_missing(
        "doctor_settings",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    create_table_if_missing(
        "doctor_flows",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["doctor_people.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    create_index_if_missing(
        "ix_doctor_flows_person", "doctor_flows", ["person_id", "started_at"], unique=False
    )

    create_table_if_missing(
        "doctor_pending",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=True),
        sa.Column("as_uri", sa.String(length=500), nullable=False),
        sa.Column("ticket", sa.Text(), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state_digest", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["doctor_people.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("state_digest"),
    )
    create_index_if_missing(
        "ix_doctor_pending_person", "doctor_pending", ["person_id", "created_at"], unique=False
    )

    create_table_if_missing(
        "doctor_visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["doctor_people.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("person_id", "url"),
    )
    create_table_if_missing(
        "doctor_wallets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("as_uri", sa.String(length=500), nullable=False),
        sa.Column("rpt", sa.Text(), nullable=True),
        sa.Column("rpt_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pct", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["doctor_people.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("person_id", "as_uri"),
    )


def downgrade() -> None:
    op.drop_table("doctor_wallets")
    op.drop_table("doctor_visits")
    op.drop_table("doctor_pending")
    op.drop_table("doctor_flows")
    op.drop_table("doctor_settings")
    op.drop_table("doctor_protocol_messages")
    op.drop_table("doctor_people")
    op.drop_table("doctor_flow_links")
