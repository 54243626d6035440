"""Optional Python packages a detector needs, checked in QGIS's own Python before a run.

QGIS's Python often lacks them: scikit-learn is not in the Windows (OSGeo4W) or macOS builds, torch is in none.
The provider still lists every detector; a detector whose package is missing says so in its help and, when run,
stops with one line that names the package and the command that installs it into *this* QGIS's Python.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Iterable, List, Optional

#: import name -> the name pip installs it under, and the pip arguments (torch: the CPU build, a few hundred MB
#: instead of the multi-GB CUDA one)
PIP_NAMES = {
    "sklearn": ("scikit-learn", "scikit-learn"),
    "torch": ("torch", "torch --index-url https://download.pytorch.org/whl/cpu"),
    "h5py": ("h5py", "h5py"),
    "netCDF4": ("netCDF4", "netCDF4"),
    "rasterio": ("rasterio", "rasterio"),
}


def missing(modules: Iterable[str]) -> List[str]:
    """The import names among ``modules`` that this Python cannot import (checked without importing them)."""
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


def qgis_python(platform: Optional[str] = None, executable: Optional[str] = None,
                prefix: Optional[str] = None) -> str:
    """How to call the Python QGIS runs, on this platform, in a shell.

    Inside QGIS ``sys.executable`` is often QGIS itself, so it is not used as is: on Windows the OSGeo4W Shell's
    ``python``; on macOS the Python inside QGIS.app; elsewhere the interpreter of QGIS's Python prefix.
    """
    platform = platform or sys.platform
    executable = executable if executable is not None else (sys.executable or "")
    prefix = prefix if prefix is not None else sys.base_exec_prefix
    if platform.startswith("win"):
        return "python"  # in the OSGeo4W Shell that comes with QGIS
    base = os.path.basename(executable).lower()
    if base.startswith("python"):
        return executable
    if platform == "darwin":
        return os.path.join(prefix, "bin", "python3") if prefix else "/Applications/QGIS.app/Contents/MacOS/bin/python3"
    return os.path.join(prefix or "/usr", "bin", "python3")


#: import name -> Debian/Ubuntu package (their QGIS runs the system Python, where pip refuses to install: PEP 668)
APT_NAMES = {"sklearn": "python3-sklearn", "torch": "python3-torch", "h5py": "python3-h5py",
             "netCDF4": "python3-netcdf4", "rasterio": "python3-rasterio"}


def _externally_managed() -> bool:
    """Whether this Python's distribution forbids pip installs into it (PEP 668: Debian 12+, Ubuntu 23.04+)."""
    import sysconfig

    stdlib = sysconfig.get_path("stdlib") or ""
    return bool(stdlib) and os.path.isfile(os.path.join(stdlib, "EXTERNALLY-MANAGED"))


def install_command(modules: Iterable[str], platform: Optional[str] = None,
                    externally_managed: Optional[bool] = None, **kw) -> str:
    """The one command that installs ``modules`` (import names) into QGIS's Python.

    A distribution's own Python (Debian's QGIS) gets its packages with apt; any other with pip.
    """
    modules = list(modules)
    if externally_managed is None:
        externally_managed = (platform or sys.platform).startswith("linux") and _externally_managed()
    if externally_managed and all(m in APT_NAMES for m in modules):
        return "sudo apt install " + " ".join(APT_NAMES[m] for m in modules)
    args = " ".join(PIP_NAMES.get(m, (m, m))[1] for m in modules)
    python = qgis_python(platform, **kw)
    user = "" if (platform or sys.platform).startswith("win") else " --user"
    quoted = f'"{python}"' if " " in python else python
    return f"{quoted} -m pip install{user} {args}"


def message(detector: str, modules: Iterable[str], **kw) -> str:
    """One line: which packages ``detector`` needs that QGIS's Python lacks, and how to install them."""
    modules = list(modules)
    names = ", ".join(PIP_NAMES.get(m, (m, m))[0] for m in modules)
    where = "Windows: in the OSGeo4W Shell, " if (kw.get("platform") or sys.platform).startswith("win") else ""
    return (f"{detector} needs {names}, which QGIS's Python cannot import; {where}install with: "
            f"{install_command(modules, **kw)} (then restart QGIS)")
