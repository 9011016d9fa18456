"""Hostile: search the whole filesystem for hidden truth, the docker socket, other jobs."""

import os
import sys
from pathlib import Path

import numpy as np

suspects = []
for root, dirs, files in os.walk("/", onerror=lambda error: None):
    if root in ("/proc", "/sys", "/dev"):
        dirs[:] = []
        continue
    for name in files + dirs:
        lowered = name.lower()
        if "truth" in lowered or "hidden" in lowered or lowered == "docker.sock":
            suspects.append(os.path.join(root, name))
print(f"suspects found: {len(suspects)}")
for path in suspects:
    print("FOUND", path)
print("mounts:")
print(Path("/proc/self/mountinfo").read_text())
if suspects:
    sys.exit(1)
np.save("/output/predictions.npy", np.zeros((2, 3), dtype=np.float32))
