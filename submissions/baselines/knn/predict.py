"""Baseline `knn`: average the expression of the nearest training spots in patch-feature space.

Features are colour and texture statistics of each patch, centred per slide (see
baseline_common); the k nearest training spots (Euclidean, standardized features) vote with
weights 1/(1 + distance), each gene averaged over the neighbours where it is a training entry.
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

K = 20
BLOCK_ROWS = 512  # test rows per distance block: bounds memory at BLOCK_ROWS x n_train


def main() -> None:
    task = sdk.read_task()
    train, test = sdk.load_train(), sdk.load_test()
    weights = sdk.training_weights(train, task.track)
    mean = masked_mean(train.X, weights)
    f_train, f_test = standardized(
        slide_centred(patch_features(train), train.slide_ids),
        slide_centred(patch_features(test), test.slide_ids))
    k = min(K, train.n_spots)
    preds = np.empty((test.n_spots, len(task.genes)), dtype=np.float32)
    train_sq = (f_train**2).sum(axis=1)
    for start in range(0, test.n_spots, BLOCK_ROWS):
        block = f_test[start:start + BLOCK_ROWS]
        dist2 = (block**2).sum(axis=1)[:, None] + train_sq[None, :] - 2 * block @ f_train.T
        nearest = np.argpartition(dist2, k - 1, axis=1)[:, :k]
        vote = 1.0 / (1.0 + np.sqrt(np.maximum(np.take_along_axis(dist2, nearest, 1), 0)))
        w = weights[nearest] * vote[..., None]
        total = w.sum(axis=1)
        averaged = (w * train.X[nearest]).sum(axis=1) / np.maximum(total, 1e-12)
        preds[start:start + BLOCK_ROWS] = np.where(total > 0, averaged, mean)
    sdk.write_predictions(preds, task)
    sdk.write_model_card("knn", {"k": k, "features": int(f_train.shape[1]),
                                 "weights": "1/(1+distance)"},
                         "k nearest neighbours on per-slide-centred patch colour/texture.")
    print(f"knn: {task.dataset}/{task.track}: k={k}, {train.n_spots} training spots")


if __name__ == "__main__":
    main()
