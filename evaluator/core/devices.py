"""Whether this machine has a GPU for torch, seen without importing torch."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["nvidia_gpu_visible"]

NVIDIA_GPUS_DIR = Path("/proc/driver/nvidia/gpus")


def nvidia_gpu_visible(gpus_dir: Path = NVIDIA_GPUS_DIR) -> bool:
    """True when the NVIDIA driver lists a GPU and ``CUDA_VISIBLE_DEVICES`` does not hide all.

    Read from the driver's /proc folder: importing torch to ask costs seconds, and the answer
    only chooses defaults (SpaCKLE's step budget), which a setting can always override.
    """
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1", "none", "NoDevFiles"):
        return False
    try:
        return any(gpus_dir.iterdir())
    except OSError:
        return False
