"""Hostile: /output/predictions.npy the evaluator may not be able to open, by MODE.

fifo: a named pipe (an open would block); directory: a folder; noperm: a valid file with mode
000; symlink: a link to /input/task.json.
"""

import os

import numpy as np

mode = os.environ.get("MODE", "fifo")
target = "/output/predictions.npy"
if mode == "fifo":
    os.mkfifo(target)
elif mode == "directory":
    os.mkdir(target)
elif mode == "noperm":
    np.save(target, np.zeros((4, 3), dtype=np.float32))
    os.chmod(target, 0)
elif mode == "symlink":
    os.symlink("/input/task.json", target)
print(f"predictions.npy as {mode}", flush=True)
