"""Baseline `mean`: predict every test spot as the training mean of each gene.

The floor every image model must beat: it ignores the patches. Means are over measured entries
on the raw track (X is 0 where nothing was measured) and over all entries on the spackle track.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The same layout in the image (/app/...) and in a source checkout (the local runner).
_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(_ROOT / "sdk"), str(_ROOT / "baselines" / "common")]

import numpy as np  # noqa: E402
import spared_sdk as sdk  # noqa: E402
from baseline_common import masked_mean  # noqa: E402


def main() -> None:
    task = sdk.read_task()
    train = sdk.load_train()
    mean = masked_mean(train.X, sdk.training_weights(train, task.track))
    sdk.write_predictions(np.tile(mean, (task.n_test_spots, 1)), task)
    sdk.write_model_card("mean", {"statistic": "per-gene training mean",
                                  "trainable_parameters": int(mean.size)},
                         "Ignores the image: the floor of the benchmark.")
    print(f"mean: {task.dataset}/{task.track}: {train.n_spots} training spots, "
          f"{task.n_test_spots} predicted")


if __name__ == "__main__":
    main()
