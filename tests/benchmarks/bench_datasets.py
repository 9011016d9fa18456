"""Synthesize the ``full`` size at 32×32 patches and build its release.

Figures: spots/s and MB/s of synthesis (generation + atomic .h5ad write) and of the release build
(validate, split, write, hash; SpaCKLE's training is benchmarked in bench_completion).
Reference: a plain ``numpy.save`` of the same arrays, in the same
process, which is the floor for merely putting those bytes on disk.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from evaluator.core.settings import Settings
from evaluator.datasets.registry import load_registry
from evaluator.datasets.release import build_release, completion_config
from evaluator.datasets.store import write_h5ad
from evaluator.datasets.synthetic import generate_dataset
from tests.benchmarks.harness import BenchRow

QUICK_DATASETS = (
    "villacampa_kidney_organoid", "mirzazadeh_human_colon_p1", "parigi_mouse_intestine",
)


def _array_bytes(adata) -> int:
    total = sum(np.asarray(v).nbytes for v in adata.layers.values())
    return total + sum(np.asarray(v).nbytes for v in adata.obsm.values()) + adata.X.nbytes


def run(quick: bool = False, patch_size: int = 32) -> list[BenchRow]:
    """Run the benchmark; ``quick`` uses three small datasets instead of all 26."""
    names = QUICK_DATASETS if quick else tuple(d.name for d in load_registry())
    case = f"{'quick 3 datasets' if quick else 'full 26 datasets'}, {patch_size}px"
    spots = 0
    array_mb = 0.0
    synth_s = write_s = save_s = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as tmp:
        root = Path(tmp)
        (root / "npy").mkdir()
        for name in names:
            start = time.perf_counter()
            adata = generate_dataset(name, "full", seed=0, patch_size=patch_size)
            synth_s += time.perf_counter() - start
            # SpaCKLE training is measured by bench_completion; pre-filling its layer keeps this
            # benchmark on the data path (validate, split, write, hash) of the release build.
            adata.layers["c_t_log1p"] = adata.layers["c_d_log1p"]
            start = time.perf_counter()
            write_h5ad(adata, root / "processed" / f"{name}.h5ad")
            write_s += time.perf_counter() - start
            arrays = {**{f"layer_{k}": np.asarray(v) for k, v in adata.layers.items()},
                      **{f"obsm_{k}": np.asarray(v) for k, v in adata.obsm.items()},
                      "X": np.asarray(adata.X)}
            start = time.perf_counter()
            for key, value in arrays.items():
                np.save(root / "npy" / f"{name}-{key}.npy", value)
            save_s += time.perf_counter() - start
            spots += adata.n_obs
            array_mb += _array_bytes(adata) / 1e6
            del adata, arrays
        sources = sorted((root / "processed").glob("*.h5ad"))
        source_mb = sum(p.stat().st_size for p in sources) / 1e6
        start = time.perf_counter()
        # The sources lack c_t_log1p: SpaCKLE trains, with the budget the environment sets.
        steps = Settings.from_env().spackle_max_steps
        release, _ = build_release(sources, root / "releases", completion=completion_config(steps))
        release_s = time.perf_counter() - start
        release_mb = sum(e.bytes for e in release.manifest.files.values()) / 1e6
        start = time.perf_counter()
        release.verify()
        verify_s = time.perf_counter() - start

    save_mb_s = array_mb / save_s
    return [
        BenchRow("datasets", f"synthesize {case}", spots / synth_s, "spots/s",
                 note=f"{spots:,} spots in {synth_s:.1f}s"),
        BenchRow("datasets", f"synthesize+write {case}", array_mb / (synth_s + write_s), "MB/s",
                 reference=save_mb_s, reference_label="numpy.save same arrays",
                 note=f"{array_mb:.0f} MB of arrays"),
        BenchRow("datasets", f"write .h5ad {case}", array_mb / write_s, "MB/s",
                 reference=save_mb_s, reference_label="numpy.save same arrays",
                 note=f"{write_s:.1f}s vs {save_s:.1f}s"),
        BenchRow("datasets", f"build release {case}", spots / release_s, "spots/s",
                 note=f"{release_s:.1f}s"),
        BenchRow("datasets", f"build release {case}", (source_mb + release_mb) / release_s,
                 "MB/s", reference=save_mb_s, reference_label="numpy.save same arrays",
                 note=f"read {source_mb:.0f} MB, wrote {release_mb:.0f} MB"),
        BenchRow("datasets", f"verify release {case}", release_mb / verify_s, "MB/s",
                 reference=save_mb_s, reference_label="numpy.save same arrays"),
    ]
