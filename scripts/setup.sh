#!/usr/bin/env bash
# Create .venv with hadcore and everything its CLI, deep detectors and tests need (idempotent).
# torch is pinned here to the CPU build 2.13.0 (pyproject's "torch" extra only sets a lower bound, so that
# users keep their own torch); a looser requirement pulls a multi-GB CUDA build. Installed first, so that the
# extra is already satisfied.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HADCORE_VENV:-$REPO/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV with $($PY --version 2>&1)"
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
"$VENV/bin/python" -m pip install --disable-pip-version-check -q "torch==2.13.0"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -e "$REPO[torch,test,dask,xarray,plots]"
"$VENV/bin/python" -c "import hadcore, hadcore_cli, torch, rasterio; print('setup: hadcore', hadcore.__version__, '| numpy', __import__('numpy').__version__, '| torch', torch.__version__)"
