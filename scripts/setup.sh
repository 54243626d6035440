#!/usr/bin/env bash
# Create .venv with hadcore and everything its CLI, deep detectors and tests need (idempotent).
# torch is pinned to the CPU build 2.13.0 (pyproject's "torch" extra); a looser requirement pulls a
# multi-GB CUDA build.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HADCORE_VENV:-$REPO/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV with $($PY --version 2>&1)"
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -e "$REPO[cli,torch,test,dask]"
"$VENV/bin/python" -c "import hadcore, hadcore_cli, torch, rasterio; print('setup: hadcore', hadcore.__version__, '| numpy', __import__('numpy').__version__, '| torch', torch.__version__)"
