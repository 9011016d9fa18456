"""Whether this machine has a GPU for torch, seen without importing torch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["describe_gpus", "nvidia_gpu_models", "nvidia_gpu_visible"]

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


def nvidia_gpu_models(gpus_dir: Path = NVIDIA_GPUS_DIR) -> list[str]:
    """The model of each GPU the NVIDIA driver lists (``information``'s ``Model:`` line), in
    PCI bus order: the order of NVML's indices, which ``--gpus 0,1`` and Docker's device ids
    use. Empty without a driver."""
    try:
        folders = sorted(p for p in gpus_dir.iterdir() if p.is_dir())
    except OSError:
        return []
    models = []
    for folder in folders:
        model = "unknown NVIDIA GPU"
        try:
            for line in (folder / "information").read_text(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "Model" and value.strip():
                    model = " ".join(value.split())[:100]
                    break
        except OSError:
            pass
        models.append(model)
    return models


def describe_gpus(ids: Sequence[int], gpus_dir: Path = NVIDIA_GPUS_DIR) -> str:
    """What the GPUs ``ids`` are, as a worker reports them: ``"0: NVIDIA H100 80GB HBM3"``
    (comma-separated), ``"2: not seen by the driver"`` for an id the driver does not list,
    ``""`` for none."""
    models = nvidia_gpu_models(gpus_dir) if ids else []
    return ", ".join(f"{i}: {models[i] if 0 <= i < len(models) else 'not seen by the driver'}"
                     for i in ids)
