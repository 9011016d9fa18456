"""CLI commands of the completion layer: ``complete``."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
