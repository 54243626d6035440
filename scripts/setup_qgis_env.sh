#!/usr/bin/env bash
# Install Debian's QGIS (headless use) and build .venv-qgis for the QGIS tests.
#
# Idempotent: apt-get runs only when a package is missing; the venv is created once and the pip
# installs are no-ops when satisfied. Run as root (or with sudo available) on Debian 12.
#
#   scripts/setup_qgis_env.sh            # then: scripts/run_qgis_tests.sh
#
# Why these pins (see docs/qgis.md): Debian's GDAL bindings are built against numpy 1.x, so
# numpy must stay < 2; scikit-learn 1.3.x is the newest line that installs on Debian's numpy 1.24 /
# scipy 1.10 without pulling new ones; hadcore is installed with --no-deps so that rasterio,
# geopandas, pyproj, shapely wheels (which crash inside QGIS) never enter this environment.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HADCORE_QGIS_VENV:-$REPO/.venv-qgis}"
PY=/usr/bin/python3

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
# python3-rasterio, -h5py, -netcdf4: the sensor-product readers inside QGIS (Debian builds link the same GDAL
# and HDF5 as QGIS; pip wheels bundle their own and crash there); xvfb and python3-sklearn: the desktop test
# (tests_qgis/test_desktop.py: QGIS's GUI under Xvfb, its system Python needs scikit-learn)
for pkg in qgis python3-qgis qgis-providers python3-rasterio python3-h5py python3-netcdf4 xvfb python3-sklearn; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup_qgis_env: installing ${missing[*]} (apt)"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "setup_qgis_env: QGIS packages already installed"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup_qgis_env: creating $VENV"
    if ! $PY -m venv --system-site-packages "$VENV"; then
        $SUDO apt-get install -y --no-install-recommends python3-venv
        $PY -m venv --system-site-packages "$VENV"
    fi
fi

"$VENV/bin/python" -m pip install --disable-pip-version-check -q \
    "numpy<2" "scikit-learn==1.3.2" "pytest>=7,<9" "pytest-qgis==5.0.2"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps -e "$REPO"

# torch for the deep detectors (KDAD, STAD), pinned to the CPU build 2.13.0 (a looser requirement pulls a
# multi-GB CUDA build). Skip with HADCORE_QGIS_TORCH=0 (the deep detectors then fail with a message in QGIS).
if [ "${HADCORE_QGIS_TORCH:-1}" != "0" ]; then
    if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
        "$VENV/bin/python" -m pip install --disable-pip-version-check -q "torch==2.13.0"
    fi
fi

"$VENV/bin/python" - <<'PY'
import numpy, scipy, sklearn
from osgeo import gdal, gdal_array  # noqa: F401  (fails with numpy >= 2)
import qgis.core
import hadcore
try:
    import torch
    tv = torch.__version__
except ImportError:
    tv = "not installed"
print(f"setup_qgis_env: ok: QGIS {qgis.core.Qgis.QGIS_VERSION}, GDAL {gdal.__version__}, numpy {numpy.__version__}, "
      f"scipy {scipy.__version__}, scikit-learn {sklearn.__version__}, hadcore {hadcore.__version__}, torch {tv}")
PY
