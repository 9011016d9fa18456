"""The ``spared-bench`` command line."""

from evaluator.cli.app import cli, main

__all__ = ["cli", "main", "run"]


def run() -> None:
    """Console-script entry point: exit with ``main()``'s status."""
    import sys

    sys.exit(main())
