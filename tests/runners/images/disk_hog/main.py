"""Hostile: hold host disk outside every limit while the job runs, then succeed.

Writes valid predictions first, then tries: a 6 GiB fallocate on /output; a file deleted while
still open, written until the disk refuses; and a write to a folder of the root filesystem.
Reports each result, holds everything open for HOLD_S seconds, and exits 0.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

task = json.loads(Path("/input/task.json").read_text())
np.save("/output/predictions.npy",
        np.zeros((task["n_test_spots"], len(task["genes"])), dtype=np.float32))

fd = os.open("/output/big", os.O_WRONLY | os.O_CREAT, 0o644)
start = time.perf_counter()
try:
    os.posix_fallocate(fd, 0, 6 << 30)
    print(f"fallocate 6 GiB: ok in {time.perf_counter() - start:.3f} s", flush=True)
except OSError as error:
    print(f"fallocate 6 GiB: failed ({error.strerror})", flush=True)
os.close(fd)
os.unlink("/output/big")

hidden = open("/output/hidden", "wb")  # noqa: SIM115 (held open on purpose)
os.unlink("/output/hidden")
chunk = bytes(1 << 20)
written_mb = 0
try:
    while written_mb < 8192:
        hidden.write(chunk)
        hidden.flush()
        written_mb += 1
    print(f"deleted-open file: wrote {written_mb} MB", flush=True)
except OSError as error:
    print(f"deleted-open file: stopped at {written_mb} MB ({error.strerror})", flush=True)

try:
    Path("/var/tmp/x").write_bytes(chunk)
    print("root filesystem: written", flush=True)
except OSError as error:
    print(f"root filesystem: failed ({error.strerror})", flush=True)

print("holding", flush=True)
time.sleep(float(os.environ.get("HOLD_S", "3")))
