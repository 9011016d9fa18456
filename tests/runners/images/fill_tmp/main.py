"""Hostile: fill /tmp until it refuses, report how far it got, then behave."""

import errno

import numpy as np

written_mb = 0
chunk = b"\x00" * 2**20
try:
    with open("/tmp/fill.bin", "wb") as handle:
        for _ in range(4096):
            handle.write(chunk)
            handle.flush()
            written_mb += 1
except OSError as error:
    print(f"tmp refused after {written_mb} MB: {errno.errorcode.get(error.errno, error.errno)}")
else:
    print(f"tmp took all {written_mb} MB")
np.save("/output/predictions.npy", np.zeros((2, 3), dtype=np.float32))
