"""Read helpers over the store, for the CLI, the orchestrator and the leaderboard.

``result_views`` reads the stored results of one release and track as ``ResultView`` (the one
read model of a result: the leaderboard's response models are built from it);
``results_rows`` / ``results_frame`` project them on the long table (one row per entry ×
dataset, metric columns) that ``evaluator.scoring.compute_statistics`` ranks. They only ever
read one release and one track, so results of different releases are never mixed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import update
from sqlmodel import Session, col, select

from evaluator.core.refs import describe_releases, match_release
from evaluator.core.vocabulary import INTERVAL_COLUMNS, RESULT_COLUMNS, with_metrics
from evaluator.store.errors import NotFound
from evaluator.store.models import (
    Job,
    JobAttempt,
    ReleaseRecord,
    Result,
    StoreState,
    Submission,
    Team,
    utcnow,
)

MAX_ID = 2**63 - 1
"""The largest id a row can have (a signed 64-bit integer on every store)."""

if TYPE_CHECKING:
    import pandas as pd

METRIC_COLUMNS: tuple[str, ...] = RESULT_COLUMNS
ROW_COLUMNS: tuple[str, ...] = ("entry", "submission_id", "team", "name", "version",
                                "is_baseline", "dataset", "track", "release_id", *METRIC_COLUMNS)
"""The long table's columns (``results_rows``)."""


class _StoredResult(BaseModel):
    """One stored result (run 0) of an entry on a dataset and track, as every reader sees it:
    the entry, provenance, counts, and (``ResultView``) each metric of the specification with
    its interval columns, floats finite or None."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry: str
    submission_id: int
    team: str
    name: str
    version: int
    is_baseline: bool
    dataset: str
    track: str
    release_id: str
    n_spots: int
    n_genes: int
    n_measured: int
    scorer_version: str
    scored_at: datetime
    image_digest: str
    job_id: int

    if TYPE_CHECKING:  # the metric fields, made from the specification at run time
        def __getattr__(self, name: str) -> Any: ...


if TYPE_CHECKING:
    ResultView = _StoredResult
else:
    ResultView = with_metrics(_StoredResult, name="ResultView")
_VIEW_FIELDS = ("submission_id", "dataset", "track", "release_id", "n_spots", "n_genes",
                "n_measured", "scorer_version", "scored_at", "image_digest", "job_id",
                *METRIC_COLUMNS, *INTERVAL_COLUMNS)
"""What ``result_views`` reads of the results table (a metric's column is named after it)."""


def current_release(session: Session) -> ReleaseRecord | None:
    """The current release, or None before the first one is published."""
    return session.exec(select(ReleaseRecord).where(col(ReleaseRecord.is_current))).first()


def list_release_records(session: Session) -> list[ReleaseRecord]:
    """Every published release, oldest first."""
    return list(session.exec(select(ReleaseRecord).order_by(col(ReleaseRecord.published_at))))


def get_release_record(session: Session, ref: str) -> ReleaseRecord:
    """A published release by id, unique id prefix (≥ 6 characters), label, or ``current``.

    Raises ``NotFound`` listing the published releases.
    """
    records = list_release_records(session)
    matches = ([r for r in records if r.is_current] if ref == "current"
               else match_release(ref, records))
    if len(matches) != 1:
        shown = ", ".join(describe_releases(records))
        raise NotFound("release", ref, f"expected one of the published releases: "
                       f"{shown or 'none (publish one with `spared-bench data publish`)'}")
    return matches[0]


def upsert_release(session: Session, release_id: str, *, label: str | None,
                   created_at: Any, tracks: Mapping[str, Sequence[str]], make_current: bool
                   ) -> ReleaseRecord:
    """Record a release as published (once) and, with ``make_current``, make it the current one.

    Exactly one release is current afterwards; the previous one keeps its results untouched.
    """
    record = session.get(ReleaseRecord, release_id)
    if record is None:
        record = ReleaseRecord(release_id=release_id, label=label, created_at=created_at,
                               tracks={name: list(kept) for name, kept in tracks.items()})
        session.add(record)
        session.flush()
    if make_current:
        session.exec(update(ReleaseRecord).where(col(ReleaseRecord.release_id) != release_id)
                     .values(is_current=False).execution_options(synchronize_session=False))
        record.is_current = True
        session.add(record)
        session.flush()
    return record


def get_team(session: Session, name: str) -> Team:
    """A team by name; ``NotFound`` when absent."""
    team = session.exec(select(Team).where(Team.name == name)).first()
    if team is None:
        raise NotFound("team", name, "create it with `spared-bench team create NAME`")
    return team


def get_submission(session: Session, ref: str | int, *, version: int | None = None
                   ) -> Submission:
    """A submission by id (``12`` or ``#12``) or by ``team/name`` (its newest version, or
    ``version``); ``NotFound`` when absent."""
    text = str(ref).lstrip("#")
    submission: Submission | None = None
    if text.isascii() and text.isdigit():
        # Ids are 64-bit: a longer number names no submission (and no store could take it).
        number = int(text)
        submission = session.get(Submission, number) if number <= MAX_ID else None
    elif "/" in text:
        team_name, _, name = text.partition("/")
        query = (select(Submission).join(Team, col(Team.id) == col(Submission.team_id))
                 .where(Team.name == team_name, Submission.name == name))
        if version is not None:
            query = query.where(Submission.version == version)
        submission = session.exec(query.order_by(col(Submission.version).desc())).first()
    if submission is None:
        which = f" version {version}" if version is not None else ""
        raise NotFound("submission", f"{ref}{which}", "expected an id such as 12 or TEAM/NAME")
    if version is not None and submission.version != version:
        raise NotFound("submission", f"{ref} version {version}",
                       f"expected version {version}, found #{submission.id} is version "
                       f"{submission.version}")
    return submission


def versions_of(session: Session, team_id: int, name: str) -> list[Submission]:
    """Every version of a team's entry, oldest first (withdrawn and hidden ones too)."""
    return list(session.exec(select(Submission).where(Submission.team_id == team_id,
                                                      Submission.name == name)
                             .order_by(col(Submission.version))))


def ranked_versions(session: Session, release_id: str) -> dict[tuple[int, str], int]:
    """Which version of each entry a release shows: (team id, name) -> submission id.

    Among an entry's versions that are neither hidden nor withdrawn, the newest one with a
    ranked result (run 0) on the release; when none has results there yet, the newest one
    (its queued jobs explain why it is not ranked). Every other version is superseded there.
    """
    scored = set(session.exec(select(Result.submission_id).where(
        Result.release_id == release_id, Result.run == 0).distinct()))
    rows = session.exec(select(Submission.id, Submission.team_id, Submission.name,
                               Submission.version)
                        .where(col(Submission.hidden).is_(False),
                               col(Submission.withdrawn_at).is_(None)))
    best: dict[tuple[int, str], tuple[bool, int, int]] = {}
    for submission_id, team_id, name, version in rows:
        rank = (submission_id in scored, int(version), int(submission_id or 0))
        key = (int(team_id), str(name))
        if key not in best or rank > best[key]:
            best[key] = rank
    return {key: rank[2] for key, rank in best.items()}


def entry_label(team: str, name: str) -> str:
    """How an entry is named in results tables and rankings: ``team/name`` (unique)."""
    return f"{team}/{name}"


def result_views(session: Session, release_id: str, track: str, *,
                 submission_ids: Sequence[int] | None = None,
                 include_hidden: bool = False) -> list[ResultView]:
    """The stored results (run 0, the ranked evaluation; re-runs are compared by
    ``reproducibility``) of one release and track, by submission id and dataset.

    Of the version each entry shows on the release (``ranked_versions``); of every version,
    hidden and withdrawn ones too, with ``include_hidden``; of exactly ``submission_ids``
    whatever their state when given. One column-level query (no ORM object per row).
    """
    query = (select(Team.name, Submission.name, Submission.version, Submission.is_baseline,
                    *(getattr(Result, name) for name in _VIEW_FIELDS))
             .join(Submission, col(Submission.id) == col(Result.submission_id))
             .join(Team, col(Team.id) == col(Submission.team_id))
             .where(Result.release_id == release_id, Result.track == track, Result.run == 0)
             .order_by(col(Result.submission_id), col(Result.dataset)))
    if submission_ids is None and not include_hidden:
        submission_ids = list(ranked_versions(session, release_id).values())
    if submission_ids is not None:
        query = query.where(col(Result.submission_id).in_(submission_ids))
    views = []
    for row in session.exec(query):
        values: dict[str, Any] = dict(zip(("team", "name", "version", "is_baseline",
                                           *_VIEW_FIELDS), row, strict=True))
        views.append(ResultView(entry=entry_label(values["team"], values["name"]), **values))
    return views


def results_rows(session: Session, release_id: str, track: str, *,
                 include_hidden: bool = False) -> list[dict[str, Any]]:
    """The long results table of one release and track: ``ROW_COLUMNS`` of each
    ``result_views`` (entry × dataset with every metric)."""
    keep = set(ROW_COLUMNS)
    return [view.model_dump(include=keep)
            for view in result_views(session, release_id, track, include_hidden=include_hidden)]


def results_frame(session: Session, release_id: str, track: str, *,
                  include_hidden: bool = False) -> pd.DataFrame:
    """``results_rows`` as a pandas DataFrame (columns fixed even when empty)."""
    import pandas as pd

    return pd.DataFrame(results_rows(session, release_id, track, include_hidden=include_hidden),
                        columns=list(ROW_COLUMNS))


def jobs_of(session: Session, submission_id: int, release_id: str | None = None) -> list[Job]:
    """A submission's jobs (of one release, or all), by release, dataset and track."""
    query = select(Job).where(Job.submission_id == submission_id)
    if release_id is not None:
        query = query.where(Job.release_id == release_id)
    return list(session.exec(query.order_by(col(Job.release_id), col(Job.dataset),
                                            col(Job.track))))


def status_counts(session: Session, submission_id: int, release_id: str | None = None
                  ) -> dict[str, int]:
    """How many of a submission's jobs are in each status."""
    return dict(Counter(job.status for job in jobs_of(session, submission_id, release_id)))


def attempts_of(session: Session, job_id: int) -> list[JobAttempt]:
    """A job's attempts, first to last."""
    return list(session.exec(select(JobAttempt).where(JobAttempt.job_id == job_id)
                             .order_by(col(JobAttempt.attempt))))


def submissions_submitted_since(session: Session, team_id: int, since: Any) -> int:
    """How many submissions a team made at or after ``since`` (baselines included)."""
    return len(session.exec(select(Submission.id).where(
        Submission.team_id == team_id, col(Submission.created_at) >= since)).all())


def baselines(session: Session) -> list[Submission]:
    """Submissions flagged as baselines, oldest first."""
    return list(session.exec(select(Submission).where(col(Submission.is_baseline))
                             .order_by(col(Submission.id))))


def today_start_utc() -> Any:
    """Midnight UTC of today (the per-team daily limit counts from here)."""
    now = utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class JobRuns:
    """One (dataset, track) job's runs: how many, whether their predictions are identical, and
    the range of MSE and PCC-Gene between them."""

    dataset: str
    track: str
    runs: int
    identical: bool
    mse_min: float
    mse_max: float
    pcc_gene_min: float
    pcc_gene_max: float


@dataclass(frozen=True)
class RunComparison:
    """How an entry's runs on a release compare (run 0, the ranked one, and its re-runs).

    ``compared``: (dataset, track) jobs with a result in at least two runs; ``identical``: of
    those, the ones whose predictions hash the same in every run. ``*_spread``: the largest
    max - min of the metric between runs over the compared jobs (0 when identical).
    """

    submission_id: int
    runs: int
    compared: int
    identical: int
    max_mse_spread: float
    max_pcc_gene_spread: float
    jobs: tuple[JobRuns, ...] = ()

    @property
    def reproducible(self) -> bool:
        """Every compared job gave byte-identical predictions in every run."""
        return self.compared > 0 and self.identical == self.compared


def reproducibility(session: Session, release_id: str) -> dict[int, RunComparison]:
    """Compare each re-run entry's runs on a release, job by job (see ``RunComparison``).

    Entries without a re-run result are absent. Reads only the results table (hashes and
    metrics), never a predictions file.
    """
    rerun = select(Result.submission_id).where(Result.release_id == release_id,
                                               col(Result.run) > 0)
    columns: tuple[Any, ...] = (Result.submission_id, Result.dataset, Result.track, Result.run,
                                Result.mse, Result.pcc_gene, Result.predictions_sha256)
    rows = session.exec(
        select(*columns)
        .where(Result.release_id == release_id, col(Result.submission_id).in_(rerun)))
    jobs: dict[int, dict[tuple[str, str], list[tuple[int, float, float, str | None]]]] = \
        defaultdict(lambda: defaultdict(list))
    for submission_id, dataset, track, run, mse, pcc, digest in rows:
        jobs[int(submission_id)][(dataset, track)].append((int(run), mse, pcc, digest))
    out: dict[int, RunComparison] = {}
    for submission_id, per_job in jobs.items():
        runs: set[int] = set()
        compared: list[JobRuns] = []
        for (dataset, track), results in sorted(per_job.items()):
            if len(results) < 2:
                continue
            runs.update(r[0] for r in results)
            digests = {r[3] for r in results}
            mses, pccs = [r[1] for r in results], [r[2] for r in results]
            compared.append(JobRuns(dataset, track, len(results),
                                    len(digests) == 1 and None not in digests,
                                    min(mses), max(mses), min(pccs), max(pccs)))
        out[submission_id] = RunComparison(
            submission_id, len(runs), len(compared), sum(j.identical for j in compared),
            max((j.mse_max - j.mse_min for j in compared), default=0.0),
            max((j.pcc_gene_max - j.pcc_gene_min for j in compared), default=0.0),
            tuple(compared))
    return out


def bump_view_generation(session: Session) -> None:
    """Count one more change to what the leaderboard shows (``StoreState.view_generation``).

    Every web process keys its cache on the generation, so a hide served by one process is
    seen by all of them at their next request.
    """
    updated = session.exec(update(StoreState).where(col(StoreState.id) == 1)
                           .values(view_generation=col(StoreState.view_generation) + 1)
                           .execution_options(synchronize_session=False))
    if updated.rowcount != 1:
        session.add(StoreState(id=1, view_generation=1))
        session.flush()
