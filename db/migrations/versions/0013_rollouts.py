"""Rollouts (issue 35): a candidate snapshot tried on a share of live traffic (interleaved or canary), step by step,
and promoted or stopped on the feedback its answers got (`rollouts`: its parameters, state, step and decision log;
`running` holds the tenant while it runs, unique, so one runs per tenant). Nothing existing changes.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision: str = "0013"
down_revision: Union[str, Sequence[str], None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Epoch = sa.Double().with_variant(sqlite.REAL(), "sqlite")  # as db/tables.py: REAL in SQLite, DOUBLE PRECISION else


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("running", sa.Text()),
        sa.Column("candidate", sa.Text(), nullable=False),
        sa.Column("live", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("step_base", sa.Integer(), server_default="0", nullable=False),
        sa.Column("min_feedback", sa.Integer(), nullable=False),
        sa.Column("max_regression", Epoch, nullable=False),
        sa.Column("confidence", Epoch, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("started_by", sa.Text(), nullable=False),
        sa.Column("decisions", sa.Text(), server_default="[]", nullable=False),
        sa.Column("started_at", Epoch, nullable=False),
        sa.Column("updated_at", Epoch, nullable=False),
        sa.Column("ended_at", Epoch),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("running"),
    )
    op.create_index("rollouts_by_tenant", "rollouts", ["tenant", "started_at"])


def downgrade() -> None:
    op.drop_index("rollouts_by_tenant", table_name="rollouts")
    op.drop_table("rollouts")
