"""GPU descriptions as a worker reports them, read from the NVIDIA driver's /proc folder."""

from __future__ import annotations

from pathlib import Path

from evaluator.core.devices import describe_gpus, nvidia_gpu_models

INFORMATION = """Model: \t\t {model}
IRQ:   \t\t 191
GPU UUID: \t GPU-5f0c1d8e-0000-0000-0000-000000000000
Bus Type: \t PCIe
Bus Location: \t {bus}
Device Minor: \t {minor}
GPU Excluded:\t No
"""


def _driver(root: Path, gpus: list[tuple[str, str, int]]) -> Path:
    for bus, model, minor in gpus:
        folder = root / bus
        folder.mkdir(parents=True)
        (folder / "information").write_text(INFORMATION.format(model=model, bus=bus,
                                                                minor=minor))
    return root


def test_gpu_models_in_bus_order_and_described_by_id(tmp_path: Path) -> None:
    driver = _driver(tmp_path / "gpus", [("0000:b3:00.0", "NVIDIA A100-SXM4-80GB", 0),
                                         ("0000:19:00.0", "NVIDIA H100 80GB HBM3", 1)])
    # NVML's indices (and so --gpus and Docker's device ids) follow the PCI bus order
    assert nvidia_gpu_models(driver) == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"]
    assert describe_gpus((1, 0), driver) == ("1: NVIDIA A100-SXM4-80GB, "
                                             "0: NVIDIA H100 80GB HBM3")
    assert describe_gpus((2,), driver) == "2: not seen by the driver"
    assert describe_gpus((), driver) == ""
    # no driver: ids are still reported, as unseen
    assert nvidia_gpu_models(tmp_path / "none") == []
    assert describe_gpus((0,), tmp_path / "none") == "0: not seen by the driver"
    # an unreadable information file still counts as a GPU
    (tmp_path / "gpus" / "0000:ff:00.0").mkdir()
    assert nvidia_gpu_models(driver)[-1] == "unknown NVIDIA GPU"
