"""The report of a run of jobs: a terminal table, JSON and CSV files (written atomically)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evaluator.contract import CONTRACT_VERSION
from evaluator.core.fsio import atomic_write_bytes
from evaluator.core.text import csv_cell
from evaluator.core.vocabulary import RESULT_COLUMNS
from evaluator.jobs.pipeline import JobResult
from evaluator.jobs.staging import Purpose
from evaluator.scoring import SCORER_VERSION

CSV_COLUMNS: tuple[str, ...] = (
    "dataset", "track", "status", *RESULT_COLUMNS, "n_spots", "n_genes", "model_s", "engine_s",
    "stage_s", "validate_s", "score_s", "total_s", "message",
)


class JobsReport(BaseModel):
    """A run of jobs for one submission on one release: settings and every job's result."""

    model_config = ConfigDict(extra="forbid")

    submission: str
    runner: str
    purpose: Purpose
    release_id: str
    contract_version: int = CONTRACT_VERSION
    scorer_version: str = SCORER_VERSION
    time_limit_s: float
    created_utc: datetime = Field(default_factory=lambda: datetime.now(UTC))
    results: list[JobResult]

    @property
    def n_succeeded(self) -> int:
        """Jobs that ran, wrote a valid output and were scored."""
        return sum(r.succeeded for r in self.results)

    @property
    def passed(self) -> bool:
        """True when every job succeeded."""
        return bool(self.results) and self.n_succeeded == len(self.results)

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per job (CSV_COLUMNS)."""
        rows = []
        for r in self.results:
            row: dict[str, Any] = dict.fromkeys(CSV_COLUMNS, "")
            row.update(dataset=r.dataset, track=r.track, status=r.status, message=r.message)
            if r.score is not None:
                row.update(r.score.metric_values(), n_spots=r.score.n_spots,
                           n_genes=r.score.n_genes)
            t = r.timings
            row.update(model_s=round(t.model_s, 3), engine_s=round(t.engine_s, 3),
                       stage_s=round(t.stage_s, 3), validate_s=round(t.validate_s, 3),
                       score_s=round(t.score_s, 3), total_s=round(t.total_s, 3))
            rows.append(row)
        return rows

    def csv_text(self) -> str:
        """The rows as CSV (header included)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        # A spreadsheet runs a cell starting with = + - @ as a formula: messages quote authors.
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in self.rows())
        return buffer.getvalue()

    def write(self, json_path: Path) -> tuple[Path, Path]:
        """Write the report as JSON at ``json_path`` and CSV beside it (.csv); atomic."""
        json_path = Path(json_path)
        csv_path = json_path.with_suffix(".csv")
        atomic_write_bytes(json_path, (self.model_dump_json(indent=2) + "\n").encode())
        atomic_write_bytes(csv_path, self.csv_text().encode())
        return json_path, csv_path


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def results_table(results: list[JobResult]) -> str:
    """A fixed-width table: dataset, track, status, the main metrics and the model's time."""
    header = ("dataset", "track", "status", "MSE", "MAE", "PCC-Gene", "PCC-Patch", "R2-Gene",
              "model s", "total s")
    body = []
    for r in results:
        m = r.score.metrics if r.score is not None else None
        body.append((
            r.dataset, r.track, "ok" if r.succeeded else r.status,
            _fmt(m.mse if m else None), _fmt(m.mae if m else None),
            _fmt(m.pcc_gene if m else None), _fmt(m.pcc_patch if m else None),
            _fmt(m.r2_gene if m else None), f"{r.timings.model_s:.1f}",
            f"{r.timings.total_s:.1f}",
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip()
             for row in [header, tuple("-" * w for w in widths), *body]]
    return "\n".join(lines)
