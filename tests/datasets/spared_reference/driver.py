"""Run SpaRED's library (spared==2.2.1) on a raw .h5ad; run in the reference venv only.

Usage: ``python driver.py process RAW.h5ad OUT.h5ad DATASET [PARAMS_JSON]`` — SpaRED's
``filter_dataset`` then ``process_dataset``'s steps 1-8 (TPM .. mask; SpaCKLE left out: it
trains a model) and ``add_noisy_layer`` for ``c_d_log1p`` and ``c_d_deltas``, with SpaRED's own
config of DATASET (``spared/configs``) updated by PARAMS_JSON. The output keeps every layer,
``var`` column and ``uns['spared_graph']`` (the 1-hop connectivities of each slide), and the
processing's wall seconds and peak resident memory (``uns['seconds']``, ``['peak_rss_mb']``).
Moran's permutations are skipped unless ``SPARED_REFERENCE_FULL_MORAN=1`` (benchmarks).
``python driver.py metrics IN.npz OUT.json`` — ``spared.metrics.get_metrics`` on gt/pred/mask.

This file imports nothing of the project; the project's tests run it in a subprocess.
torchvision is replaced by an empty stand-in: spared imports it at the top of modules whose
image encoders are not used here, and PyPI's build needs a CUDA torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import types
import warnings


def _inert(name: str) -> type:
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (), {})


def _stub_torchvision() -> None:
    import importlib.machinery

    names = ("Compose", "RandomApply", "RandomHorizontalFlip", "RandomRotation",
             "RandomVerticalFlip", "Normalize")
    root = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    transforms = types.ModuleType("torchvision.transforms")
    for name in names:
        setattr(transforms, name, object)
    root.models, root.transforms = models, transforms  # type: ignore[attr-defined]
    for module in (root, models, transforms):
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
        # Any name imported from it is an inert class (lightning's torchmetrics asks for some).
        module.__getattr__ = _inert  # type: ignore[attr-defined]
    root.__version__ = "0.0.0"  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": root, "torchvision.models": models,
                        "torchvision.transforms": transforms})


def _import_spared() -> dict:
    _stub_torchvision()
    warnings.simplefilter("ignore")
    with contextlib.redirect_stdout(io.StringIO()):
        from spared.denoising import denoising
        from spared.filtering import filtering
        from spared.gene_features import gene_features
        from spared.layer_operations import layer_operations
        from spared.metrics import metrics
    return {"denoising": denoising, "filtering": filtering, "gene_features": gene_features,
            "layer_operations": layer_operations, "metrics": metrics}


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _peak_rss_mb() -> float:
    with contextlib.suppress(OSError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _skip_moran_permutations(sq: object) -> None:
    """Make ``compute_moran``'s ``spatial_autocorr(n_perms=1000)`` skip its permutations.

    They only give p-values, which SpaRED does not use; Moran's I itself is computed before
    them (``score = params["func"](g, vals)``) and is unchanged. Saves ~25 s per run.
    """
    original = sq.gr.spatial_autocorr  # type: ignore[attr-defined]

    def without_permutations(*args: object, **kwargs: object) -> object:
        kwargs["n_perms"] = None
        return original(*args, **kwargs)

    sq.gr.spatial_autocorr = without_permutations  # type: ignore[attr-defined]


def process(raw_path: str, out_path: str, dataset: str, params_json: str | None) -> None:
    import os
    import pathlib
    import time

    import anndata as ad
    import numpy as np
    import scipy.sparse as sp
    import spared
    import squidpy as sq

    mods = _import_spared()
    lo, filtering = mods["layer_operations"], mods["filtering"]
    if os.environ.get("SPARED_REFERENCE_FULL_MORAN") != "1":
        _skip_moran_permutations(sq)
    config_path = pathlib.Path(spared.__file__).parent / "configs" / f"{dataset}.json"
    param_dict = json.loads(config_path.read_text())
    if params_json:
        param_dict.update(json.loads(params_json))
    adata = ad.read_h5ad(raw_path)
    adata.X = sp.csr_matrix(adata.X)
    adata.uns["spatial"] = {str(s): {} for s in adata.obs["slide_id"].unique()}
    log = io.StringIO()
    _reset_peak_rss()
    started = time.perf_counter()
    with contextlib.redirect_stdout(log):
        adata = filtering.filter_dataset(adata, param_dict)
        # process_dataset, steps 1-8 and the noisy layers of c_d_* (no SpaCKLE).
        adata.layers["counts"] = adata.X.toarray()
        adata = lo.tpm_normalization(adata, param_dict["organism"], from_layer="counts",
                                     to_layer="tpm")
        adata = lo.log1p_transformation(adata, from_layer="tpm", to_layer="log1p")
        adata = mods["denoising"].median_cleaner(adata, from_layer="log1p", to_layer="d_log1p",
                                                 n_hops=4,
                                                 hex_geometry=param_dict["hex_geometry"])
        adata = mods["gene_features"].compute_moran(adata, hex_geometry=param_dict[
            "hex_geometry"], from_layer="d_log1p")
        moran_all = adata.var["d_log1p_moran"].copy()
        adata = filtering.filter_by_moran(adata, n_keep=param_dict["top_moran_genes"],
                                          from_layer="d_log1p")
        if param_dict["combat_key"] != "None":
            adata = lo.combat_transformation(adata, batch_key=param_dict["combat_key"],
                                             from_layer="log1p", to_layer="c_log1p")
            adata = lo.combat_transformation(adata, batch_key=param_dict["combat_key"],
                                             from_layer="d_log1p", to_layer="c_d_log1p")
        adata = lo.get_deltas(adata, from_layer="log1p", to_layer="deltas")
        adata = lo.get_deltas(adata, from_layer="d_log1p", to_layer="d_deltas")
        if param_dict["combat_key"] != "None":
            adata = lo.get_deltas(adata, from_layer="c_log1p", to_layer="c_deltas")
            adata = lo.get_deltas(adata, from_layer="c_d_log1p", to_layer="c_d_deltas")
        adata.layers["mask"] = adata.layers["tpm"] != 0
        for layer in ("c_d_log1p", "c_d_deltas"):
            if layer in adata.layers:
                adata = lo.add_noisy_layer(adata=adata, prediction_layer=layer)
    seconds = time.perf_counter() - started
    peak_mb = _peak_rss_mb()
    out = ad.AnnData(X=np.asarray(adata.layers["counts"]), obs=adata.obs[
        ["slide_id", "split", "patient"]].astype(str).copy(), var=adata.var.copy())
    for name, layer in adata.layers.items():
        out.layers[name] = np.asarray(layer)
    out.uns["moran_all_genes"] = json.dumps(
        {str(k): (None if v != v else float(v)) for k, v in moran_all.items()})
    graphs = {}
    for slide in sorted(adata.obs["slide_id"].astype(str).unique()):
        one = adata[adata.obs["slide_id"].astype(str) == slide].copy()
        sq.gr.spatial_neighbors(one, coord_type="generic", n_neighs=6)
        coo = one.obsp["spatial_connectivities"].tocoo()
        graphs[slide] = json.dumps({"obs": one.obs_names.tolist(), "row": coo.row.tolist(),
                                    "col": coo.col.tolist()})
    out.uns["spared_graph"] = graphs
    out.uns["param_dict"] = json.dumps(param_dict)
    out.uns["squidpy_version"] = sq.__version__
    out.uns["seconds"] = seconds
    out.uns["peak_rss_mb"] = peak_mb
    out.write_h5ad(out_path)


def metrics(in_path: str, out_path: str) -> None:
    import numpy as np

    mods = _import_spared()
    data = np.load(in_path)
    with contextlib.redirect_stdout(io.StringIO()):
        result = mods["metrics"].get_metrics(data["gt"], data["pred"], data["mask"])
    with open(out_path, "w") as fh:
        json.dump({k: float(v) for k, v in result.items()}, fh)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "process":
        process(args[0], args[1], args[2], args[3] if len(args) > 3 else None)
    elif command == "metrics":
        metrics(args[0], args[1])
    else:
        raise SystemExit(f"expected 'process' or 'metrics', found {command!r}")
