"""Run the benchmarks: ``python -m tests.benchmarks [--quick] [NAME ...]``.

NAME is a module suffix (``datasets`` runs ``bench_datasets.py``); none runs them all.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from tests.benchmarks.harness import BenchRow, format_table


def main(argv: list[str] | None = None) -> int:
    """Discover, run and print the benchmarks."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks")
    parser.add_argument("names", nargs="*", help="benchmark names (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    here = Path(__file__).parent
    available = sorted(
        m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )
    chosen = args.names or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        print(f"unknown benchmark(s) {unknown}: expected some of {available}", file=sys.stderr)
        return 2
    rows: list[BenchRow] = []
    for name in chosen:
        print(f"== running bench_{name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"tests.benchmarks.bench_{name}")
        new_rows = module.run(quick=args.quick)
        print(format_table(new_rows), file=sys.stderr, flush=True)
        rows.extend(new_rows)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
