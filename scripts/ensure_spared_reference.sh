#!/usr/bin/env bash
# Make sure SpaRED's own library (spared==2.2.1) is installed in a virtual environment of its own,
# the reference the SpaRED-exact tests compare `data process` against. Prints the venv's python.
#
# Idempotent: when the venv exists and its stamp matches the pinned versions below it prints the
# path and exits 0 at once. pip only (PyPI plus the machine's configured wheel folders).
#
# Pins: spared==2.2.1 declares no dependencies, so the ones it imports are listed here, with the
# versions SpaRED pins where they change results:
#   squidpy==1.2.3  its spatial_neighbors graph (SpaRED's environment; stored transposed compared
#                   with squidpy >= 1.4, which changes the adaptive median filter's windows)
#   combat==0.3.3   pyComBat, SpaRED's batch correction
# numpy < 2 and the libraries of the same era, because squidpy 1.2.3 predates numpy 2.
# torch is needed only because spared's modules import it at the top (CPU wheel). torchvision
# is not installed: PyPI's build needs CUDA torch, and spared uses it only for image encoders;
# the reference driver (tests/datasets/spared_reference/driver.py) gives it an empty stand-in.
#
# Environment:
#   SPARED_REFERENCE_VENV   venv folder (default <repo>/.venv-spared; ignored by git)
#   SPARED_REFERENCE_PYTHON interpreter to build it with (default python3.11)
# Exit status: 0 installed (path of its python on stdout); 1 it could not be installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SPARED_REFERENCE_VENV:-$ROOT/.venv-spared}"
PY="${SPARED_REFERENCE_PYTHON:-python3.11}"

PINS=(
  "spared==2.2.1"
  "combat==0.3.3"
  "numpy==1.26.4"
  "pandas==2.1.4"
  "scipy==1.11.4"
  "scikit-learn==1.3.2"
  "anndata==0.10.9"
  "scanpy==1.9.8"
  "numba==0.59.1"
  "llvmlite==0.42.0"
  "dask==2024.2.1"
  "xarray==2024.2.0"
  "zarr==2.17.2"
  "matplotlib==3.8.4"
  "torch==2.13.0"
  "lightning==2.2.5"
  "torch_geometric==2.5.3"
  "positional-encodings==6.0.3"
  "wget==3.2"
  "tqdm"
  # lightning 2.2 imports pkg_resources, gone from setuptools >= 80; torch 2.13 wants >= 77.0.3
  "setuptools==79.0.1"
  # imported at the top of spared's modules (readers, plotting) that the reference loads
  "plotly==5.22.0" "seaborn==0.13.2" "opencv-python-headless==4.9.0.80" "pyzipper==0.3.6" "requests"
  # squidpy 1.2.3's own dependencies (it is installed without them, see below)
  "aiohttp" "dask-image" "docrep" "leidenalg" "matplotlib-scalebar" "omnipath" "statsmodels"
  "tifffile" "validators" "networkx" "scikit-image<0.23" "fsspec" "cycler" "Pillow"
)
# squidpy 1.2.3 declares numba<0.56, which has no build for Python 3.11; its code runs with the
# numba pinned above, so it is installed without its declared dependencies (listed in PINS).
SQUIDPY="squidpy==1.2.3"
STAMP="$VENV/.spared-reference-stamp"
WANT="$(printf '%s\n' "${PINS[@]}" "$SQUIDPY")"

say() { printf '[ensure_spared_reference] %s\n' "$*" >&2; }

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "$VENV/bin/python"
  exit 0
fi

command -v "$PY" >/dev/null || { say "expected $PY on PATH, found none"; exit 1; }
say "building $VENV (spared==2.2.1 and its pinned dependencies)"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade "pip<25" wheel >&2
"$VENV/bin/python" -m pip install -q "${PINS[@]}" >&2 || { say "pip could not install the pins"; exit 1; }
"$VENV/bin/python" -m pip install -q --no-deps "$SQUIDPY" >&2 || { say "pip could not install $SQUIDPY"; exit 1; }
"$VENV/bin/python" - <<'EOF' >&2 || { say "the reference imports failed"; exit 1; }
import importlib.metadata as md
for name, want in (("spared", "2.2.1"), ("squidpy", "1.2.3"), ("combat", "0.3.3")):
    found = md.version(name)
    if found != want:
        raise SystemExit(f"expected {name}=={want}, found {found}")
EOF
printf '%s' "$WANT" > "$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"
echo "$VENV/bin/python"
