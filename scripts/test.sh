#!/usr/bin/env bash
# Fresh machine -> every test. Installs what is missing (Debian's QGIS via apt, as root), then runs
#   1. tests/ in .venv (numpy 2.x, rasterio, torch CPU),
#   2. the algorithm core's tests in .venv-qgis (Debian's numpy 1.24 / scipy 1.10, as QGIS ships them),
#   3. tests_qgis/ inside real QGIS, once per QGIS version: 3.22 (Debian 12, this machine), 3.40 LTR (Debian 13
#      chroot) and 3.44 LTR (Debian sid chroot); HADCORE_QGIS_VERSIONS="3.22 3.40" picks fewer.
# The two chroots are built in the background while 1. and 2. run (mostly downloads and dpkg); re-runs reuse
# them (scripts/setup_qgis_chroot.sh). Exits non-zero when any test fails. Extra arguments go to the first
# pytest run.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
VERSIONS="${HADCORE_QGIS_VERSIONS:-3.22 3.40 3.44}"
LOGS="$(mktemp -d)"
T0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }

bash scripts/setup_qgis_env.sh
if [ "$VERSIONS" != "3.22" ] && ! command -v debootstrap >/dev/null; then
    # here, not in the two parallel chroot builds, which would race for apt's lock
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi
declare -A BUILD_PID=()
for v in $VERSIONS; do
    if [ "$v" != "3.22" ]; then
        bash scripts/setup_qgis_chroot.sh --qgis "$v" > "$LOGS/chroot-$v.log" 2>&1 &
        BUILD_PID[$v]=$!
    fi
done
bash scripts/setup.sh

stamp "tests/ (numpy $(.venv/bin/python -c 'import numpy; print(numpy.__version__)'))"
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"

stamp "core tests on numpy $(.venv-qgis/bin/python -c 'import numpy; print(numpy.__version__)') (Debian/QGIS)"
HADCORE_CORE_ONLY=1 .venv-qgis/bin/python -m pytest tests -q -p no:cacheprovider -p no:pytest_qgis -m "not cli"

status=0
for v in $VERSIONS; do
    if [ -n "${BUILD_PID[$v]:-}" ]; then
        stamp "waiting for the QGIS $v chroot"
        if ! wait "${BUILD_PID[$v]}"; then
            cat "$LOGS/chroot-$v.log"
            echo "test.sh: building the QGIS $v chroot failed" >&2
            exit 1
        fi
        tail -n 2 "$LOGS/chroot-$v.log"
    fi
    stamp "tests_qgis/ in real QGIS $v"
    bash scripts/run_qgis_tests.sh --qgis "$v" -q -p no:cacheprovider || status=1
done
stamp "done (exit $status)"
exit $status
