#!/usr/bin/env bash
# Fresh machine -> every test. Installs what is missing (Debian's QGIS via apt, as root), then runs
#   1. tests/ in .venv (numpy 2.x, rasterio, torch CPU),
#   2. the algorithm core's tests in .venv-qgis (Debian's numpy 1.24 / scipy 1.10, as QGIS ships them),
#   3. tests_qgis/ inside real QGIS (processing.run, qgis_process, map rendering).
# Exits non-zero when any test fails. Extra arguments go to the first pytest run.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

bash scripts/setup.sh
bash scripts/setup_qgis_env.sh

echo "== tests/ (numpy $(.venv/bin/python -c 'import numpy; print(numpy.__version__)'))"
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"

echo "== core tests on numpy $(.venv-qgis/bin/python -c 'import numpy; print(numpy.__version__)') (Debian/QGIS)"
HADCORE_CORE_ONLY=1 .venv-qgis/bin/python -m pytest tests -q -p no:cacheprovider -p no:pytest_qgis -m "not cli"

echo "== tests_qgis/ (real QGIS)"
bash scripts/run_qgis_tests.sh -q -p no:cacheprovider
