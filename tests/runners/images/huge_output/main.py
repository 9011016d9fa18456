"""Hostile: write far more output than allowed.

MODE=burst writes 48 MB and exits; MODE=stream keeps writing (up to 4 GB) and then sleeps, so only
a runner that watches the output while the job runs stops it early.
"""

import os
import time

import numpy as np

np.save("/output/predictions.npy", np.zeros((2, 3), dtype=np.float32))
mode = os.environ.get("MODE", "burst")
limit_mb = 48 if mode == "burst" else 4096
chunk = b"\x07" * 2**20
written_mb = 0
with open("/output/junk.bin", "wb") as handle:
    while written_mb < limit_mb:
        handle.write(chunk)
        written_mb += 1
        if mode == "stream":
            handle.flush()
            time.sleep(0.01)
print(f"wrote {written_mb} MB", flush=True)
if mode == "stream":
    time.sleep(3600)
