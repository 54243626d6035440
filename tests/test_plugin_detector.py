"""A third-party detector is one module plus one entry point (issue 24).

The example of docs/CONTRIBUTING-DETECTORS.md (``meandist``, distance to the mean spectrum) is written, from the
page itself, into a temporary module next to a ``dist-info`` folder holding its ``hadcore.detectors`` entry point,
as ``pip install`` would leave them; with that folder on ``sys.path`` the registry finds it like any installed
plugin. Then :func:`hadcore.testing.check_detector` passes on it, the CLI lists, describes and runs it, and the
QGIS provider's enumeration holds it. The checks are shown to catch broken detectors too.
"""

from __future__ import annotations

import ast
import json
import re
import sys

import numpy as np
import pytest
from conftest import REPO, load_scene, require

import hadcore
from hadcore import registry
from hadcore.base import Context, Detector
from hadcore.errors import ParameterError
from hadcore.params import Param
from hadcore.testing import CHECKS, check_detector, synthetic_cube

DOC = REPO / "docs" / "CONTRIBUTING-DETECTORS.md"
MODULE = "hadcore_meandist"
PLUGIN_DIR = REPO / "qgis_plugin"


def example_source() -> str:
    """The example module of the contributor guide, as printed there."""
    m = re.search(r"```python\n(# hadcore_meandist\.py\n.*?)```", DOC.read_text(), re.S)
    assert m, f"{DOC.name} lost its example module (a ```python block starting '# hadcore_meandist.py')"
    return m.group(1)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The example installed as a third-party package: its module and a dist-info with the entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{MODULE}.py").write_text(example_source())
    info = site / "hadcore_meandist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hadcore-meandist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nmeandist = {MODULE}:MeanDistance\n")
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop(MODULE, None)
    registry._scan_entry_points.cache_clear()  # the registry scans the installed packages once per process
    yield site
    sys.modules.pop(MODULE, None)
    registry._scan_entry_points.cache_clear()


def test_the_entry_point_registers_the_example(installed):
    assert "meandist" in hadcore.list_detectors() and "meandist" not in registry._BUILTIN
    cls = hadcore.get_detector_class("meandist")
    assert cls.__module__ == MODULE and issubclass(cls, Detector)
    assert hadcore.get_detector("meandist", power=2).power == 2.0
    with pytest.raises(ParameterError, match="expected number in \\[0.5, 4\\]"):
        hadcore.get_detector("meandist", power=9)


def test_the_example_passes_the_contract_checks(installed):
    assert check_detector("meandist") == list(CHECKS)  # exact (a statistics pass): streamed is checked too
    cube, _ = load_scene("sandiego-lren")
    assert check_detector("meandist", cube[30:54, 40:64, ::8], params={"power": 2.0}) == list(CHECKS)


def test_the_example_computes_what_its_docstring_says(installed):
    cube = synthetic_cube()
    mask = np.ones(cube.shape[:2], bool)
    mask[3, 4] = False
    s = hadcore.get_detector("meandist", power=2).detect(cube, mask)
    ref = ((cube - cube[mask].mean(axis=0)) ** 2).sum(axis=2)
    np.testing.assert_allclose(s[mask], ref[mask], rtol=1e-5)
    assert np.isnan(s[3, 4])


def test_the_cli_lists_describes_and_runs_the_example(installed, tmp_path):
    require("click")
    rasterio = require("rasterio")
    from click.testing import CliRunner

    from hadcore.io import write_cube
    from hadcore_cli.main import main

    def run(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    r = run("list", "--json")
    assert r.exit_code == 0 and "meandist" in [d["name"] for d in json.loads(r.output)]
    r = run("info", "meandist", "--json")
    info = json.loads(r.output)
    assert [p["name"] for p in info["params"]] == ["power"] and info["scaling"].startswith("two passes")

    cube, _ = load_scene("abu-airport-1")
    cube = cube[30:70, 30:70, :20]
    crs = rasterio.crs.CRS.from_epsg(32615)
    transform = rasterio.Affine(3.5, 0.0, 500000.0, 0.0, -3.5, 3300000.0)
    src = tmp_path / "scene.tif"
    write_cube(src, cube, crs=crs, transform=transform)
    out = tmp_path / "meandist.tif"
    r = run("detect", "meandist", src, "-o", out, "-p", "power=2", "-q")
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.shape == cube.shape[:2] and ds.crs == crs and ds.transform == transform
        scores = ds.read(1)
    np.testing.assert_allclose(scores, hadcore.get_detector("meandist", power=2).detect(cube), rtol=1e-5)
    r = CliRunner().invoke(main, ["detect", "meandist", str(src), "-o", str(tmp_path / "x.tif"), "-p", "power=9"])
    assert r.exit_code == 2 and "parameter 'power'" in r.output and not (tmp_path / "x.tif").exists()


def test_the_qgis_provider_would_offer_the_example(installed, monkeypatch):
    """The provider (which needs QGIS to import) makes one algorithm per name of ``list_detectors()`` of the
    hadcore its loader imports; here: that is what it iterates, the example is among those names, and its help
    panel renders from the declaration (the desktop side: tests_qgis/test_provider.py)."""
    tree = ast.parse((PLUGIN_DIR / "hadcore_qgis" / "provider.py").read_text())
    load = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "loadAlgorithms")
    loops = [ast.unparse(n.iter) for n in ast.walk(load) if isinstance(n, ast.For)]
    assert loops == ["hc.list_detectors()"], loops
    assert "hc, error = load_hadcore()" in ast.unparse(load)

    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    from hadcore_qgis.helptext import detector_help
    from hadcore_qgis.loader import load_hadcore

    hc, error = load_hadcore()
    assert error is None and hc is hadcore
    assert "meandist" in hc.list_detectors()
    html = detector_help(hc.get_detector_class("meandist"), str.upper)
    assert "<b>POWER</b>" in html and "Euclidean distance of each pixel" in html and "Reed" in html


# ------------------------------------------------------------------------------------------------ broken ones
class _Toy(Detector):
    """A toy detector for the checks' own tests (the distance to the mean spectrum, variously broken)."""

    name = "toy"
    title = "Toy"
    summary = "A toy."
    reference = "None."
    params = (Param("power", "float", 1.0, "Exponent.", min=0.5, max=4.0),)

    def context(self):
        return Context(global_stats=True)

    def _fit(self, data, progress):
        self.mean_ = data.moments.mean

    def _score(self, block, mask, progress):
        return np.sqrt(((block - self.mean_) ** 2).sum(axis=2)) ** self.power


class _BlockMean(_Toy):
    """Declares a local (exact) context but centres each block on its own mean: streaming changes its scores."""

    def context(self):
        return Context(halo=0)

    def _fit(self, data, progress):
        pass

    def _score(self, block, mask, progress):
        return np.sqrt(((block - block[mask].mean(axis=0)) ** 2).sum(axis=2))


class _Unseeded(_Toy):
    """Adds noise drawn without a seed."""

    def _score(self, block, mask, progress):
        return super()._score(block, mask, progress) + np.random.default_rng().random(mask.shape)


class _CrashesOnTinyInput(_Toy):
    """Fails with a bare ValueError on small scenes instead of an InputError."""

    def _fit(self, data, progress):
        if data.n_valid < 10:
            raise ValueError("too small")
        super()._fit(data, progress)


class _LeaksIntoInvalid(_Toy):
    """Reads the caller's invalid pixels: a score depends on the raw cube, not on the block it was given."""

    def detect(self, cube, mask=None, progress=None):
        c = np.asarray(cube, np.float64)
        return super().detect(cube, mask, progress) + np.float32(np.where(np.isfinite(c), c, 0.0).sum() * 1e-9)


class _UndeclaredTestParams(_Toy):
    """Its test_params name a parameter it does not declare."""

    test_params = {"epochs": 3}


class _Float64(_Toy):
    """Returns float64."""

    def detect(self, cube, mask=None, progress=None):
        return super().detect(cube, mask, progress).astype(np.float64)


@pytest.mark.parametrize("cls,check", [
    (_BlockMean, "streamed"),
    (_Unseeded, "determinism"),
    (_CrashesOnTinyInput, "tiny_input"),
    (_LeaksIntoInvalid, "invalid_pixels"),
    (_UndeclaredTestParams, "declaration"),
    (_Float64, "output"),
])
def test_the_checks_catch_broken_detectors(cls, check):
    """Each flaw is caught by its own check (run alone: an earlier check may catch it first in a full run)."""
    check_detector(_Toy)  # the unbroken toy passes
    with pytest.raises(AssertionError, match=f"detector 'toy', check '{check}'"):
        check_detector(cls, checks=[check])
    with pytest.raises(AssertionError):
        check_detector(cls)


def test_a_registry_name_must_be_the_declared_name(monkeypatch):
    monkeypatch.setattr(registry, "_entry_points", lambda: {"myrx": "hadcore.detectors.rx:RX"})
    with pytest.raises(AssertionError, match="registered as 'myrx' but declares name 'rx'"):
        check_detector("myrx", checks=["declaration"])
