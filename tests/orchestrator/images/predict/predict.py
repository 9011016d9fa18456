"""Test submission: sleep, then write constant predictions of the shape task.json asks for."""

import json
import os
import sys
import time

import numpy as np

with open("/input/task.json") as handle:
    task = json.load(handle)
print(f"predicting {task['dataset']}/{task['track']} on {task['device']}", flush=True)
time.sleep(float(os.environ.get("SLEEP_S", "0")))
if os.environ.get("MODE") == "crash":
    print("model exploded: this is the model's own failure", file=sys.stderr, flush=True)
    sys.exit(3)
shape = (task["n_test_spots"], len(task["genes"]))
np.save("/output/predictions.npy", np.full(shape, 1.0, dtype=np.float32))
with open("/output/model.json", "w") as handle:
    json.dump({"name": "constant", "parameters": {"trainable_parameters": 1}}, handle)
print("done", flush=True)
