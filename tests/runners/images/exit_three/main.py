"""A submission that fails: prints a reason to stderr and exits 3."""

import sys

print("loading weights ...")
print("model exploded: expected 128 genes, found 32", file=sys.stderr)
sys.exit(3)
