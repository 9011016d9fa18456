"""Naming a release: by id, unique id prefix or label, one rule for every store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

__all__ = ["describe_releases", "match_release"]


class _Labelled(Protocol):
    @property
    def release_id(self) -> str: ...

    @property
    def label(self) -> str | None: ...


_R = TypeVar("_R", bound=_Labelled)


def match_release(ref: str, releases: Sequence[_R]) -> list[_R]:
    """Return what ``ref`` names among ``releases`` (oldest first): the release of that id, else
    the one of that unique id prefix (≥ 6 characters), else the newest of that label.

    One release when ``ref`` names one; none or several otherwise (the caller says which exist).
    Serves the release store (manifests) and the service's store (published records) alike.
    """
    matches = [r for r in releases if r.release_id == ref]
    if not matches and len(ref) >= 6:
        matches = [r for r in releases if r.release_id.startswith(ref)]
    if not matches:
        matches = [r for r in releases if r.label == ref][-1:]
    return matches


def describe_releases(releases: Iterable[_Labelled]) -> list[str]:
    """``<id prefix> (<label>)`` of each release, for messages that list what exists."""
    return [f"{r.release_id[:12]} ({r.label or 'no label'})" for r in releases]
