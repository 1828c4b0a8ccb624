"""Feedback (issue 35): every /retrieve answer kept in the catalog for the feedback window (`answers`: whom it was
for, its hits in rank order with each one's arm, the query when SNAPDEX_FEEDBACK_KEEP_QUERIES), and the signals
reported on it (`feedback`: one row per answer, reporter, target and signal, so the same signal twice counts once).
Usage reports (0010) record their citations there too. Nothing existing changes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Epoch = sa.Double().with_variant(sqlite.REAL(), "sqlite")  # as db/tables.py: REAL in SQLite, DOUBLE PRECISION else


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("shown", sa.Text(), nullable=False),
        sa.Column("rollout", sa.Text()),
        sa.Column("query", sa.Text()),
        sa.Column("answered_at", Epoch, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "request_id", "reporter"),
    )
    op.create_index("answers_by_time", "answers", ["answered_at"])
    op.create_table(
        "feedback",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("signal", sa.Text(), nullable=False),
        sa.Column("via", sa.Text(), nullable=False),
        sa.Column("chunk_id", sa.Text()),
        sa.Column("doc_id", sa.Text()),
        sa.Column("position", sa.Integer()),
        sa.Column("arm", sa.Text()),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("reported_at", Epoch, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "request_id", "reporter", "target", "signal"),
    )
    op.create_index("feedback_by_doc", "feedback", ["tenant", "doc_id"])
    op.create_index("feedback_by_time", "feedback", ["tenant", "reported_at"])


def downgrade() -> None:
    op.drop_index("feedback_by_time", table_name="feedback")
    op.drop_index("feedback_by_doc", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("answers_by_time", table_name="answers")
    op.drop_table("answers")
