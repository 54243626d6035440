"""The registry and the detector modules cannot drift apart (TorchGeo-style invariant)."""

import ast
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import hadcore
import hadcore.detectors
from hadcore.base import FAMILIES, Detector
from hadcore.errors import ParameterError
from hadcore.registry import _BUILTIN


def _defines_a_detector(module: str) -> bool:
    """A module of hadcore/detectors that declares a detector (a class with a ``name``), read without importing it:
    the networks (``*_nets``), ``windows`` and ``torch_runtime`` live there too and are not detectors."""
    path = Path(hadcore.detectors.__path__[0]) / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(c, ast.ClassDef) and c.bases and any(
        isinstance(s, ast.Assign) and any(getattr(t, "id", None) == "name" for t in s.targets) for s in c.body)
        for c in tree.body)


def test_every_detector_module_is_registered_and_every_name_loads():
    modules = {m.name for m in pkgutil.iter_modules(hadcore.detectors.__path__) if _defines_a_detector(m.name)}
    registered = {target.split(":")[0].rsplit(".", 1)[1] for target in _BUILTIN.values()}
    assert modules == registered
    for name in hadcore.list_detectors():
        cls = hadcore.get_detector_class(name)
        assert issubclass(cls, Detector) and cls.name == name


@pytest.mark.parametrize("name", sorted(_BUILTIN))
def test_declaration_is_complete(name):
    cls = hadcore.get_detector_class(name)
    assert cls.title and cls.summary and cls.reference
    assert cls.family in FAMILIES
    assert cls.__doc__ and len(cls.__doc__) > 200, "the docstring states formula, choices and reference"
    names = [p.name for p in cls.params]
    assert len(names) == len(set(names))
    for p in cls.params:
        assert p.help and p.name.isidentifier()
    det = cls()
    assert det.get_params() == {p.name: p.default for p in cls.params}
    ctx = det.context()
    assert ctx.halo >= 0


def test_unknown_detector_and_parameter_errors_name_the_choices():
    with pytest.raises(ParameterError, match="available: .*rx"):
        hadcore.get_detector("nope")
    with pytest.raises(ParameterError, match="its parameters are: ridge"):
        hadcore.get_detector("rx", window=3)
    with pytest.raises(ParameterError, match="inner window must be smaller than the outer"):
        hadcore.get_detector("lrx", inner=9, outer=7)


def test_entry_point_detectors_are_listed(monkeypatch):
    from hadcore import registry

    monkeypatch.setattr(registry, "_entry_points", lambda: {"myrx": "hadcore.detectors.rx:RX"})
    assert "myrx" in hadcore.list_detectors()
    assert hadcore.get_detector_class("myrx").__name__ == "RX"
    monkeypatch.setattr(registry, "_entry_points", lambda: {"broken": "numpy:linalg"})
    with pytest.raises(ParameterError, match="not a hadcore Detector"):
        hadcore.get_detector_class("broken")


def test_core_import_does_not_pull_io_or_torch_or_qgis():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, hadcore; "
        "[hadcore.get_detector(n) for n in hadcore.list_detectors()]; "
        "hadcore.get_detector('rx').detect(np.random.default_rng(0).random((8, 8, 4))); "
        "import hadcore.metrics, hadcore.threshold, hadcore.components, hadcore.bands; "
        "bad = [m for m in ('rasterio', 'geopandas', 'shapely', 'pyproj', 'pyogrio', 'qgis', 'torch', 'click') "
        "if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_input_is_never_modified():
    rng = np.random.default_rng(0)
    cube = rng.random((12, 12, 5))
    cube[2, 3] = np.nan
    before = cube.copy()
    hadcore.get_detector("rx").detect(cube)
    np.testing.assert_array_equal(cube, before)
