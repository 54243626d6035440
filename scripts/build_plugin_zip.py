#!/usr/bin/env python3
"""Build the QGIS plugin zip ("Plugins > Install from ZIP").

The zip holds one folder, ``hadcore_qgis/``: the plugin (``qgis_plugin/hadcore_qgis``) and, in
``hadcore_qgis/_vendor/hadcore``, a copy of the hadcore core library, used only when QGIS's Python has no
hadcore installed. The core needs numpy, scipy and scikit-learn in QGIS's Python (torch for the deep
detectors); it never needs rasterio or geopandas.

    python scripts/build_plugin_zip.py                 # -> dist/hadcore_qgis-<version>.zip
    python scripts/build_plugin_zip.py -o my.zip --no-vendor
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "qgis_plugin" / "hadcore_qgis"
LIBRARY = REPO / "hadcore"
SKIP_DIRS = {"__pycache__", "_vendor", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def _version() -> str:
    text = (LIBRARY / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise SystemExit("build_plugin_zip: no __version__ in hadcore/__init__.py")
    return m.group(1)


def _files(root: Path):
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS for part in rel.parts) or path.suffix in SKIP_SUFFIXES or not path.is_file():
            continue
        yield path, rel


def build(out: Path, vendor: bool = True) -> Path:
    version = _version()
    meta = (PLUGIN / "metadata.txt").read_text(encoding="utf-8")
    meta = re.sub(r"^version=.*$", f"version={version}", meta, flags=re.M)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path, rel in _files(PLUGIN):
            arc = f"hadcore_qgis/{rel.as_posix()}"
            if rel.as_posix() == "metadata.txt":
                z.writestr(arc, meta)
            else:
                z.write(path, arc)
        if vendor:
            for path, rel in _files(LIBRARY):
                z.write(path, f"hadcore_qgis/_vendor/hadcore/{rel.as_posix()}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=None, help="zip to write (default dist/hadcore_qgis-VERSION.zip)")
    ap.add_argument("--no-vendor", action="store_true", help="do not ship the hadcore library in the zip")
    args = ap.parse_args(argv)
    out = args.output or REPO / "dist" / f"hadcore_qgis-{_version()}.zip"
    build(out, vendor=not args.no_vendor)
    with zipfile.ZipFile(out) as z:
        n = len(z.namelist())
    print(f"{out} ({n} files, {out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
