#!/usr/bin/env bash
# Run tests_qgis/ inside Debian's QGIS with .venv-qgis (made by scripts/setup_qgis_env.sh).
# Extra arguments go to pytest. Exits non-zero when a test fails or the environment is missing.
#
#   scripts/setup_qgis_env.sh && scripts/run_qgis_tests.sh -q
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HADCORE_QGIS_VENV:-$REPO/.venv-qgis}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "run_qgis_tests: $VENV is missing; run scripts/setup_qgis_env.sh first" >&2
    exit 2
fi
if [ ! -x /usr/bin/qgis_process.bin ]; then
    echo "run_qgis_tests: QGIS is not installed (/usr/bin/qgis_process.bin); run scripts/setup_qgis_env.sh" >&2
    exit 2
fi

export QT_QPA_PLATFORM=offscreen
export PROJ_DATA="${PROJ_DATA:-/usr/share/proj}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# a private QGIS profile: never read or change the user's settings
HADCORE_QGIS_PROFILE="$(mktemp -d)"
# pytest-qgis keeps its QGIS settings in <rootdir>/.qgis-settings: removed after the run as well
trap 'rm -rf "$HADCORE_QGIS_PROFILE" "$REPO/tests_qgis/.qgis-settings"' EXIT
export QGIS_CUSTOM_CONFIG_PATH="$HADCORE_QGIS_PROFILE"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$HADCORE_QGIS_PROFILE}"

# test paths given relative to the caller's folder (tests_qgis/test_x.py, tests_qgis/test_x.py::test_y) still
# name the same files after the cd below
args=()
for a in "$@"; do
    if [[ "$a" != -* && -e "${a%%::*}" ]]; then
        a="$(cd "$(dirname "${a%%::*}")" && pwd)/$(basename "$a")"
    fi
    args+=("$a")
done

cd "$REPO/tests_qgis"
"$VENV/bin/python" -m pytest -c "$REPO/tests_qgis/pytest.ini" ${args[@]+"${args[@]}"}
