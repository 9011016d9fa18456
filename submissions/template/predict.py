"""Your SpaRED Bench submission: read the task, fit or load a model, write predictions.

Runs with no arguments, no network, a read-only filesystem (write only to /output and /tmp),
as user 10001, within task.time_limit_s. See submissions/CONTRACT.md.
Make a folder of your own with `spared-bench template my-model`, then
try it:  spared-bench check --runner local "python my-model/predict.py"
then:    docker build --network none -t my-model:1 my-model
         spared-bench check my-model:1
"""

from __future__ import annotations

import sys
from pathlib import Path

# spared_sdk.py sits next to this file (`spared-bench template` puts it there; so does the
# Dockerfile, in /app); in this repository's submissions/template it is found in ../sdk.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import spared_sdk as sdk


def main() -> None:
    task = sdk.read_task()      # dataset, track, genes (column order), n_test_spots, seed, ...
    train = sdk.load_train()    # train.X (spots x genes), train.mask, train.patches (N,H,W,3)
    test = sdk.load_test()      # test.patches, test.obs["slide_id"], ... in prediction row order
    rng = np.random.default_rng(task.seed)  # noqa: F841 - use it for anything random

    # Fit on measured entries on the raw track (X is 0 where mask is False), all on spackle.
    weights = sdk.training_weights(train, task.track)
    mean = (train.X * weights).sum(axis=0) / np.maximum(weights.sum(axis=0), 1)

    # TODO: replace with your model. Rows: test spots in test.h5ad order; columns: task.genes.
    predictions = np.tile(mean, (test.n_spots, 1))

    sdk.write_predictions(predictions, task)  # checks shape, float32, finite; then writes
    sdk.write_model_card("my-model", {"kind": "template"}, "Describe your model here.")


if __name__ == "__main__":
    main()
