"""What an image must be to run as a job, read from its config alone (no engine needed).

The runner checks it before creating anything (``image_invalid``) and intake before accepting
an upload, so an author hears about it at once.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

IMAGE_VOLUMES_ALLOWED = ("/output", "/tmp")
"""``VOLUME`` lines an image may have: the runner mounts its own size-limited /output and /tmp
there. Any other ``VOLUME`` makes the image invalid."""


def image_problem(config: Mapping[str, Any]) -> str | None:
    """Why an image cannot run as a job, from its config (``Config`` of an inspect, ``config``
    of a saved image's JSON), or None.

    No command (neither ``ENTRYPOINT`` nor ``CMD``), and any ``VOLUME`` but /output and /tmp:
    an image volume would be an unmetered folder in the engine's data root, and one at or under
    /input cannot be mounted at all. Refused rather than covered by a tmpfs because a tmpfs
    would hide the files the image put there, silently.
    """
    if not (config.get("Entrypoint") or config.get("Cmd")):
        return ("expected the image to name the program to run (ENTRYPOINT or CMD), found "
                "neither; add e.g. CMD [\"python\", \"/app/predict.py\"]")
    volumes = config.get("Volumes") or {}
    if not isinstance(volumes, Mapping):
        return "expected the image's Volumes to be a mapping, found something else"
    cleaned = sorted(posixpath.normpath(str(v)) for v in volumes)
    extra = [v for v in cleaned if v not in IMAGE_VOLUMES_ALLOWED]
    if extra:
        shown = ", ".join(v[:100] for v in extra[:5])
        return (f"expected no VOLUME in the image but /output or /tmp (jobs get no volumes: "
                f"their only writable places are /output and /tmp), found VOLUME {shown}; "
                "remove the VOLUME line (one inherited from a base image needs another base)")
    return None
