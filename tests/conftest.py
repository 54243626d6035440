"""Shared fixtures: the real benchmark scenes of ../shared/data and small crops of them.

Tests needing an optional dependency (torch, QGIS) are skipped when it is missing locally, but fail when
``CI=true``: CI must run everything.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("HADCORE_DATA", REPO.parent / "shared" / "data"))
SAMPLE_DIR = REPO / "sample_data"
ON_CI = os.environ.get("CI", "").lower() == "true"

# Test modules that need the CLI extras (rasterio, geopandas, click) or the packaging tools (bandit, for the
# plugin ZIP, which does not depend on numpy's version). With HADCORE_CORE_ONLY=1 the others
# run in an environment holding only the core's dependencies (Debian's numpy 1.24, as QGIS ships); single
# tests elsewhere that need the extras are marked ``cli`` and deselected there with -m "not cli".
CLI_TEST_MODULES = ["test_io.py", "test_vectorize.py", "test_cli.py", "test_distributed.py", "test_stream_io.py",
                    "test_products_cli.py", "test_api_xarray.py", "test_plugin_zip.py",
                    "test_detection_spectra.py", "test_spectra_cli.py"] + sorted(p.name for p in Path(__file__).parent.glob("test_product_*.py"))
if os.environ.get("HADCORE_CORE_ONLY") == "1":
    collect_ignore = CLI_TEST_MODULES


def require(module: str):
    """Import ``module`` or skip (locally) / fail (on CI)."""
    try:
        return __import__(module)
    except ImportError as exc:
        if ON_CI:
            pytest.fail(f"{module} is required on CI: {exc}")
        pytest.skip(f"{module} not installed")


@functools.lru_cache(maxsize=None)
def _load(name: str):
    path = DATA_DIR / f"{name}.npz"
    if not path.exists():
        if ON_CI:
            raise FileNotFoundError(f"benchmark scene missing on CI: {path}")
        pytest.skip(f"benchmark data not found at {DATA_DIR}")
    with np.load(path) as z:
        return z["cube"].astype(np.float32), z["gt"].astype(np.uint8)


def load_scene(name: str):
    """(cube float32 (H, W, B), gt uint8 (H, W)) of a shared scene; copies, safe to modify."""
    cube, gt = _load(name)
    return cube.copy(), gt.copy()


def manifest():
    path = DATA_DIR / "MANIFEST.tsv"
    if not path.exists():
        pytest.skip(f"benchmark data not found at {DATA_DIR}")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


SCENES = [
    "abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1",
    "abu-urban-2", "sandiego-lren", "hydice-162", "pavia-100",
]


@pytest.fixture(scope="session")
def airport():
    """abu-airport-1, the whole 100 x 100 x 205 scene."""
    return load_scene("abu-airport-1")


@pytest.fixture(scope="session")
def small_crop():
    """A 40 x 40 crop of abu-urban-1 (67 anomaly pixels in the scene) with its ground truth, 30 bands.

    Large enough for every detector's windows, small enough for brute-force references.
    """
    cube, gt = load_scene("abu-urban-1")
    # the crop containing the most anomaly pixels
    best, where = -1, (0, 0)
    for r in range(0, 61, 10):
        for c in range(0, 61, 10):
            n = int(gt[r:r + 40, c:c + 40].sum())
            if n > best:
                best, where = n, (r, c)
    r, c = where
    return cube[r:r + 40, c:c + 40, ::7].copy(), gt[r:r + 40, c:c + 40].copy()


def streamed_in_blocks(det, cube, max_blocks=10**6, max_mb=1024.0):
    """``engine.run`` of ``det`` over ``cube`` under the smallest budget (MB, below ``max_mb``) the planner
    accepts with several blocks, at most ``max_blocks`` (fine steps: a small scene has a narrow window of
    budgets): (scores, run info)."""
    import hadcore
    from hadcore import engine

    for mem_mb in np.arange(8.0, max_mb, 0.125):
        try:
            plan = engine.plan_blocks(det, cube.shape, int(mem_mb * engine.MB), needs_stats=True, read_bytes=0)
        except hadcore.errors.InputError:
            continue
        if 1 < plan.n_blocks <= max_blocks:
            break
    sink, info = engine.run(det, engine.ArraySource(cube), mem_limit_mb=mem_mb)
    assert info.plan.n_blocks > 1
    return sink.array, info


def implant_paint(folder, fill: float, n: int = 40, seed: int = 7):
    """abu-urban-1 with its AVIRIS wavelengths, ``n`` background pixels holding ``fill`` of a 'paint' spectrum
    (a red reflectance peak on the scene's level), written to ``folder/scene.tif``, and ``folder/lib.sli``: a
    1 nm library holding "red paint" and a flat "grey". Returns (cube float32, truth (H, W), wavelengths, the
    paint on the scene's bands)."""
    import sys

    from hadcore.io import write_cube
    from hadcore.library import SpectralLibrary, write_library

    sys.path.insert(0, str(REPO / "bench"))
    import sensors

    cube, gt = load_scene("abu-urban-1")
    cube = cube.astype(np.float64)
    wl = sensors.scene_wavelengths("abu-urban-1", cube.shape[2])
    lib_wl = np.arange(350.0, 2511.0, 1.0)
    paint = cube[~gt.astype(bool)].mean(0)[0] * (0.6 + 0.5 * np.exp(-0.5 * ((lib_wl - 650) / 60) ** 2))
    lib = SpectralLibrary(names=["red paint", "grey"], spectra=np.stack([paint, np.full(lib_wl.size, cube.mean())]),
                          wavelengths=lib_wl)
    write_library(lib, Path(folder) / "lib.sli")
    t = np.interp(wl, lib_wl, paint)
    rng = np.random.default_rng(seed)
    idx = rng.choice(np.flatnonzero(~gt.astype(bool).ravel()), n, replace=False)
    truth = np.zeros(gt.size, bool)
    truth[idx] = True
    X = cube.reshape(-1, cube.shape[2]).copy()
    X[idx] = (1 - fill) * X[idx] + fill * t
    X = X.reshape(cube.shape).astype(np.float32)
    write_cube(Path(folder) / "scene.tif", X, wavelengths=wl, wavelength_units="nanometers")
    return X, truth.reshape(gt.shape), wl, t


def run_cli(*args):
    """``hadcore ARGS`` through click's runner (exceptions not caught: a traceback fails the test)."""
    from click.testing import CliRunner

    from hadcore_cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def user_error(result, pattern):
    """Exit code 2, one line on stderr holding ``pattern``, no traceback."""
    assert result.exit_code == 2, result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and pattern in err[0], result.stderr
    assert "Traceback" not in result.output
