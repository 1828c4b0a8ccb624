"""Languages and near-duplicate twins (issue 19): each document keeps what its file said about itself and the
language its BM25 terms are analysed in (`extracted_metadata`, JSON), and a near-duplicate under a new id is
indexed like any document (status `indexed`, `duplicate_of` naming its twin) instead of recorded and left out.
Documents left out before are indexed from the next build on: their stored text is chunked then.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("extracted_metadata", sa.Text()))
    # chunk_spans null: the next build chunks their stored text (SnapshotBuilder._rechunk).
    op.execute("UPDATE documents SET status = 'indexed', chunk_spans = NULL "
               "WHERE status = 'near_duplicate' AND text IS NOT NULL")


def downgrade() -> None:
    # Twins indexed since stay indexed: leaving them out again would make them unsearchable.
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("extracted_metadata")
