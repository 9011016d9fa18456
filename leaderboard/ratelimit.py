"""A token-bucket rate limiter per client and kind of request, held in this process's memory.

Each (client, kind) has a bucket of ``burst`` tokens refilled at ``rate_per_s``; a request takes
one token or is refused with the time until the next one. With ``serve --workers N`` every
process keeps its own buckets, so N processes allow up to N times the rate (``config``).
Idle buckets are dropped once the table grows past ``max_clients``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Per-key token buckets; ``take(key)`` returns 0 when allowed, else seconds to wait."""

    def __init__(self, rate_per_s: float, burst: int, *, max_clients: int = 10_000) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when the rate is 0 (no limit)."""
        return self.rate_per_s > 0

    def take(self, key: str, *, now: float | None = None) -> float:
        """Take one token for ``key``: 0.0 when granted, else the seconds until one is free."""
        if not self.enabled:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_clients:
                    self._evict(now)
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst),
                                bucket.tokens + (now - bucket.updated) * self.rate_per_s)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate_per_s

    def _evict(self, now: float) -> None:
        """Drop buckets that are full again (their clients have been idle long enough)."""
        full_after_s = self.burst / self.rate_per_s
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full_after_s]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_clients:
            self._buckets.clear()
