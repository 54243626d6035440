#!/usr/bin/env bash
# Run tests_qgis/ inside a real QGIS. Extra arguments go to pytest. Exits non-zero when a test fails or the
# environment is missing.
#
#   scripts/run_qgis_tests.sh -q                 # QGIS 3.22, Debian 12's (this machine), with .venv-qgis
#   scripts/run_qgis_tests.sh --qgis 3.40 -q     # QGIS 3.40 LTR in the Debian 13 chroot
#   scripts/run_qgis_tests.sh --qgis 3.44 -q     # QGIS 3.44 LTR in the Debian sid chroot
#
# 3.22 needs scripts/setup_qgis_env.sh first; 3.40 and 3.44 need scripts/setup_qgis_chroot.sh --qgis X
# (root: the tests run in the chroot, with the repository bind-mounted at its own path).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QGIS_VER=3.22
if [ "${1:-}" = "--qgis" ]; then QGIS_VER="${2:-}"; shift 2 || true
elif [[ "${1:-}" == --qgis=* ]]; then QGIS_VER="${1#--qgis=}"; shift; fi

# test paths given relative to the caller's folder (tests_qgis/test_x.py, tests_qgis/test_x.py::test_y) still
# name the same files after the cd below
args=()
for a in "$@"; do
    if [[ "$a" != -* && -e "${a%%::*}" ]]; then
        a="$(cd "$(dirname "${a%%::*}")" && pwd)/$(basename "$a")"
    fi
    args+=("$a")
done

case "$QGIS_VER" in
3.22)
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
    cd "$REPO/tests_qgis"
    "$VENV/bin/python" -m pytest -c "$REPO/tests_qgis/pytest.ini" ${args[@]+"${args[@]}"}
    ;;
3.40|3.44)
    ROOT="${HADCORE_CHROOTS:-/var/lib/hadcore/qgis-chroots}/$QGIS_VER"
    if [ ! -f "$ROOT/.hadcore-chroot-ready" ]; then
        echo "run_qgis_tests: no QGIS $QGIS_VER chroot at $ROOT; run scripts/setup_qgis_chroot.sh --qgis $QGIS_VER" >&2
        exit 2
    fi
    # shellcheck source=scripts/qgis_chroot_lib.sh
    . "$REPO/scripts/qgis_chroot_lib.sh"
    chroot_mount "$ROOT" "$REPO"
    PROFILE_IN="$(mktemp -d -p "$ROOT/tmp" hadcore-qgis-XXXXXX)"
    PROFILE="${PROFILE_IN#"$ROOT"}"
    trap 'rm -rf "$PROFILE_IN" "$REPO/tests_qgis/.qgis-settings"; chroot_umount "$ROOT"' EXIT
    envs=(PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen PYTHONUNBUFFERED=1
          PROJ_DATA=/usr/share/proj "OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}" "QGIS_CUSTOM_CONFIG_PATH=$PROFILE"
          "XDG_RUNTIME_DIR=$PROFILE" "TMPDIR=$PROFILE" "HADCORE_QGIS_VERSION=$QGIS_VER")
    for v in CI HADCORE_DATA HADCORE_SAVE_SCREENSHOTS HADCORE_QGIS_TORCH; do
        if [ -n "${!v:-}" ]; then envs+=("$v=${!v}"); fi
    done
    chroot "$ROOT" /usr/bin/env -i "${envs[@]}" /bin/sh -c 'cd "$1/tests_qgis" && shift && exec "$@"' sh "$REPO" \
        /opt/hadcore-venv/bin/python -m pytest -c "$REPO/tests_qgis/pytest.ini" ${args[@]+"${args[@]}"}
    ;;
*)
    echo "run_qgis_tests: --qgis must be 3.22, 3.40 or 3.44" >&2
    exit 2
    ;;
esac
