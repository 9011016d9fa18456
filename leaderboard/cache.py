"""A small thread-safe LRU cache of computed views, rendered pages and plots.

Keys include the store's version (``data.store_version``), so a new result, a hidden entry or a
newly published release changes the key and the stale value simply ages out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class ViewCache:
    """Least-recently-used mapping with ``get_or_compute``; counts hits and misses."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        """The cached value, or None."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, value: Any) -> None:
        """Store a value, evicting the least recently used beyond ``max_entries``."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value, else ``compute()`` stored under ``key`` (computed outside the lock:
        two threads missing together both compute, and the second write wins)."""
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value)
        return value

    def clear(self) -> None:
        """Drop everything (admin actions that change what is shown)."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
