"""Benchmark completion: SpaCKLE vs the median filter (paper section 5.1, Fig. 4), and speed.

Data: synthetic SpaRED-like datasets (``evaluator.datasets.synthetic``), layer ``c_d_log1p``.
SpaCKLE uses the default ``SpackleConfig`` (the one releases use), trained on the train spots.

Rows, each next to a reference measured in the same process:

- ``mse <dataset>``: SpaCKLE completion MSE over 10 assays (30% of the hidden split's measured
  values hidden) vs the median filter's on the same masks. Target ratio <= 0.5 (the paper
  reports an 82.5% reduction, ratio 0.175, on real data).
- ``fig4 <p>%``: the missing-fraction sweep (10% to 70%), SpaCKLE vs median MSE; the table
  and a PNG plot are written to ``var/bench/``.
- ``median speed``: vectorized ``adaptive_median_filter`` spots/s vs the loop reference of the
  tests (target >= 100x); identical output is checked.
- ``spackle train/infer``: SpaCKLE training and inference spots/s on CPU (and GPU when
  present) vs the median filter's spots/s.

``quick``: the 26 ``demo`` datasets (<= 900 spots). Full: ``full``-sized copies of
``FULL_SUBSET`` only (run ``--quick`` as well for the demo rows): 1.8k to 44k spots, 128 and
32 genes, with and without a test split (two cores cannot hold all 26 full-sized datasets in a
benchmark run). The Fig. 4 sweep is on full-sized ``10xgenomic_mouse_brain_sagittal_posterior``
as in the paper. The rows so far are written to ``var/bench/completion_<quick|full>.txt`` after
each dataset.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from evaluator.completion import SpackleConfig, adaptive_median_filter
from evaluator.completion.evaluation import (
    evaluate_completion,
    format_comparison,
    missing_fraction_sweep,
    plot_sweep,
    summarize,
)
from evaluator.completion.layers import spot_data_from_anndata
from evaluator.completion.spackle import train_spackle
from evaluator.datasets.synthetic import generate_dataset, preset_datasets
from tests.benchmarks.harness import BenchRow, format_table, time_call
from tests.completion.reference import loop_adaptive_median_filter

OUT_DIR = Path(__file__).resolve().parents[2] / "var" / "bench"
FULL_SUBSET = (
    "villacampa_lung_organoid",  # 1,832 spots, 128 genes, test split
    "mirzazadeh_human_colon_p1",  # 2,225 spots, 32 genes
    "10xgenomic_mouse_brain_sagittal_posterior",  # 6,644 spots, 128 genes
    "abalo_human_squamous_cell_carcinoma",  # 10,374 spots, 128 genes, test split
    "mirzazadeh_human_small_intestine",  # 10,474 spots, 32 genes
    "vicari_human_striatium",  # 19,033 spots, 32 genes, test split
    "vicari_mouse_brain",  # 43,804 spots, 128 genes, test split (the largest)
)
FIG4_DATASET_FULL = "10xgenomic_mouse_brain_sagittal_posterior"
N_ASSAYS = 10


def _data(name: str, size: str):
    adata = generate_dataset(name, size, seed=0, patch_size=4)
    return spot_data_from_anndata(adata, "c_d_log1p", source=f"{name} ({size})")


def _mse_rows(name: str, size: str, data, trained) -> list[BenchRow]:
    summary = {s.method: s for s in summarize(evaluate_completion(data, trained,
                                                                  n_assays=N_ASSAYS))}
    spk, med = summary["spackle"], summary["median"]
    return [BenchRow(
        "completion", f"mse {name} ({size}, {data.n_spots} spots)", spk.mse_mean, "MSE",
        med.mse_mean, "median filter",
        f"30% hidden, {N_ASSAYS} assays; PCC {spk.pcc_mean:.3f} vs {med.pcc_mean:.3f}; "
        f"{trained.steps} steps (best {trained.best_step}), {trained.train_seconds:.0f} s; "
        "target ratio <= 0.5",
    )]


def _speed_rows(name: str, size: str, data, trained, config: SpackleConfig) -> list[BenchRow]:
    rows: list[BenchRow] = []
    args = (data.expression, data.mask, data.array_row, data.array_col, data.slide_ids)
    t_vec, _ = time_call(lambda: adaptive_median_filter(*args), repeat=5)
    vec_rate = data.n_spots / t_vec
    # The loop reference is slow: time it on the first slide only (spots/s is per spot).
    first = data.slide_ids == np.unique(data.slide_ids)[0]
    sub = tuple(a[first] for a in args)
    t_loop, out_loop = time_call(lambda: loop_adaptive_median_filter(*sub))
    same = np.array_equal(adaptive_median_filter(*sub), out_loop)
    rows.append(BenchRow(
        "completion", f"median speed {name} ({size})", vec_rate, "spots/s",
        int(first.sum()) / t_loop, "loop reference",
        f"{data.n_genes} genes, identical output: {same}; target >= 100x",
    ))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        cfg = config.model_copy(update={"device": device})
        if device == "cpu":
            model, t_train = trained, trained.train_seconds
        else:
            model = train_spackle(data, cfg)
            t_train = model.train_seconds
        steps = model.steps
        n_train = int((data.split == "train").sum()) if data.split is not None else data.n_spots
        spots_seen = steps * min(cfg.batch_size, n_train)
        rows.append(BenchRow(
            "completion", f"spackle train {name} ({size}, {device})", spots_seen / t_train,
            "spots/s", vec_rate, "median filter",
            f"{steps} steps x batch {min(cfg.batch_size, n_train)}, {t_train:.1f} s incl. "
            "median pre-completion and validation",
        ))
        everything = data.with_mask(np.zeros_like(data.mask))  # every spot has missing values
        model.net.to(device)
        t_inf, _ = time_call(lambda m=model, e=everything: m.complete(e), repeat=2)
        rows.append(BenchRow(
            "completion", f"spackle infer {name} ({size}, {device})", data.n_spots / t_inf,
            "spots/s", vec_rate, "median filter", "all spots, incl. median pre-completion",
        ))
    return rows


def _fig4_rows(name: str, size: str, data, trained) -> list[BenchRow]:
    summaries = summarize(missing_fraction_sweep(data, trained, n_assays=N_ASSAYS))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stem = OUT_DIR / f"completion_fig4_{size}"
    table = format_comparison(summaries)
    stem.with_suffix(".txt").write_text(f"{name} ({size}, {data.n_spots} spots)\n{table}\n")
    plot_sweep(summaries, stem.with_suffix(".png"),
               title=f"Completion MSE vs missing fraction\n{name} ({size})")
    rows = []
    by = {(s.rho, s.method): s for s in summaries}
    for rho in sorted({s.rho for s in summaries}):
        spk, med = by[(rho, "spackle")], by[(rho, "median")]
        rows.append(BenchRow(
            "completion", f"fig4 {100 * rho:.0f}% {name} ({size})", spk.mse_mean, "MSE",
            med.mse_mean, "median filter", f"{N_ASSAYS} assays; plot {stem.name}.png",
        ))
    return rows


def run(quick: bool) -> list[BenchRow]:
    """Run the completion benchmark (see the module docstring)."""
    torch.set_num_threads(1)  # two shared cores: one thread avoids oversubscription
    config = SpackleConfig()
    rows: list[BenchRow] = []
    if quick:
        plan = [(info.name, "demo") for info in preset_datasets("demo")]
    else:
        plan = [(name, "full") for name in FULL_SUBSET]
    fig4_done: set[str] = set()
    speed_done: set[str] = set()
    for name, size in plan:
        start = time.perf_counter()
        data = _data(name, size)
        trained = train_spackle(data, config)
        rows += _mse_rows(name, size, data, trained)
        if size not in speed_done:
            rows += _speed_rows(name, size, data, trained, config)
            speed_done.add(size)
        fig4_name = FIG4_DATASET_FULL if size == "full" else plan[0][0]
        if name == fig4_name and size not in fig4_done:
            rows += _fig4_rows(name, size, data, trained)
            fig4_done.add(size)
        print(f"  {name} ({size}): {time.perf_counter() - start:.1f} s", file=sys.stderr,
              flush=True)
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / f"completion_{'quick' if quick else 'full'}.txt").write_text(
            f"SpackleConfig: {config.model_dump_json()}\n{format_table(rows)}\n")
    return rows
