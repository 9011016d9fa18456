"""The shared benchmark harness: timing, peak memory, and the printed table.

Each ``bench_*.py`` module in this folder defines ``run(quick: bool) -> list[BenchRow]``.
A row is one measured figure next to a reference measured in the same process, so the
ratio means something on whatever machine runs it.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Two small demo datasets (one with a test split, one 32-gene) for --quick runs.
QUICK_DEMO_DATASETS = ("villacampa_lung_organoid", "mirzazadeh_human_colon_p1")


@dataclass
class BenchRow:
    """One line of the benchmark table."""

    bench: str
    case: str
    figure: float
    unit: str
    reference: float | None = None
    reference_label: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """``figure / reference`` when both exist and the reference is non-zero."""
        if self.reference is None or self.reference == 0:
            return None
        return self.figure / self.reference


def time_call(fn: Callable[[], Any], *, repeat: int = 1) -> tuple[float, Any]:
    """Return (best wall seconds over ``repeat`` calls, last result)."""
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_python_memory_mb(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Return (peak traced Python allocation in MB, result) of one call (numpy buffers included)."""
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6, result


def format_table(rows: list[BenchRow]) -> str:
    """Render rows as a fixed-width text table."""
    header = ("bench", "case", "figure", "unit", "reference", "ratio", "note")
    body = []
    for r in rows:
        ref = "" if r.reference is None else f"{r.reference:.4g} ({r.reference_label})"
        ratio = "" if r.ratio is None else f"{r.ratio:.3g}x"
        body.append((r.bench, r.case, f"{r.figure:.4g}", r.unit, ref, ratio, r.note))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)) for row in
             [header, tuple("-" * w for w in widths), *body]]
    return "\n".join(line.rstrip() for line in lines)


def build_demo_release(root: Path, quick: bool) -> Any:
    """Build the demo release (or its two quick datasets) under ``root``; return it.

    SpaCKLE's layer is pre-filled with the median-completed one, so the benchmarks that use
    this measure evaluation, not SpaCKLE training (``bench_completion`` measures that).
    """
    from evaluator.datasets.release import build_release
    from evaluator.datasets.schema import read_h5ad
    from evaluator.datasets.store import write_h5ad
    from evaluator.datasets.synthetic import SIZE_PRESETS, generate

    names = QUICK_DEMO_DATASETS if quick else SIZE_PRESETS["demo"].datasets
    processed = root / "processed"
    generate("demo", processed, seed=0, datasets=names)
    for path in sorted(processed.glob("*.h5ad")):
        adata = read_h5ad(path)
        adata.layers["c_t_log1p"] = adata.layers["c_d_log1p"]
        write_h5ad(adata, path)
    release, _ = build_release(sorted(processed.glob("*.h5ad")), root / "releases",
                               label="bench-demo", cache_dir=root / "cache")
    return release
