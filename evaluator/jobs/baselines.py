"""The baselines' scores on the public validation data ``check`` uses, computed once and cached.

``check`` prints them beside the author's own numbers. They are computed, not shipped: the
baselines (``submissions/baselines/<name>/predict.py``, trusted code of this repository) run
with the local runner on the very validation folder the author's job was staged from
(``stage_validation_inputs``: same ``data/`` and ``truth.npz`` of the release, dataset and
track), and are scored by the same code. The numbers are cached in
``<staging>/<release>/validation-v<N>/<dataset>/<track>/baselines.json`` (beside ``data/``,
never in a mounted folder), keyed by a hash of each baseline's code, so later checks read them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from evaluator.core.fsio import atomic_path
from evaluator.datasets.release import Release, Track
from evaluator.jobs.pipeline import LocalExecutor, run_staged_job
from evaluator.jobs.staging import TaskSettings, stage_validation_inputs
from evaluator.runners import RunLimits

BASELINES_DIR = Path(__file__).resolve().parents[2] / "submissions" / "baselines"
"""The baselines of this source tree (absent in an installation without ``submissions/``)."""
VALIDATION_BASELINES = ("mean", "ridge")
"""The baselines ``check`` compares with: both run in seconds on a CPU."""
CACHE_FILE = "baselines.json"
CACHE_VERSION = 1


class BaselineScore(BaseModel):
    """One baseline's validation numbers (None where it failed: ``status`` says why)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    status: str
    mse: float | None = None
    pcc_gene: float | None = None
    code_sha256: str


def _code_sha256(name: str, root: Path) -> str:
    """Hash of what the baseline runs: its predict.py, the shared helpers and the SDK."""
    digest = hashlib.sha256()
    for path in (root / name / "predict.py", root / "common" / "baseline_common.py",
                 root.parent / "sdk" / "spared_sdk.py"):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def _read_cache(path: Path) -> dict[str, BaselineScore]:
    try:
        document = json.loads(path.read_text())
        if document.get("version") != CACHE_VERSION:
            return {}
        return {name: BaselineScore.model_validate(score)
                for name, score in document["scores"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # absent or unreadable: computed again


def validation_baselines(release: Release, dataset: str, track: Track, *, settings: TaskSettings,
                         staging_root: Path, limits: RunLimits,
                         names: Sequence[str] = VALIDATION_BASELINES,
                         root: Path = BASELINES_DIR, work_dir: Path | None = None
                         ) -> list[BaselineScore]:
    """The baselines' validation scores of a (release, dataset, track): cached, else computed.

    An empty list when ``root`` has no baselines (an installation without this source tree).
    """
    names = [n for n in names if (root / n / "predict.py").is_file()]
    if not names:
        return []
    staged = stage_validation_inputs(release, dataset, track, settings, staging_root)
    cache = staged.truth_path.parent.parent / CACHE_FILE
    known = _read_cache(cache)
    scores: list[BaselineScore] = []
    changed = False
    for name in names:
        code = _code_sha256(name, root)
        cached = known.get(name)
        if cached is not None and cached.code_sha256 == code:
            scores.append(cached)
            continue
        executor = LocalExecutor(f"python {root / name / 'predict.py'}")
        quiet = logging.getLogger("evaluator.runners.local_runner")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # trusted code of this repository: no isolation warning
        try:
            result = run_staged_job(executor, staged, limits, work_dir=work_dir)
        finally:
            quiet.setLevel(level)
        metrics = result.score.metrics if result.succeeded and result.score else None
        score = BaselineScore(name=name, status=result.status, code_sha256=code,
                              mse=metrics.mse if metrics else None,
                              pcc_gene=metrics.pcc_gene if metrics else None)
        scores.append(score)
        known[name] = score
        changed = True
    if changed:
        document = {"version": CACHE_VERSION, "release_id": release.release_id,
                    "dataset": dataset, "track": track,
                    "scores": {n: s.model_dump(mode="json") for n, s in known.items()}}
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
    return scores
