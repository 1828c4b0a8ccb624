"""Retrieval profiles per tenant (issue 14): the stage parameters a tuning run found on the tenant's labelled
queries, versioned, one of them live; the switches between them; the tuning runs themselves.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Epoch = sa.Double().with_variant(sqlite.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "retrieval_profiles",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("scores", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("tuning_id", sa.Text()),
        sa.Column("created_at", Epoch, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "version"),
    )
    op.create_table(
        "profile_live",
        sa.Column("tenant", sa.Text(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous", sa.Integer()),
        sa.Column("switched_at", Epoch, nullable=False),
    )
    op.create_table(
        "profile_switches",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("at", Epoch, nullable=False),
        sa.Column("from_version", sa.Integer()),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
    )
    op.create_index("profile_switches_by_tenant", "profile_switches", ["tenant", "at"])
    op.create_table(
        "tuning_runs",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("progress", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("result", sa.Text()),
        sa.Column("profile_version", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", Epoch, nullable=False),
        sa.Column("started_at", Epoch),
        sa.Column("finished_at", Epoch),
    )
    op.create_index("tuning_runs_by_tenant", "tuning_runs", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_index("tuning_runs_by_tenant", table_name="tuning_runs")
    op.drop_table("tuning_runs")
    op.drop_index("profile_switches_by_tenant", table_name="profile_switches")
    op.drop_table("profile_switches")
    op.drop_table("profile_live")
    op.drop_table("retrieval_profiles")
