"""Usage reports (issue 36): which parts of a /retrieve answer the answer written from it used, as an agent reports
them through MCP's report_usage or POST /usage (eval/usage.py). One row per answer and reporter (the key and the
principal the answer was for); a second report replaces the first. Nothing existing changes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-15
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Epoch = sa.Double().with_variant(sqlite.REAL(), "sqlite")  # as db/tables.py: REAL in SQLite, DOUBLE PRECISION else
Flag = sa.Boolean().with_variant(sa.Integer(), "sqlite")  # as db/tables.py: 0/1 INTEGER in SQLite, BOOLEAN else


def upgrade() -> None:
    op.create_table(
        "usage_reports",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("cited", sa.Text(), nullable=False),
        sa.Column("helpful", Flag),
        sa.Column("answered_at", Epoch, nullable=False),
        sa.Column("reported_at", Epoch, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "request_id", "reporter"),
    )
    op.create_index("usage_reports_by_tenant", "usage_reports", ["tenant", "reported_at"])


def downgrade() -> None:
    op.drop_index("usage_reports_by_tenant", table_name="usage_reports")
    op.drop_table("usage_reports")
