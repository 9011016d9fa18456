"""The ``spared-bench`` command line."""

import sys

from evaluator.cli.app import cli, main

__all__ = ["cli", "main", "run"]


def run() -> None:
    """Console-script entry point: exit with ``main()``'s status."""
    sys.exit(main())
