"""The leaderboard's views, computed from the store and cached: rankings and statistics per
(release, track, filter), entries, datasets, significance and the long results table.

Every view is keyed by the store's version (``data.store_version``), so a new result, a hidden
entry or a new current release gives new keys; old values age out of the LRU cache. The long
results rows of a (release, track) are cached on their own, so a new filter only recomputes the
statistics on the subset (``evaluator.scoring.compute_statistics``), not the database read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlmodel import Session

from evaluator.core.vocabulary import TRACKS, Track, finite
from evaluator.datasets import DatasetInfo
from evaluator.scoring import StatisticsReport, compute_statistics
from evaluator.store import (
    ResultView,
    RunComparison,
    ranked_versions,
    reproducibility,
    result_views,
)
from leaderboard import data
from leaderboard.cache import ViewCache
from leaderboard.data import EntryMeta, ReleaseInfo, StoreVersion
from leaderboard.errors import NotFoundError
from leaderboard.filters import DatasetFilter, registry_by_name
from leaderboard.schemas import (
    BootstrapOut,
    DatasetFactsOut,
    DatasetOut,
    DatasetScoreOut,
    DatasetsOut,
    DatasetSummaryOut,
    DatasetTrackSummaryOut,
    EntryDatasetOut,
    EntryOut,
    EntryVersionOut,
    FilterOut,
    FriedmanOut,
    IncompleteEntryOut,
    JobRunsOut,
    KruskalOut,
    LeaderboardOut,
    ModelCardOut,
    PairTestOut,
    PValueMatrixOut,
    RankedEntryOut,
    ReleaseOut,
    ResultRowOut,
    ResultsOut,
    SignificanceOut,
    TrackStandingOut,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
_WIN_TOLERANCE = 1e-12
# The negative control every release carries (``submissions/baselines/mean``): skill's reference.
MEAN_BASELINE_NAME = "mean"


def release_out(release: ReleaseInfo) -> ReleaseOut:
    """The API form of a release."""
    return ReleaseOut(**release.as_dict())


def facts_out(info: DatasetInfo) -> DatasetFactsOut:
    """The API form of a dataset's registry facts."""
    return DatasetFactsOut(
        name=info.name, abbreviation=info.abbreviation, organism=info.organism,
        tissue=info.tissue, generalization=info.generalization, genes=info.genes,
        slides=info.slides, patients=info.patients, spots=info.spots,
        missing_before_pct=info.missing_before_pct, missing_after_pct=info.missing_after_pct,
        hidden_split=info.hidden_split)


def _matrix(values: list[list[float]]) -> list[list[float | None]]:
    return [[finite(v) for v in row] for row in values]


class Board:
    """Computes and caches the views of one app (one process)."""

    def __init__(self, cache: ViewCache) -> None:
        self.cache = cache

    def _cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        return self.cache.get_or_compute(key, compute)

    # -- cached reads ---------------------------------------------------------------------------

    def entries(self, session: Session, version: StoreVersion) -> dict[int, EntryMeta]:
        """Visible entries by submission id."""
        return self._cached(("entries", version), lambda: data.entries(session))

    def shown(self, session: Session, version: StoreVersion,
              release: ReleaseInfo) -> dict[tuple[int, str], int]:
        """(team id, name) -> the submission id each entry shows on a release."""
        return self._cached(("shown", version, release.release_id),
                            lambda: ranked_versions(session, release.release_id))

    def rows(self, session: Session, version: StoreVersion, release: ReleaseInfo,
             track: str) -> list[ResultView]:
        """The stored results of a release and track (the versions shown there)."""
        return self._cached(("rows", version, release.release_id, track),
                            lambda: result_views(session, release.release_id, track,
                                                 submission_ids=list(self.shown(
                                                     session, version, release).values())))

    def jobs(self, session: Session, version: StoreVersion, release: ReleaseInfo,
             track: str) -> list[dict[str, Any]]:
        """Job states of a release and track (they explain incomplete entries).

        Cached with the store version: a job moving from queued to running does not change the
        version, so a reason shown may lag until the next result arrives.
        """
        return self._cached(("jobs", version, release.release_id, track),
                            lambda: data.job_states(session, release.release_id, track, list(
                                self.shown(session, version, release).values())))

    def runs(self, session: Session, version: StoreVersion,
             release: ReleaseInfo) -> dict[int, RunComparison]:
        """How re-run entries' runs compare on a release, by submission id."""
        return self._cached(("runs", version, release.release_id),
                            lambda: reproducibility(session, release.release_id))

    def cards(self, session: Session, version: StoreVersion,
              release: ReleaseInfo) -> dict[int, dict[str, Any]]:
        """Model cards per submission on a release."""
        return self._cached(("cards", version, release.release_id),
                            lambda: data.model_cards(session, release.release_id))

    # -- leaderboard ----------------------------------------------------------------------------

    def statistics(self, session: Session, version: StoreVersion, release: ReleaseInfo,
                   track: Track, filt: DatasetFilter) -> tuple[StatisticsReport | None, list[str]]:
        """The statistics report of a (release, track, filter) and its datasets (None when no
        dataset of the release matches the filter)."""
        def compute() -> tuple[StatisticsReport | None, list[str]]:
            datasets = filt.select(release.datasets(track))
            if not datasets:
                return None, []
            meta = self.entries(session, version)
            keep = set(datasets)
            table = [{"entry": r.entry, "dataset": r.dataset, "mse": r.mse,
                      "pcc_gene": r.pcc_gene}
                     for r in self.rows(session, version, release, track)
                     if r.dataset in keep and r.submission_id in meta]
            report = compute_statistics(table, datasets=datasets, track=track,
                                        release_id=release.release_id,
                                        source=f"results of {release.short}/{track}",
                                        reference_entry=mean_baseline(meta))
            return report, datasets

        return self._cached(("stats", version, release.release_id, track, filt.key), compute)

    def leaderboard(self, session: Session, version: StoreVersion, release: ReleaseInfo,
                    track: Track, filt: DatasetFilter) -> LeaderboardOut:
        """The ranked leaderboard (``schemas.LeaderboardOut``)."""
        return self._cached(("leaderboard", version, release.release_id, track, filt.key),
                            lambda: self._leaderboard(session, version, release, track, filt))

    def _leaderboard(self, session: Session, version: StoreVersion, release: ReleaseInfo,
                     track: Track, filt: DatasetFilter) -> LeaderboardOut:
        report, datasets = self.statistics(session, version, release, track, filt)
        meta = self.entries(session, version)
        # Labels (team/name) are unique among the versions shown on one release.
        shown = set(self.shown(session, version, release).values())
        by_label = {m.label: m for m in meta.values() if m.submission_id in shown}
        cards = self.cards(session, version, release)
        runs = self.runs(session, version, release)
        ranked: list[RankedEntryOut] = []
        incomplete: list[IncompleteEntryOut] = []
        winners: dict[str, list[str]] = {d: [] for d in datasets}
        normalized: dict[str, dict[str, float | None]] = {}
        jobs = self.jobs(session, version, release, track)
        keep = set(datasets)
        jobs_by_sid: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for job in jobs:
            if job["dataset"] in keep:
                jobs_by_sid[job["submission_id"]].append(job)
        seen: set[int] = set()
        if report is not None:
            for stats in report.entries:
                entry = by_label[stats.entry]
                seen.add(entry.submission_id)
                if stats.complete:
                    ranked.append(RankedEntryOut(
                        rank=stats.rank or 0, group=stats.group, entry=entry.label,
                        submission_id=entry.submission_id, team=entry.team, name=entry.name,
                        is_baseline=entry.is_baseline,
                        mean_normalized_mse=finite(stats.mean_normalized_mse),
                        std_normalized_mse=finite(stats.std_normalized_mse),
                        mean_mse=finite(stats.mean_mse), mean_pcc_gene=finite(stats.mean_pcc_gene),
                        datasets_won=stats.datasets_won or 0,
                        parameter_count=data.parameter_count(cards.get(entry.submission_id)),
                        submitted_at=entry.created_at,
                        mean_normalized_mse_low=finite(stats.mean_normalized_mse_low),
                        mean_normalized_mse_high=finite(stats.mean_normalized_mse_high),
                        rank_low=stats.rank_low, rank_high=stats.rank_high,
                        skill=finite(stats.skill), skill_low=finite(stats.skill_low),
                        skill_high=finite(stats.skill_high), version=entry.version,
                        **_run_columns(runs.get(entry.submission_id))))
                else:
                    reason = _with_job_notes(stats.incomplete_reason or "incomplete",
                                             jobs_by_sid.get(entry.submission_id, []))
                    incomplete.append(IncompleteEntryOut(
                        entry=entry.label, submission_id=entry.submission_id, team=entry.team,
                        name=entry.name, is_baseline=entry.is_baseline,
                        n_datasets=stats.n_datasets, reason=reason,
                        submitted_at=entry.created_at, version=entry.version))
            for label, per_dataset in report.normalized_mse.items():
                normalized[label] = {d: finite(v) for d, v in per_dataset.items()}
                for dataset, value in per_dataset.items():
                    if value <= 1.0 + _WIN_TOLERANCE:
                        winners[dataset].append(label)
        # Entries with jobs on this track but no result yet have no row in the statistics.
        for submission_id, entry_jobs in sorted(jobs_by_sid.items()):
            if submission_id in seen or submission_id not in meta:
                continue
            entry = meta[submission_id]
            reason = _with_job_notes(f"no result yet on any of the {len(datasets)} datasets",
                                     entry_jobs)
            incomplete.append(IncompleteEntryOut(
                entry=entry.label, submission_id=submission_id, team=entry.team, name=entry.name,
                is_baseline=entry.is_baseline, n_datasets=0, reason=reason,
                submitted_at=entry.created_at, version=entry.version))
        kruskal = None
        if report is not None and report.kruskal is not None:
            kruskal = KruskalOut(statistic=finite(report.kruskal.statistic),
                                 p_value=finite(report.kruskal.p_value),
                                 significant=report.kruskal.significant)
        return LeaderboardOut(
            release=release_out(release), track=track, filter=FilterOut(**filt.model_dump()),
            datasets=datasets, alpha=report.alpha if report else 0.05, entries=ranked,
            incomplete=incomplete,
            test_status=report.test_status if report else "not_enough",
            test_reason=(report.test_reason if report else
                         f"no dataset of release {release.short} matches {filt.describe()}"),
            kruskal=kruskal, winners=winners, normalized_mse=normalized,
            bootstrap=(BootstrapOut(**report.bootstrap.model_dump())
                       if report is not None and report.bootstrap is not None else None),
            skill_reference=report.skill_reference if report else None,
            skill_reason=report.skill_reason if report else None)

    def significance(self, session: Session, version: StoreVersion, release: ReleaseInfo,
                     track: Track, filt: DatasetFilter) -> SignificanceOut:
        """The tests of a leaderboard: Kruskal–Wallis, Dunn matrix, groups, Friedman/Nemenyi."""
        def compute() -> SignificanceOut:
            report, datasets = self.statistics(session, version, release, track, filt)
            kruskal = dunn = friedman = None
            wilcoxon: list[PairTestOut] | None = None
            wilcoxon_holm: PValueMatrixOut | None = None
            groups: dict[str, int] = {}
            if report is not None:
                if report.kruskal is not None:
                    kruskal = KruskalOut(statistic=finite(report.kruskal.statistic),
                                         p_value=finite(report.kruskal.p_value),
                                         significant=report.kruskal.significant)
                if report.dunn is not None:
                    dunn = PValueMatrixOut(method=report.dunn.method, labels=report.dunn.labels,
                                           p_values=_matrix(report.dunn.p_values))
                if report.friedman is not None:
                    f = report.friedman
                    friedman = FriedmanOut(
                        statistic=finite(f.statistic), p_value=finite(f.p_value),
                        significant=f.significant, n_datasets=f.n_datasets,
                        average_ranks={k: finite(v) for k, v in f.average_ranks.items()},
                        q_alpha=finite(f.q_alpha),
                        critical_difference=finite(f.critical_difference),
                        nemenyi=PValueMatrixOut(method=f.nemenyi.method, labels=f.nemenyi.labels,
                                                p_values=_matrix(f.nemenyi.p_values)))
                groups = {e.entry: e.group for e in report.entries if e.group is not None}
                if report.wilcoxon is not None:
                    wilcoxon = [PairTestOut(
                        a=p.a, b=p.b, n=p.n, statistic=finite(p.statistic),
                        p_value=finite(p.p_value), p_holm=finite(p.p_holm),
                        significant=p.significant, method=p.method,
                        median_difference=finite(p.median_difference),
                        rank_biserial=finite(p.rank_biserial)) for p in report.wilcoxon.pairs()]
                    wilcoxon_holm = _pair_matrix([e.entry for e in report.ranked()], wilcoxon)
            return SignificanceOut(
                release=release_out(release), track=track, filter=FilterOut(**filt.model_dump()),
                datasets=datasets, alpha=report.alpha if report else 0.05,
                test_status=report.test_status if report else "not_enough",
                test_reason=(report.test_reason if report else
                             f"no dataset of release {release.short} matches {filt.describe()}"),
                kruskal=kruskal, dunn=dunn, groups=groups, friedman=friedman,
                friedman_reason=report.friedman_reason if report else None, wilcoxon=wilcoxon,
                wilcoxon_holm=wilcoxon_holm)

        return self._cached(("significance", version, release.release_id, track, filt.key),
                            compute)

    def pcc_by_dataset(self, session: Session, version: StoreVersion, release: ReleaseInfo,
                       filt: DatasetFilter) -> dict[str, dict[str, list[tuple[str, float]]]]:
        """dataset -> track -> [(entry, PCC-Gene)] of visible entries (paper Fig. 6)."""
        def compute() -> dict[str, dict[str, list[tuple[str, float]]]]:
            meta = self.entries(session, version)
            out: dict[str, dict[str, list[tuple[str, float]]]] = {}
            for track in TRACKS:
                keep = set(filt.select(release.datasets(track)))
                for row in self.rows(session, version, release, track):
                    if row.dataset in keep and row.pcc_gene is not None \
                            and row.submission_id in meta:
                        out.setdefault(row.dataset, {}).setdefault(track, []).append(
                            (row.entry, row.pcc_gene))
            return out

        return self._cached(("pcc", version, release.release_id, filt.key), compute)

    # -- entries --------------------------------------------------------------------------------

    def entry(self, session: Session, version: StoreVersion, release: ReleaseInfo,
              submission_id: int, *, private: bool = False) -> EntryOut:
        """An entry's page (``schemas.EntryOut``); ``NotFoundError`` for unknown ones and,
        unless ``private`` (its team or an admin asks; not cached), hidden or withdrawn ones.

        Any version has a page: its own results on the release, its versions, and which newer
        version supersedes it there."""
        if private:
            return self._entry(session, version, release, submission_id, private=True)
        return self._cached(("entry", version, release.release_id, submission_id),
                            lambda: self._entry(session, version, release, submission_id))

    def _entry(self, session: Session, version: StoreVersion, release: ReleaseInfo,
               submission_id: int, *, private: bool = False) -> EntryOut:
        entry = (data.entries(session, include_hidden=True, ids=[submission_id])
                 if private else self.entries(session, version)).get(submission_id)
        if entry is None:
            raise NotFoundError(f"entry {submission_id}: expected the id of a published entry, "
                                "found none")
        shown_id = self.shown(session, version, release).get((entry.team_id, entry.name))
        siblings = data.entries(session, include_hidden=True, team_id=entry.team_id,
                                name=entry.name)
        shown_meta = siblings.get(shown_id) if shown_id is not None else None
        is_shown = shown_id == submission_id
        results: list[EntryDatasetOut] = []
        standings: list[TrackStandingOut] = []
        pcc: dict[str, dict[str, float | None]] = defaultdict(dict)
        tracks = [t for t in TRACKS if release.datasets(t)]
        for track in tracks:
            rows = self.rows(session, version, release, track)
            by_dataset: dict[str, list[float]] = defaultdict(list)
            for row in rows:
                if row.mse is not None:
                    by_dataset[row.dataset].append(row.mse)
            # A version not shown is placed among the shown ones (as if it were ranked).
            own = rows if is_shown else result_views(session, release.release_id, track,
                                                     submission_ids=[submission_id])
            for row in own:
                if row.submission_id != submission_id:
                    continue
                values = by_dataset.get(row.dataset, [])
                mse = row.mse
                best = min(values) if values else None
                results.append(_out(
                    EntryDatasetOut, row,
                    normalized_mse=(mse / best if mse is not None and best else None),
                    position=1 + sum(v < mse for v in values) if mse is not None else len(values),
                    of=len(values)))
                pcc[row.dataset][track] = row.pcc_gene
            board = self.leaderboard(session, version, release, track, DatasetFilter())
            ranked = next((e for e in board.entries if e.submission_id == submission_id), None)
            missing = next((e for e in board.incomplete if e.submission_id == submission_id),
                           None)
            not_shown = _not_shown_reason(entry, shown_meta)
            standings.append(TrackStandingOut(
                track=track, complete=ranked is not None, rank=ranked.rank if ranked else None,
                of=len(board.entries), group=ranked.group if ranked else None,
                mean_normalized_mse=ranked.mean_normalized_mse if ranked else None,
                mean_pcc_gene=ranked.mean_pcc_gene if ranked else None,
                incomplete_reason=(missing.reason if missing else None if ranked else
                                   not_shown or "no job on this track")))
        effect = {}
        for dataset in sorted(pcc):
            raw, spackle = pcc[dataset].get("raw"), pcc[dataset].get("spackle")
            effect[dataset] = {"raw": raw, "spackle": spackle,
                               "delta": spackle - raw if raw is not None and spackle is not None
                               else None}
        card = self.cards(session, version, release).get(submission_id)
        card_out = None
        if card:
            parameters = card.get("parameters")
            card_out = ModelCardOut(name=str(card.get("name")) if card.get("name") else None,
                                    parameters=parameters if isinstance(parameters, dict) else {},
                                    notes=str(card.get("notes")) if card.get("notes") else None)
        return EntryOut(
            submission_id=submission_id, entry=entry.label, team=entry.team, name=entry.name,
            description=entry.description, is_baseline=entry.is_baseline,
            submitted_at=entry.created_at, image_digest=entry.image_digest,
            image_ref=entry.image_ref, platform=entry.platform,
            image_size_bytes=entry.image_size_bytes, release=release_out(release),
            parameter_count=data.parameter_count(card), model_card=card_out,
            standings=standings, results=results, spackle_effect=effect,
            reruns=[JobRunsOut(dataset=j.dataset, track=j.track, runs=j.runs,
                               identical=j.identical, mse_min=finite(j.mse_min),
                               mse_max=finite(j.mse_max), pcc_gene_min=finite(j.pcc_gene_min),
                               pcc_gene_max=finite(j.pcc_gene_max))
                    for j in getattr(self.runs(session, version, release).get(submission_id),
                                     "jobs", ())],
            version=entry.version,
            versions=[EntryVersionOut(submission_id=m.submission_id, version=m.version,
                                      submitted_at=m.created_at,
                                      url=f"/entries/{m.submission_id}",
                                      state=_version_state(m, shown_meta))
                      for m in sorted(siblings.values(), key=lambda m: m.version)
                      if private or m.public],
            superseded_by=(shown_meta.submission_id if shown_meta is not None
                           and shown_meta.version > entry.version else None),
            superseded_by_version=(shown_meta.version if shown_meta is not None
                                   and shown_meta.version > entry.version else None),
            withdrawn=entry.withdrawn, hidden=entry.hidden, paper_url=entry.paper_url,
            code_url=entry.code_url)

    # -- datasets -------------------------------------------------------------------------------

    def _track_summaries(self, session: Session, version: StoreVersion, release: ReleaseInfo,
                         dataset: str) -> tuple[list[DatasetTrackSummaryOut],
                                                list[DatasetScoreOut]]:
        meta = self.entries(session, version)
        summaries: list[DatasetTrackSummaryOut] = []
        scores: list[DatasetScoreOut] = []
        for track in TRACKS:
            if dataset not in release.datasets(track):
                continue
            rows = [r for r in self.rows(session, version, release, track)
                    if r.dataset == dataset and r.submission_id in meta and r.mse is not None]
            rows.sort(key=lambda r: (r.mse, r.submission_id))
            with_pcc = [r for r in rows if r.pcc_gene is not None]
            best_pcc = max(with_pcc, key=lambda r: r.pcc_gene) if with_pcc else None
            best_mse = rows[0].mse if rows else None
            summaries.append(DatasetTrackSummaryOut(
                track=track, n_entries=len(rows), best_entry=rows[0].entry if rows else None,
                best_mse=best_mse, best_pcc_entry=best_pcc.entry if best_pcc else None,
                best_pcc_gene=best_pcc.pcc_gene if best_pcc else None))
            scores += [_out(DatasetScoreOut, row,
                            position=1 + sum(r.mse < row.mse for r in rows),
                            normalized_mse=finite(row.mse / best_mse) if best_mse else None)
                       for row in rows]
        return summaries, scores

    def datasets(self, session: Session, version: StoreVersion,
                 release: ReleaseInfo) -> DatasetsOut:
        """Every registry dataset with, where the release has it, its best entry and PCC."""
        def compute() -> DatasetsOut:
            out = []
            for name, info in registry_by_name().items():
                in_release = name in release.tracks
                summaries = (self._track_summaries(session, version, release, name)[0]
                             if in_release else [])
                out.append(DatasetSummaryOut(facts=facts_out(info), in_release=in_release,
                                             tracks=summaries))
            out.sort(key=lambda d: (not d.in_release, d.facts.name))
            return DatasetsOut(release=release_out(release), datasets=out)

        return self._cached(("datasets", version, release.release_id), compute)

    def dataset(self, session: Session, version: StoreVersion, release: ReleaseInfo,
                name: str) -> DatasetOut:
        """A dataset's page; ``NotFoundError`` for a name not in the registry."""
        facts = registry_by_name()
        info = facts.get(name) or next((i for i in facts.values()
                                        if i.abbreviation.lower() == name.lower()), None)
        if info is None:
            raise NotFoundError(f"dataset {name!r}: expected one of the 26 SpaRED datasets "
                                "(name or abbreviation), found none")

        def compute() -> DatasetOut:
            summaries, scores = self._track_summaries(session, version, release, info.name)
            return DatasetOut(release=release_out(release), facts=facts_out(info),
                              in_release=info.name in release.tracks, tracks=summaries,
                              scores=scores)

        return self._cached(("dataset", version, release.release_id, info.name), compute)

    # -- raw results ----------------------------------------------------------------------------

    def results(self, session: Session, version: StoreVersion, release: ReleaseInfo,
                track: Track) -> ResultsOut:
        """The long results table of a release and track."""
        def compute() -> ResultsOut:
            meta = self.entries(session, version)
            rows = [ResultRowOut.model_validate(row, from_attributes=True)
                    for row in self.rows(session, version, release, track)
                    if row.submission_id in meta]
            return ResultsOut(release=release_out(release), track=track, rows=rows)

        return self._cached(("results", version, release.release_id, track), compute)


def _version_state(meta: EntryMeta, shown: EntryMeta | None) -> str:
    """How one version of an entry stands on a release (``EntryVersionOut.state``)."""
    if meta.withdrawn:
        return "withdrawn"
    if meta.hidden:
        return "hidden"
    if shown is None or meta.submission_id == shown.submission_id:
        return "shown"
    return "superseded" if meta.version < shown.version else "pending"


def _not_shown_reason(meta: EntryMeta, shown: EntryMeta | None) -> str | None:
    """Why a version is not ranked on a release although it may have results, or None."""
    if meta.withdrawn:
        return "withdrawn by its team"
    if meta.hidden:
        return "hidden by the maintainers"
    if shown is None or shown.submission_id == meta.submission_id:
        return None
    if shown.version > meta.version:
        return f"superseded by version {shown.version} (#{shown.submission_id})"
    return (f"version {shown.version} (#{shown.submission_id}) is ranked until this version "
            "has results")


def _run_columns(comparison: RunComparison | None) -> dict[str, Any]:
    """The reproducibility columns of a ranked entry (``evaluator.store.RunComparison``)."""
    if comparison is None or comparison.compared == 0:
        return {}
    return {"reproducible": comparison.reproducible, "runs": comparison.runs,
            "rerun_mse_spread": finite(comparison.max_mse_spread),
            "rerun_pcc_gene_spread": finite(comparison.max_pcc_gene_spread)}


def _pair_matrix(labels: list[str], pairs: list[PairTestOut]) -> PValueMatrixOut:
    """The pairs' Holm-adjusted p-values as a symmetric matrix in rank order (diagonal 1)."""
    index = {label: i for i, label in enumerate(labels)}
    values: list[list[float | None]] = [[1.0] * len(labels) for _ in labels]
    for pair in pairs:
        i, j = index[pair.a], index[pair.b]
        values[i][j] = values[j][i] = pair.p_holm
    return PValueMatrixOut(method="wilcoxon-holm", labels=labels, p_values=values)


def _out(model: type[M], view: ResultView, **columns: Any) -> M:
    """A response model of a stored result: the fields it shares with the read model, and
    ``columns`` (what the view computes: positions, normalized MSE)."""
    return model.model_validate({**view.model_dump(include=set(model.model_fields)),
                                 **columns})


FAILURE_KINDS = {"model": "the model's own failure", "infra": "infrastructure"}
"""How a failed job's cause is shown in public (its message is not)."""


def mean_baseline(meta: dict[int, EntryMeta]) -> str | None:
    """The label of the visible ``mean`` baseline (skill's reference), if there is one."""
    found = sorted(m.submission_id for m in meta.values()
                   if m.is_baseline and m.name == MEAN_BASELINE_NAME)
    return meta[found[0]].label if found else None


def _with_job_notes(reason: str, jobs: list[dict[str, Any]]) -> str:
    """Add what the missing datasets' jobs are doing (queued, running, failed and whose fault).

    Public: a job's message is not (it may quote the author's log, file names or the server's
    paths); its owner reads it in the submission's status.
    """
    notes = []
    for job in sorted(jobs, key=lambda j: j["dataset"]):
        if job["status"] == "succeeded":
            continue
        text = f"{job['dataset']}: {job['status']}"
        if job["status"] == "failed" and job["failure_kind"]:
            text += f" ({FAILURE_KINDS.get(job['failure_kind'], 'unknown cause')})"
        notes.append(text)
    return f"{reason}; jobs: {'; '.join(notes)}" if notes else reason
