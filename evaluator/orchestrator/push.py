"""Push a local image to the service's registry, as ``docker push`` does (the engine sends only
the layers the registry lacks), for ``spared-bench submit IMAGE --server URL``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evaluator.core.errors import BenchError
from evaluator.orchestrator.registry import RegistryRef

__all__ = ["PushReport", "push_image", "repository_name"]


@dataclass(frozen=True)
class PushReport:
    """What a push did: the image by digest, and its layers sent or already there."""

    ref: RegistryRef
    layers_pushed: int
    layers_present: int


def repository_name(entry: str) -> str:
    """A registry repository component for an entry name (lowercase, ``[a-z0-9._-]``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", entry.lower()).strip("-")[:100].strip("-")
    return slug or "entry"


def push_image(client: Any, image: str, *, registry: str, namespace: str, token: str,
               entry: str, image_id: str,
               say: Callable[[str], None] = lambda _: None) -> PushReport:
    """Tag ``image`` as ``REGISTRY/NAMESPACE/ENTRY:v-<id>``, push it with the team ``token``
    and remove that tag again; return the pushed image by digest.

    The engine asks the registry which layers it holds and sends only the others (a
    second version of an entry sends only its changed layers). Raises ``BenchError`` naming
    the registry's answer when the push is refused.
    """
    repository = f"{registry}/{namespace}/{repository_name(entry)}"
    tag = "v-" + image_id.removeprefix("sha256:")[:12]
    client.images.get(image).tag(repository, tag)
    pushed: set[str] = set()
    present: set[str] = set()
    digest = None
    try:
        events = client.api.push(repository, tag, stream=True, decode=True,
                                 auth_config={"username": namespace, "password": token})
        for event in events:
            if not isinstance(event, dict):
                continue
            if event.get("error"):
                raise BenchError(f"push to {repository}: expected the registry to accept the "
                                 f"image, found: {str(event['error'])[:300]}")
            status, layer = str(event.get("status") or ""), str(event.get("id") or "")
            if status == "Pushed":
                pushed.add(layer)
                say(f"layer {layer}: sent")
            elif status == "Layer already exists":
                present.add(layer)
                say(f"layer {layer}: already in the registry")
            aux = event.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
    finally:
        # A tag left behind only costs a name on the author's engine.
        with contextlib.suppress(Exception):
            client.images.remove(f"{repository}:{tag}", noprune=True)
    if digest is None:
        raise BenchError(f"push to {repository}: expected the registry to answer the image's "
                         "digest, found none")
    return PushReport(RegistryRef.parse(f"{repository}@{digest}"), len(pushed), len(present))
