"""Hand-made ``docker save`` archives (legacy layout, loadable by a real engine)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """A tar of in-memory files (image archives for the intake tests)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()



def make_archive(*, arch: str = "amd64", os_name: str = "linux", nonce: str = "0",
                 layer_bytes: int = 16, tags: tuple[str, ...] = ("handmade:1",)
                 ) -> tuple[bytes, str]:
    """Return (archive bytes, image id) of a one-layer image with a file of ``layer_bytes``."""
    layer = tar_bytes({"data.bin": b"x" * layer_bytes, "nonce.txt": nonce.encode()})
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": arch, "os": os_name,
        "config": {"Cmd": ["/bin/true"], "Labels": {"nonce": nonce}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "test"}],
    }, sort_keys=True).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    layer_dir = hashlib.sha256(layer + b"dir").hexdigest()
    manifest = json.dumps([{"Config": f"{config_hex}.json", "RepoTags": list(tags),
                            "Layers": [f"{layer_dir}/layer.tar"]}]).encode()
    archive = tar_bytes({f"{config_hex}.json": config, f"{layer_dir}/layer.tar": layer,
                         f"{layer_dir}/VERSION": b"1.0", "manifest.json": manifest})
    return archive, f"sha256:{config_hex}"
