"""Settings from the environment, in one place."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "spared-bench"


class Settings(BaseModel):
    """Runtime settings, read from environment variables by ``Settings.from_env()``.

    Variables:
    - ``SPARED_BENCH_HOME``: root folder for processed datasets, releases, caches and the
      embedded database (default ``$XDG_DATA_HOME/spared-bench`` or
      ``~/.local/share/spared-bench``).
    - ``SPARED_BENCH_SEED``: default seed for synthetic data and training (default 0).
    - ``SPARED_BENCH_PROGRESS``: ``0`` turns progress bars off (default on when stderr is a TTY
      or when set to ``1``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=_default_home)
    seed: int = 0
    progress: bool | None = None

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from ``os.environ``; unset variables take their defaults."""
        values: dict[str, object] = {}
        if home := os.environ.get("SPARED_BENCH_HOME"):
            values["home"] = Path(home).expanduser().resolve()
        if seed := os.environ.get("SPARED_BENCH_SEED"):
            values["seed"] = int(seed)
        if (progress := os.environ.get("SPARED_BENCH_PROGRESS")) is not None:
            values["progress"] = progress not in {"0", "false", "no", ""}
        return cls(**values)

    @property
    def processed_dir(self) -> Path:
        """Folder of processed dataset files, one ``<name>.h5ad`` each."""
        return self.home / "processed"

    @property
    def releases_dir(self) -> Path:
        """Folder of immutable releases, one sub-folder per release id."""
        return self.home / "releases"

    @property
    def cache_dir(self) -> Path:
        """Folder of caches (e.g. trained completion models)."""
        return self.home / "cache"
