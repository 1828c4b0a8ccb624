"""Access changes reach built snapshots (issue 17): a changed access list is written into the payloads of every
snapshot of the tenant, and `snapshots.access_rev` moves with it, so that no answer cached under the old list
(result-cache keys hold it) is served again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("snapshots", sa.Column("access_rev", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("access_rev")
