"""A store-wide view generation: bumped when an entry is hidden or shown, read by every web
process (the cache version was the sum of hidden ids, which a hide and a show can leave equal).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``store_state`` with its one row."""
    table = op.create_table(
        "store_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("view_generation", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "view_generation": 0}])


def downgrade() -> None:
    """Drop ``store_state``."""
    op.drop_table("store_state")
