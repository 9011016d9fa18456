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
if os.environ.get("MODE") == "hostile":
    # Bytes no store holds as they are: NUL and invalid UTF-8 in the log, NUL and lone
    # surrogates (as JSON escapes) in model.json, a file name that is not UTF-8.
    sys.stdout.buffer.write(b"nul\x00byte and invalid utf-8 \xff\xfe here\n")
    sys.stdout.flush()
    with open("/output/model.json", "w") as handle:
        handle.write('{"name": "hostile\\u0000", "parameters": {"k\\ud800": "v\\udfff"}, '
                     '"notes": "lone \\ud83d"}')
    with open(b"/output/extra-\xff.bin", "wb") as handle:
        handle.write(b"x")
elif os.environ.get("MODE") == "hostile-nan":
    with open("/output/model.json", "w") as handle:
        handle.write('{"name": "nan", "parameters": {"lr": NaN, "deep": '
                     + "[" * 5000 + "]" * 5000 + "}}")
elif os.environ.get("MODE") == "hostile-link":
    os.symlink("/etc/passwd", b"/output/link-\xff\x01")
else:
    with open("/output/model.json", "w") as handle:
        json.dump({"name": "constant", "parameters": {"trainable_parameters": 1}}, handle)
print("done", flush=True)
