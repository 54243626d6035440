#!/usr/bin/env bash
# Build (once) a Debian chroot with a newer QGIS from Debian's own packages, for tests_qgis/.
#
#   scripts/setup_qgis_chroot.sh --qgis 3.40     # Debian 13 "trixie": QGIS 3.40 LTR, Python 3.13, numpy 2.2
#   scripts/setup_qgis_chroot.sh --qgis 3.44     # Debian "sid":      QGIS 3.44 LTR, Python 3.14, numpy 2.4
#
# The chroot lives in /var/lib/hadcore/qgis-chroots/<version>/ (HADCORE_CHROOTS sets the parent folder; outside
# the checkout so that nothing that walks the repository walks a Debian tree). Inside it:
# qgis, python3-qgis, qgis-providers, Debian's numpy/scipy/scikit-learn/torch and the product readers
# (python3-rasterio, -h5py, -netcdf4, all linked to the chroot's own GDAL/HDF5), xvfb for the desktop test, and a
# venv /opt/hadcore-venv (--system-site-packages) with pytest, pytest-qgis and hadcore (--no-deps -e, from the
# repository bind-mounted at its own path). Torch comes from Debian (python3-torch): the CPU wheel on this
# machine's disk is for Python 3.11 only.
#
# Re-runs reuse a built chroot: a stamp file records the recipe it was built from; a changed recipe (package list,
# suite) rebuilds it. Needs root (debootstrap, chroot, mount). The recipe is measured in ../shared/notes/qgis.md.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QGIS_VER=""
while [ $# -gt 0 ]; do
    case "$1" in
        --qgis) QGIS_VER="$2"; shift 2 ;;
        --qgis=*) QGIS_VER="${1#--qgis=}"; shift ;;
        *) echo "setup_qgis_chroot: unknown argument $1 (use --qgis 3.40|3.44)" >&2; exit 2 ;;
    esac
done
case "$QGIS_VER" in
    3.40) SUITE=trixie ;;
    3.44) SUITE=sid ;;
    *) echo "setup_qgis_chroot: --qgis must be 3.40 or 3.44 (3.22 is the host's Debian 12: scripts/setup_qgis_env.sh)" >&2; exit 2 ;;
esac
if [ "$(id -u)" != "0" ]; then
    echo "setup_qgis_chroot: needs root (debootstrap, chroot, mount)" >&2
    exit 2
fi

ROOT="${HADCORE_CHROOTS:-/var/lib/hadcore/qgis-chroots}/$QGIS_VER"
MIRROR="${HADCORE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# sid's Release file on the mirror has expired (Valid-Until in the past): apt must not reject it
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3 -o APT::Install-Recommends=false)
PACKAGES=(qgis python3-qgis qgis-providers python3-numpy python3-scipy python3-sklearn python3-torch
          python3-rasterio python3-h5py python3-netcdf4 python3-venv python3-pip xvfb xauth
          ca-certificates fonts-dejavu-core)
VENV=/opt/hadcore-venv
PIP_PKGS=("pytest>=8,<9" "pytest-qgis==5.0.2")
RECIPE="suite=$SUITE mirror=$MIRROR packages=${PACKAGES[*]} pip=${PIP_PKGS[*]} venv=$VENV"
STAMP="$ROOT/.hadcore-chroot-ready"

# shellcheck source=scripts/qgis_chroot_lib.sh
. "$REPO/scripts/qgis_chroot_lib.sh"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ]; then
    echo "setup_qgis_chroot: QGIS $QGIS_VER chroot ready ($ROOT)"
else
    t0=$(date +%s)
    if [ -d "$ROOT" ]; then
        echo "setup_qgis_chroot: rebuilding $ROOT (recipe changed or an earlier build did not finish)"
        chroot_umount "$ROOT"
        # a bind mount of the repository is on the same filesystem: --one-file-system would not stop rm there
        if chroot_mounted "$ROOT"; then
            echo "setup_qgis_chroot: $ROOT still has mounts; not removing it" >&2; exit 1
        fi
        rm -rf --one-file-system "$ROOT"
    fi
    if ! command -v debootstrap >/dev/null; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
    fi
    mkdir -p "$ROOT"
    echo "setup_qgis_chroot: debootstrap $SUITE into $ROOT"
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" > "$ROOT.debootstrap.log" 2>&1 || {
        tail -20 "$ROOT.debootstrap.log" >&2; echo "setup_qgis_chroot: debootstrap failed" >&2; exit 1; }
    t1=$(date +%s)
    chroot_mount "$ROOT" "$REPO"
    trap 'chroot_umount "$ROOT"' EXIT
    echo "setup_qgis_chroot: apt-get install ${PACKAGES[*]}"
    chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -q > "$ROOT.apt.log" 2>&1
    chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -q \
        "${PACKAGES[@]}" >> "$ROOT.apt.log" 2>&1 || {
        tail -30 "$ROOT.apt.log" >&2; echo "setup_qgis_chroot: apt-get install failed" >&2; exit 1; }
    chroot "$ROOT" apt-get clean
    # apt regenerated the chroot's CA bundle; pip there needs this machine's (its proxy's certificates)
    cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
    t2=$(date +%s)
    chroot "$ROOT" /usr/bin/python3 -m venv --system-site-packages "$VENV"
    chroot "$ROOT" "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${PIP_PKGS[@]}"
    echo "$RECIPE" > "$STAMP"
    echo "setup_qgis_chroot: built in $(( $(date +%s) - t0 )) s (debootstrap $((t1 - t0)) s, apt $((t2 - t1)) s)"
fi

# hadcore itself: the repository is bind-mounted at its own path while tests run; (re)installed every time,
# cheap, so that a moved checkout is picked up
chroot_mount "$ROOT" "$REPO"
trap 'chroot_umount "$ROOT"' EXIT
# (setuptools in the venv so that the editable build needs no isolated environment, hence no download per run)
chroot "$ROOT" "$VENV/bin/python" -c "import setuptools.build_meta" 2>/dev/null \
    || chroot "$ROOT" "$VENV/bin/python" -m pip install --disable-pip-version-check -q "setuptools>=77" wheel
chroot "$ROOT" "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e "$REPO"
chroot "$ROOT" /usr/bin/env QT_QPA_PLATFORM=offscreen "$VENV/bin/python" - <<'PY'
import numpy, scipy, sklearn
from osgeo import gdal, gdal_array  # noqa: F401
import qgis.core
import hadcore
try:
    import torch
    tv = torch.__version__
except ImportError:
    tv = "not installed"
import sys
print(f"setup_qgis_chroot: ok: QGIS {qgis.core.Qgis.QGIS_VERSION}, Python {sys.version.split()[0]}, GDAL {gdal.__version__}, "
      f"numpy {numpy.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}, torch {tv}")
PY
