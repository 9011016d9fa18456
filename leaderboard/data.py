"""Read helpers over the store for the web app: column-level queries (no ORM objects per row),
the store's version, model cards. Results are read by the store's own ``result_views`` (one
read model, ``evaluator.store.ResultView``).

Everything here reads through the store's own models and sessions; the one write is hiding an
entry (``set_hidden``), an admin action with no service function in the orchestrator.

Public views show, per release, one version of each entry (``ranked_versions``): the newest
with results there that is neither hidden nor withdrawn. Older versions keep their own pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from evaluator.store import (
    Job,
    NotFound,
    ReleaseRecord,
    Result,
    Submission,
    Team,
    bump_view_generation,
    entry_label,
    get_release_record,
    list_release_records,
    ranked_versions,
)
from leaderboard.errors import NotFoundError

# Keys of model.json's ``parameters`` read as the model's number of trainable parameters
# (paper Fig. 8b), first match wins.
PARAMETER_COUNT_KEYS: tuple[str, ...] = ("trainable_parameters", "n_parameters", "num_parameters",
                                         "parameter_count", "n_params", "num_params")

StoreVersion = tuple[Any, ...]


@dataclass(frozen=True)
class ReleaseInfo:
    """What the web app needs of a published release."""

    release_id: str
    label: str | None
    is_current: bool
    published_at: datetime
    created_at: datetime
    tracks: dict[str, list[str]]

    @property
    def short(self) -> str:
        """Twelve hex characters of the id."""
        return self.release_id[:12]

    @property
    def title(self) -> str:
        """``label (abcdef123456)`` or the short id."""
        return f"{self.label} ({self.short})" if self.label else self.short

    def datasets(self, track: str) -> list[str]:
        """The release's datasets that have ``track``, sorted."""
        return sorted(d for d, tracks in self.tracks.items() if track in tracks)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``schemas.ReleaseOut``)."""
        return {"release_id": self.release_id, "label": self.label,
                "is_current": self.is_current, "published_at": self.published_at,
                "created_at": self.created_at,
                "datasets": sorted(self.tracks), "tracks": sorted({t for ts in self.tracks.values()
                                                                   for t in ts})}


@dataclass(frozen=True)
class EntryMeta:
    """A submission as the leaderboard names and describes it."""

    submission_id: int
    team: str
    name: str
    description: str
    is_baseline: bool
    hidden: bool
    created_at: datetime
    image_digest: str
    image_ref: str
    platform: str
    image_size_bytes: int
    team_id: int
    version: int = 1
    withdrawn: bool = False
    paper_url: str | None = None
    code_url: str | None = None

    @property
    def public(self) -> bool:
        """Neither hidden by an admin nor withdrawn by its team."""
        return not (self.hidden or self.withdrawn)

    @property
    def label(self) -> str:
        """``team/name``: how results tables and rankings name the entry."""
        return entry_label(self.team, self.name)


def _release_info(record: ReleaseRecord) -> ReleaseInfo:
    return ReleaseInfo(release_id=record.release_id, label=record.label,
                       is_current=record.is_current, published_at=record.published_at,
                       created_at=record.created_at,
                       tracks={d: list(t) for d, t in (record.tracks or {}).items()})


# One plain statement (no ORM compilation per request: this runs on every request).
_STORE_VERSION_SQL = text(
    "SELECT (SELECT count(*) FROM results), (SELECT max(id) FROM results), "
    "(SELECT count(*) FROM submissions), "
    "(SELECT view_generation FROM store_state WHERE id = 1), "
    "(SELECT count(*) FROM releases), "
    "(SELECT release_id FROM releases WHERE is_current LIMIT 1)")


def store_version(session: Session) -> StoreVersion:
    """A value that changes whenever what the leaderboard shows may change: results added,
    entries added, hidden or shown (the stored ``view_generation``, shared by every process),
    releases published or made current. One round trip."""
    return tuple(session.connection().execute(_STORE_VERSION_SQL).one())


def releases(session: Session) -> list[ReleaseInfo]:
    """Every published release, newest first."""
    return [_release_info(r) for r in reversed(list_release_records(session))]


def resolve_release(session: Session, ref: str | None) -> ReleaseInfo:
    """The release named by ``ref`` (id, unique prefix, label), or the current one.

    Raises ``NotFoundError`` (404) naming the published releases.
    """
    try:
        return _release_info(get_release_record(session, ref or "current"))
    except NotFound as error:
        raise NotFoundError(str(error)) from error


def entries(session: Session, *, include_hidden: bool = False,
            ids: list[int] | None = None, team_id: int | None = None,
            name: str | None = None) -> dict[int, EntryMeta]:
    """Submissions by id (every version; public ones, neither hidden nor withdrawn, unless
    ``include_hidden``), optionally of one team's entry."""
    columns: tuple[Any, ...] = (
        Submission.id, Team.name, Submission.name, Submission.description,
        Submission.is_baseline, Submission.hidden, Submission.created_at, Submission.image_digest,
        Submission.image_ref, Submission.platform, Submission.image_size_bytes,
        Submission.team_id, Submission.version, Submission.withdrawn_at, Submission.paper_url,
        Submission.code_url)
    statement = (select(*columns)
                 .join(Team, col(Team.id) == col(Submission.team_id)))
    if not include_hidden:
        statement = statement.where(col(Submission.hidden).is_(False),
                                    col(Submission.withdrawn_at).is_(None))
    if ids is not None:
        statement = statement.where(col(Submission.id).in_(ids))
    if team_id is not None:
        statement = statement.where(Submission.team_id == team_id, Submission.name == name)
    out = {}
    for row in session.exec(statement):
        meta = EntryMeta(int(row[0]), row[1], row[2], row[3] or "", bool(row[4]), bool(row[5]),
                         row[6], row[7], row[8], row[9], int(row[10] or 0), int(row[11]),
                         int(row[12] or 1), row[13] is not None, row[14], row[15])
        out[meta.submission_id] = meta
    return out


def get_entry(session: Session, submission_id: int, *, include_hidden: bool = False
              ) -> EntryMeta:
    """One submission; ``NotFoundError`` when absent, hidden or withdrawn (unless
    ``include_hidden``)."""
    found = entries(session, include_hidden=True, ids=[submission_id]).get(submission_id)
    if found is None or (not found.public and not include_hidden):
        raise NotFoundError(f"entry {submission_id}: expected the id of a published entry, "
                            "found none")
    return found


def job_states(session: Session, release_id: str, track: str | None = None,
               submission_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Jobs on a release (and track) of the versions shown there (or of ``submission_ids``):
    id, submission, dataset, track, status, failure kind, message."""
    columns: tuple[Any, ...] = (Job.id, Job.submission_id, Job.dataset, Job.track, Job.status,
                                Job.failure_kind, Job.message)
    statement = (select(*columns)
                 .where(Job.release_id == release_id, Job.run == 0))
    if track is not None:
        statement = statement.where(Job.track == track)
    if submission_ids is None:
        submission_ids = list(ranked_versions(session, release_id).values())
    statement = statement.where(col(Job.submission_id).in_(submission_ids))
    names = ("job_id", "submission_id", "dataset", "track", "status", "failure_kind", "message")
    return [dict(zip(names, row, strict=True)) for row in session.exec(statement)]


def model_cards(session: Session, release_id: str) -> dict[int, dict[str, Any]]:
    """Each submission's model card on a release (``results.score["model_card"]``: name,
    parameters, notes, as the job's ``/output/model.json``), from its first result holding one."""
    first = (select(func.min(Result.id)).where(Result.release_id == release_id)
             .group_by(col(Result.submission_id)))
    statement = select(Result.submission_id, Result.score).where(col(Result.id).in_(first))
    cards: dict[int, dict[str, Any]] = {}
    for submission_id, score in session.exec(statement):
        card = (score or {}).get("model_card") if isinstance(score, dict) else None
        if isinstance(card, dict):
            cards[int(submission_id)] = card
    return cards


def parameter_count(card: dict[str, Any] | None) -> int | None:
    """The number of trainable parameters a model card states (``PARAMETER_COUNT_KEYS``)."""
    if not card:
        return None
    parameters = card.get("parameters")
    if not isinstance(parameters, dict):
        return None
    for key in PARAMETER_COUNT_KEYS:
        value = parameters.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value) and value > 0:
            return int(value)
    return None


def set_hidden(session: Session, submission_id: int, hidden: bool) -> EntryMeta:
    """Hide an entry from every public view (or show it again); its results stay stored."""
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise NotFoundError(f"entry {submission_id}: expected an existing submission id, "
                            "found none")
    if submission.hidden != hidden:
        submission.hidden = hidden
        session.add(submission)
        session.flush()
        bump_view_generation(session)
    return get_entry(session, submission_id, include_hidden=True)
