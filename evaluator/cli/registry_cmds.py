"""``spared-bench registry``: run the submission registry (Debian's ``docker-registry``) with
this service as its token authority."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from evaluator.core.errors import BenchError
from evaluator.core.fsio import atomic_path
from evaluator.core.settings import Settings
from evaluator.orchestrator.registry import TokenSigner, registry_config


@click.group("registry")
def registry_group() -> None:
    """The submission registry authors push images to (only missing layers travel)."""


def write_registry_config(settings: Settings, *, listen: str, realm: str) -> Path:
    """Write the registry's configuration and trusted certificate under
    ``$SPARED_BENCH_HOME/registry`` (atomically); return the configuration's path."""
    folder = settings.home / "registry"
    signer = TokenSigner.load_or_create(settings.registry_key_path)
    certificate = folder / "token-cert.pem"
    with atomic_path(certificate) as temp:
        temp.write_bytes(signer.certificate_pem())
    config = folder / "config.yml"
    text = registry_config(storage_dir=folder / "storage", listen=listen, realm=realm,
                           certificate_path=certificate)
    with atomic_path(config) as temp:
        temp.write_text(text)
    return config


@registry_group.command("serve")
@click.option("--listen", default="127.0.0.1:5000", show_default=True,
              help="Address the registry listens on (host:port).")
@click.option("--realm", default=None,
              help="The web app's token endpoint as clients reach it [default: "
                   "SPARED_BENCH_PUBLIC_URL + /api/registry/token].")
@click.option("--config-only", is_flag=True,
              help="Write the configuration and print its path; do not start the registry.")
def serve_command(listen: str, realm: str | None, config_only: bool) -> None:
    """Run the registry in the foreground with this service's token key.

    Images are stored under $SPARED_BENCH_HOME/registry/storage. The web app signs tokens
    with the same key (SPARED_BENCH_REGISTRY_KEY) and needs SPARED_BENCH_REGISTRY_URL set to
    this registry's address.
    """
    settings = Settings.from_env()
    if realm is None:
        if not settings.public_url:
            raise BenchError("--realm: expected the web app's token endpoint (or "
                             "SPARED_BENCH_PUBLIC_URL set), found neither")
        realm = settings.public_url.rstrip("/") + "/api/registry/token"
    config = write_registry_config(settings, listen=listen, realm=realm)
    if config_only:
        click.echo(str(config))
        return
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise BenchError("registry: expected Debian's docker-registry installed, found none "
                         "(bash scripts/ensure_registry.sh, or apt-get install docker-registry)")
    click.echo(f"registry on http://{listen}, tokens from {realm}", err=True)
    os.execv(binary, [binary, "serve", str(config)])


COMMANDS = [registry_group]
