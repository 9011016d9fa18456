"""Uncertainty and re-runs: block-bootstrap intervals, per-block statistics, predictions hash on
results; a run number on jobs and results (0 = the ranked evaluation, 1.. = re-runs).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the interval, block-statistics, hash and run columns; unique per entry and run."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint("uq_jobs_entry", type_="unique")
        batch_op.create_unique_constraint(
            "uq_jobs_entry_run", ["submission_id", "release_id", "dataset", "track", "run"])
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("mse_low", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("mse_high", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("pcc_gene_low", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("pcc_gene_high", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("block_stats", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column(
            "predictions_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.drop_constraint("uq_results_entry", type_="unique")
        batch_op.create_unique_constraint(
            "uq_results_entry_run", ["submission_id", "release_id", "dataset", "track", "run"])


def downgrade() -> None:
    """Drop re-runs (run > 0) and the new columns; unique per entry again."""
    op.execute("DELETE FROM results WHERE run > 0")
    op.execute("DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE run > 0)")
    op.execute("DELETE FROM jobs WHERE run > 0")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_constraint("uq_results_entry_run", type_="unique")
        batch_op.create_unique_constraint(
            "uq_results_entry", ["submission_id", "release_id", "dataset", "track"])
        for column in ("predictions_sha256", "block_stats", "pcc_gene_high", "pcc_gene_low",
                       "mse_high", "mse_low", "run"):
            batch_op.drop_column(column)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_jobs_entry_run", type_="unique")
        batch_op.create_unique_constraint(
            "uq_jobs_entry", ["submission_id", "release_id", "dataset", "track"])
        batch_op.drop_column("run")
