"""The web app's own settings (rate limits, upload and log caps, cache size), from the environment.

The store, the queue and the image size limit come from ``evaluator.core.settings.Settings``
(``DATABASE_URL``, ``QUEUE_URL``, ``SPARED_BENCH_MAX_IMAGE_MB``); this adds what only the web app
needs. Rate limits are token buckets held per process: with ``serve --workers N`` a client
gets up to N times the configured rate (each process counts on its own).
"""

from __future__ import annotations

import ipaddress
import os

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evaluator.core.errors import BenchError

_ENV_VARIABLES: dict[str, str] = {
    "read_rate_per_s": "SPARED_LEADERBOARD_READ_RATE",
    "read_burst": "SPARED_LEADERBOARD_READ_BURST",
    "write_rate_per_min": "SPARED_LEADERBOARD_WRITE_RATE",
    "write_burst": "SPARED_LEADERBOARD_WRITE_BURST",
    "max_upload_mb": "SPARED_LEADERBOARD_MAX_UPLOAD_MB",
    "log_cap_bytes": "SPARED_LEADERBOARD_LOG_CAP_BYTES",
    "cache_entries": "SPARED_LEADERBOARD_CACHE_ENTRIES",
    "trusted_proxies": "SPARED_LEADERBOARD_TRUSTED_PROXIES",
}


class LeaderboardConfig(BaseModel):
    """Settings of the web app; ``from_env()`` reads ``SPARED_LEADERBOARD_*`` variables.

    - ``read_rate_per_s`` / ``read_burst``: GET requests per client (0 turns the limit off).
    - ``write_rate_per_min`` / ``write_burst``: POST requests per client (submissions, admin).
    - ``max_upload_mb``: largest submission upload; defaults to ``SPARED_BENCH_MAX_IMAGE_MB``.
    - ``log_cap_bytes``: the tail of a job's log shown to its owner.
    - ``cache_entries``: views, pages and plots kept per process (least recently used out).
    - ``trusted_proxies``: addresses or networks (``10.0.0.0/8``) of the reverse proxies in
      front of the app, comma-separated in the variable. ``X-Forwarded-For`` is read only on
      a connection from one of them, and the client is its last hop that is not a trusted
      proxy (a client's own, forged hops come before it). Empty (the default): the header is
      ignored and the client is the connection's address.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    read_rate_per_s: float = Field(default=50.0, ge=0)
    read_burst: int = Field(default=200, ge=1)
    write_rate_per_min: float = Field(default=6.0, ge=0)
    write_burst: int = Field(default=10, ge=1)
    max_upload_mb: float | None = Field(default=None, gt=0)
    log_cap_bytes: int = Field(default=64 * 1024, ge=256)
    cache_entries: int = Field(default=512, ge=8)
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as error:
                raise ValueError(f"expected IP addresses or networks, found {item!r}") from error
        return value

    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``trusted_proxies`` as networks."""
        return tuple(ipaddress.ip_network(v, strict=False) for v in self.trusted_proxies)

    @classmethod
    def from_env(cls) -> LeaderboardConfig:
        """Read the variables; raises ``BenchError`` naming one that does not parse."""
        values: dict[str, object] = {}
        for key, variable in _ENV_VARIABLES.items():
            value = os.environ.get(variable)
            if value:
                values[key] = value
        try:
            return cls(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "?"
            raise BenchError(f"environment variable {_ENV_VARIABLES.get(field, field)}: expected "
                             f"{error['msg'].lower()}, found {values.get(field)!r}") from exc
