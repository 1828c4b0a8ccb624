"""Webhooks (issue 18): the endpoints a tenant registered, the outbox of events, one delivery per (webhook,
event) and every attempt at it.

Revision ID: 0005
Revises: 0004 (chunk offsets)
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Epoch = sa.Double().with_variant(sqlite.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Epoch, nullable=False),
    )
    op.create_index("webhooks_by_tenant", "webhooks", ["tenant", "created_at"])
    op.create_table(
        "events",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.Text()),
        sa.UniqueConstraint("tenant", "type", "dedupe_key"),
    )
    op.create_index("events_by_tenant", "events", ["tenant", "created_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("webhook_id", sa.Text(), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_id", sa.Text(), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", Epoch),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("delivered_at", Epoch),
        sa.Column("status_code", sa.Integer()),
        sa.Column("latency_ms", Epoch),
        sa.Column("error", sa.Text()),
    )
    op.create_index("deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index("deliveries_by_webhook", "deliveries", ["webhook_id", "created_at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("delivery_id", sa.Text(), sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", Epoch, nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("latency_ms", Epoch, nullable=False),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("delivery_id", "attempt"),
    )


def downgrade() -> None:
    op.drop_table("delivery_attempts")
    op.drop_index("deliveries_by_webhook", table_name="deliveries")
    op.drop_index("deliveries_due", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("events_by_tenant", table_name="events")
    op.drop_table("events")
    op.drop_index("webhooks_by_tenant", table_name="webhooks")
    op.drop_table("webhooks")
