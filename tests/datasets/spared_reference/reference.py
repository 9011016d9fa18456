"""Client of the SpaRED reference: build its venv, run ``driver.py`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("driver.py")

NO_SIMD_SORT = ("AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR "
                "AVX2 FMA3 F16C AVX")
"""numpy's CPU features turned off in the reference: its ``argsort(kind='quicksort')`` then
takes the portable introsort (the one ``evaluator.datasets.pipeline.numpy_sort`` ports), not
x86-simd-sort, whose order of ties changes with the numpy version and the CPU."""


def reference_python() -> str:
    """Return the reference venv's python, building the venv first if needed (idempotent)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "ensure_spared_reference.sh")],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"expected the SpaRED reference venv, found an error:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def _run(python: str, *args: str, full_moran: bool = False) -> None:
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": NO_SIMD_SORT, "PYTHONHASHSEED": "0",
           "SPARED_REFERENCE_FULL_MORAN": "1" if full_moran else "0"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([python, str(DRIVER), *args], capture_output=True, text=True,
                          env=env, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"SpaRED's library failed ({' '.join(args[:1])}):\n"
                           f"{done.stderr[-4000:]}")


def spared_process(python: str, raw_path: Path, out_path: Path, dataset: str,
                   params: dict[str, Any] | None = None, *, full_moran: bool = False) -> Path:
    """Run SpaRED's filter_dataset + process_dataset (no SpaCKLE) on ``raw_path``.

    ``full_moran``: keep ``compute_moran``'s 1,000 permutations (SpaRED's own cost).
    """
    _run(python, "process", str(raw_path), str(out_path), dataset, json.dumps(params or {}),
         full_moran=full_moran)
    return out_path


def spared_metrics(python: str, gt: Any, pred: Any, mask: Any, work: Path) -> dict[str, float]:
    """Return SpaRED's ``get_metrics(gt, pred, mask)``."""
    import numpy as np

    inputs, output = work / "metrics_in.npz", work / "metrics_out.json"
    np.savez(inputs, gt=np.asarray(gt, np.float32), pred=np.asarray(pred, np.float32),
             mask=np.asarray(mask, bool))
    _run(python, "metrics", str(inputs), str(output))
    return {k: float(v) for k, v in json.loads(output.read_text()).items()}


__all__ = ["reference_python", "spared_metrics", "spared_process"]
