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
