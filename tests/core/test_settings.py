"""Settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.core.errors import BenchError
from evaluator.core.settings import Settings
from evaluator.datasets.release import completion_config, completion_fingerprint


def test_defaults_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(tmp_path))
    monkeypatch.setenv("SPARED_BENCH_SEED", "7")
    monkeypatch.setenv("SPARED_BENCH_PROGRESS", "0")
    settings = Settings.from_env()
    assert settings.home == tmp_path.resolve()
    assert settings.seed == 7
    assert settings.show_progress() is False
    assert settings.releases_dir == tmp_path.resolve() / "releases"


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARED_BENCH_SEED", "seven")
    with pytest.raises(BenchError, match=r"SPARED_BENCH_SEED: expected .*found 'seven'"):
        Settings.from_env()
    monkeypatch.delenv("SPARED_BENCH_SEED")
    monkeypatch.setenv("SPARED_BENCH_SPACKLE_STEPS", "0")
    with pytest.raises(BenchError, match="SPARED_BENCH_SPACKLE_STEPS"):
        Settings.from_env()


def test_spackle_budget_is_part_of_the_release_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARED_BENCH_SPACKLE_STEPS", "20")
    short = completion_fingerprint(completion_config(Settings.from_env().spackle_max_steps))
    monkeypatch.setenv("SPARED_BENCH_SPACKLE_STEPS", "40")
    longer = completion_fingerprint(completion_config(Settings.from_env().spackle_max_steps))
    assert longer != short
    assert completion_fingerprint() == completion_fingerprint(completion_config(None))


def test_job_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from evaluator.contract import JobLimits
    from evaluator.runners import RunLimits

    defaults = JobLimits.from_settings(Settings())
    assert (defaults.time_limit_s, defaults.mem_limit_gb, defaults.cpus) == (3600.0, 16.0, 2.0)
    assert RunLimits.from_job_limits(defaults) == RunLimits()  # one set of defaults
    monkeypatch.setenv("SPARED_BENCH_JOB_TIME_LIMIT_S", "45")
    monkeypatch.setenv("SPARED_BENCH_JOB_MEM_LIMIT_GB", "3.5")
    monkeypatch.setenv("SPARED_BENCH_JOB_GPUS", "1 NVIDIA H200")
    limits = JobLimits.from_settings(Settings.from_env())
    assert (limits.time_limit_s, limits.mem_limit_gb, limits.gpus) == (45.0, 3.5, "1 NVIDIA H200")
    run = RunLimits.from_job_limits(limits)
    assert (run.timeout_s, run.mem_limit_gb) == (45.0, 3.5)
    assert run.published("1 NVIDIA H200") == limits
    monkeypatch.setenv("SPARED_BENCH_JOB_CPUS", "-1")
    with pytest.raises(BenchError, match="SPARED_BENCH_JOB_CPUS: expected"):
        Settings.from_env()
    # The Settings docstring names every variable it reads.
    from evaluator.core.settings import _ENV_VARIABLES

    doc = inspect.getdoc(Settings) or ""
    assert all(variable in doc for variable in _ENV_VARIABLES.values())


def test_spackle_trains_at_the_papers_budget_on_a_gpu(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    import evaluator.datasets.release as release
    from evaluator.completion.config import SpackleConfig
    from evaluator.core.devices import nvidia_gpu_visible

    gpus = tmp_path / "gpus"
    gpus.mkdir()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert not nvidia_gpu_visible(gpus)  # a driver folder listing no GPU
    (gpus / "0000:01:00.0").mkdir()
    assert nvidia_gpu_visible(gpus)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not nvidia_gpu_visible(gpus)  # every GPU hidden from this process
    assert not nvidia_gpu_visible(tmp_path / "no-driver")

    for gpu, budget, steps, expected in [
        (True, "auto", None, SpackleConfig.paper()),
        (False, "auto", None, SpackleConfig()),
        (False, "paper", None, SpackleConfig.paper()),
        (True, "cpu", None, SpackleConfig()),
        (True, "auto", 20, SpackleConfig(max_steps=20)),  # an explicit budget wins
    ]:
        monkeypatch.setattr(release, "nvidia_gpu_visible", lambda gpu=gpu: gpu)
        settings = Settings(spackle_budget=budget, spackle_max_steps=steps)
        assert release.completion_from_settings(settings) == expected
    assert SpackleConfig.paper().max_steps == 10_000 and SpackleConfig.paper().n_neighbors == 18
    # The budget is part of the release id: a GPU-built release is another release.
    assert (release.completion_fingerprint(SpackleConfig.paper())
            != release.completion_fingerprint(SpackleConfig()))
    monkeypatch.setenv("SPARED_BENCH_SPACKLE_BUDGET", "fast")
    with pytest.raises(BenchError, match="SPARED_BENCH_SPACKLE_BUDGET"):
        Settings.from_env()


def test_worker_cache_size_and_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(tmp_path))
    assert Settings.from_env().worker_cache_bytes == 100 * 10**9
    monkeypatch.setenv("SPARED_BENCH_WORKER_CACHE_GB", "2.5")
    settings = Settings.from_env()
    assert settings.worker_cache_bytes == 2_500_000_000
    assert settings.worker_cache_dir == tmp_path.resolve() / "worker-cache"
    monkeypatch.setenv("SPARED_BENCH_WORKER_CACHE_GB", "0")
    with pytest.raises(BenchError, match="SPARED_BENCH_WORKER_CACHE_GB"):
        Settings.from_env()
