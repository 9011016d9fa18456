"""Hostile: try to write everywhere but /output and /tmp (inputs, root, app, home)."""

import sys

import numpy as np

escaped = []
for path in ["/input/task.json", "/input/new-file", "/evil", "/app/evil", "/home/bench/evil",
             "/etc/evil", "/opt/venv/evil.py"]:
    try:
        with open(path, "a") as handle:
            handle.write("tampered")
        escaped.append(path)
        print(f"write {path}: WRITTEN")
    except OSError as error:
        print(f"write {path}: failed ({error.strerror})")
for path in ["/tmp/ok", "/output/ok"]:
    with open(path, "w") as handle:
        handle.write("fine")
    print(f"write {path}: ok")
if escaped:
    sys.exit(1)
np.save("/output/predictions.npy", np.zeros((2, 3), dtype=np.float32))
