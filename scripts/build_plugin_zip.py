#!/usr/bin/env python3
"""Build the QGIS plugin zip ("Plugins > Install from ZIP").

The zip holds one folder, ``hadcore_qgis/``: the plugin (``qgis_plugin/hadcore_qgis``), the repository's
``LICENSE`` and, in ``hadcore_qgis/_vendor/hadcore``, a copy of the hadcore core library, used only when
QGIS's Python has no hadcore installed. The core needs numpy, scipy and scikit-learn in QGIS's Python (torch
for the deep detectors); it never needs rasterio or geopandas.

The QGIS plugin repository accepts no binary file, so every file that is not UTF-8 text (judged by content:
a NUL byte or invalid UTF-8) is left out: the STAD default weights ``hadcore/weights/stad_default.pt`` are
not shipped (the vendored STAD looks for them in a user folder, see ``hadcore.detectors.stad``). The icon is
SVG text and stays. ``scripts/check_plugin_zip.py`` checks a built zip against the repository's rules.

    python scripts/build_plugin_zip.py                 # -> dist/hadcore_qgis-<version>.zip
    python scripts/build_plugin_zip.py -o my.zip --no-vendor
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "qgis_plugin" / "hadcore_qgis"
LIBRARY = REPO / "hadcore"
LICENSE = REPO / "LICENSE"
SKIP_DIRS = {"__pycache__", "_vendor", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def is_binary(data: bytes) -> bool:
    """True unless ``data`` is UTF-8 text without NUL bytes (the plugin repository takes no binary file)."""
    if b"\x00" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _version() -> str:
    text = (LIBRARY / "_version.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise SystemExit("build_plugin_zip: no __version__ in hadcore/_version.py")
    return m.group(1)


def _files(root: Path):
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS for part in rel.parts) or path.suffix in SKIP_SUFFIXES or not path.is_file():
            continue
        yield path, rel


def build(out: Path, vendor: bool = True, left_out: Optional[List[str]] = None) -> Path:
    """Write the plugin zip to ``out``; the archive names of the binary files left out are appended to
    ``left_out`` when it is given."""
    version = _version()
    meta = (PLUGIN / "metadata.txt").read_text(encoding="utf-8")
    meta = re.sub(r"^version=.*$", f"version={version}", meta, flags=re.M)
    skipped = left_out if left_out is not None else []
    out.parent.mkdir(parents=True, exist_ok=True)

    def add(z: zipfile.ZipFile, path: Path, arc: str) -> None:
        data = path.read_bytes()
        if is_binary(data):
            skipped.append(arc)
        else:
            info = zipfile.ZipInfo.from_file(path, arc)  # keeps the file's time and permissions
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)

    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path, rel in _files(PLUGIN):
            arc = f"hadcore_qgis/{rel.as_posix()}"
            if rel.as_posix() == "metadata.txt":
                z.writestr(arc, meta)
            elif rel.as_posix() != "LICENSE":  # the repository's LICENSE below
                add(z, path, arc)
        add(z, LICENSE, "hadcore_qgis/LICENSE")
        if vendor:
            for path, rel in _files(LIBRARY):
                add(z, path, f"hadcore_qgis/_vendor/hadcore/{rel.as_posix()}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=None, help="zip to write (default dist/hadcore_qgis-VERSION.zip)")
    ap.add_argument("--no-vendor", action="store_true", help="do not ship the hadcore library in the zip")
    args = ap.parse_args(argv)
    out = args.output or REPO / "dist" / f"hadcore_qgis-{_version()}.zip"
    left_out: List[str] = []
    build(out, vendor=not args.no_vendor, left_out=left_out)
    with zipfile.ZipFile(out) as z:
        n = len(z.namelist())
    for arc in left_out:
        print(f"left out (binary): {arc}")
    print(f"{out} ({n} files, {out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
