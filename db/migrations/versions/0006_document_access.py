"""Permission-aware retrieval (issue 17): documents (and staged job documents) carry an access list; API keys gain
a scope and, for user keys, a fixed principal; a query set may name the principal it runs as. Every key made before this migration becomes an admin key of its
tenant (the server default), so nothing an existing key could read is taken away by the upgrade.

Revision ID: 0006
Revises: 0005 (webhooks)
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("access", sa.Text()))
    op.add_column("job_documents", sa.Column("access", sa.Text()))
    op.add_column("api_keys", sa.Column("scope", sa.Text(), nullable=False, server_default="admin"))
    op.add_column("api_keys", sa.Column("principal_user", sa.Text()))
    op.add_column("api_keys", sa.Column("principal_groups", sa.Text()))
    op.add_column("query_sets", sa.Column("principal", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("query_sets") as t:
        t.drop_column("principal")
    with op.batch_alter_table("api_keys") as t:
        t.drop_column("principal_groups")
        t.drop_column("principal_user")
        t.drop_column("scope")
    with op.batch_alter_table("job_documents") as t:
        t.drop_column("access")
    with op.batch_alter_table("documents") as t:
        t.drop_column("access")
