"""Baseline `ridge`: ridge regression of expression on per-slide-centred patch features.

One ridge per gene, fitted on that gene's training entries (measured ones on the raw track),
predicting the deviation from the gene's training mean; the features are standardized colour
and texture statistics centred per slide (see baseline_common).
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(_ROOT / "sdk"), str(_ROOT / "baselines" / "common")]

import numpy as np  # noqa: E402
import spared_sdk as sdk  # noqa: E402
from baseline_common import (  # noqa: E402
    masked_mean,
    patch_features,
    slide_centred,
    standardized,
)

ALPHA = 10.0


def main() -> None:
    task = sdk.read_task()
    train, test = sdk.load_train(), sdk.load_test()
    weights = sdk.training_weights(train, task.track).astype(np.float64)
    mean = masked_mean(train.X, weights)
    f_train, f_test = standardized(
        slide_centred(patch_features(train), train.slide_ids),
        slide_centred(patch_features(test), test.slide_ids))
    target = (train.X - mean).astype(np.float64)
    # Per-gene normal equations over that gene's entries: (F' W_g F + alpha I) b_g = F' W_g y_g
    gram = np.einsum("ig,ij,ik->gjk", weights, f_train, f_train)
    gram += ALPHA * np.eye(f_train.shape[1])[None]
    rhs = np.einsum("ig,ij,ig->gj", weights, f_train, target)
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    preds = mean + f_test @ coef.T
    sdk.write_predictions(preds, task)
    sdk.write_model_card("ridge", {"alpha": ALPHA, "features": int(f_train.shape[1]),
                                   "trainable_parameters": int(coef.size + mean.size)},
                         "Per-gene ridge on per-slide-centred patch colour/texture features.")
    print(f"ridge: {task.dataset}/{task.track}: {train.n_spots} training spots, "
          f"{f_train.shape[1]} features")


if __name__ == "__main__":
    main()
