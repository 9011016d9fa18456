"""Hostile: an image HEALTHCHECK (its probes would run outside the job's CPU quota)."""

import time
from pathlib import Path

import numpy as np

time.sleep(4)  # four probe intervals: a probe that ran leaves /output/probed
np.save("/output/predictions.npy", np.zeros((4, 3), dtype=np.float32))
print("probed" if Path("/output/probed").exists() else "never probed")
