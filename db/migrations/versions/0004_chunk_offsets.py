"""Chunk offsets (issue 16): each document keeps where its chunks are in its stored text (with their heading
paths and pages) and where its pages start, so snapshots carry citations that point exactly. Documents ingested
before this have neither: the chunker's new fingerprint re-chunks them at the next build, which records both
(pages only for documents ingested from now on: the page breaks of an old PDF were not kept).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("chunk_spans", sa.Text()))
    op.add_column("documents", sa.Column("page_starts", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("page_starts")
        batch.drop_column("chunk_spans")
