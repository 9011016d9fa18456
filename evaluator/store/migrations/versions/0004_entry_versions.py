"""Entry versions, withdrawal and links: a version number per (team, name), a withdrawal time,
paper and code addresses on submissions; unique per (team, name, version).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``version`` (existing rows are version 1), ``withdrawn_at``, ``paper_url``,
    ``code_url``; a name may repeat within a team, one row per version."""
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False,
                                      server_default="1"))
        batch_op.add_column(sa.Column("withdrawn_at", sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column(
            "paper_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
        batch_op.add_column(sa.Column(
            "code_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
        batch_op.drop_constraint("uq_submissions_team_name", type_="unique")
        batch_op.create_unique_constraint("uq_submissions_team_name_version",
                                          ["team_id", "name", "version"])


def downgrade() -> None:
    """Keep only each entry's newest version under its name (older versions are renamed
    ``name~vN``, their results kept), then drop the new columns."""
    op.execute(
        "UPDATE submissions SET name = substr(name, 1, 90) || '~v' || CAST(version AS VARCHAR) "
        "WHERE version < (SELECT max(s2.version) FROM submissions s2 "
        "WHERE s2.team_id = submissions.team_id AND s2.name = submissions.name)")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_submissions_team_name_version", type_="unique")
        batch_op.create_unique_constraint("uq_submissions_team_name", ["team_id", "name"])
        for column in ("code_url", "paper_url", "withdrawn_at", "version"):
            batch_op.drop_column(column)
