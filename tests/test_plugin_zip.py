"""The QGIS plugin ZIP passes the QGIS plugin repository's checks; what that takes from the library.

* ``scripts/build_plugin_zip.py`` builds a ZIP that ``scripts/check_plugin_zip.py`` (the repository's rules:
  layout, metadata, LICENSE, no binary file, bandit, no exec/eval) accepts, and the checker does fail;
* the STAD default weights, left out of the ZIP (binary), are looked up in a user folder;
* product metadata XML with a DOCTYPE/ENTITY declaration is refused (what made bandit's B314 go).
"""

from __future__ import annotations

import configparser
import importlib.util
import shutil
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

import hadcore
from hadcore.detectors import stad as S
from hadcore.errors import FileError

from conftest import require

REPO = Path(__file__).resolve().parents[1]
TOP = "hadcore_qgis"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_hadcore_{name}", REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


builder = _script("build_plugin_zip")
checker = _script("check_plugin_zip")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    left_out = []
    out = builder.build(tmp_path_factory.mktemp("zip") / "hadcore_qgis.zip", left_out=left_out)
    return out, left_out


def _need_bandit():
    # checked without importing bandit in this process (its import warns through stevedore)
    if importlib.util.find_spec("bandit") is None:
        require("bandit")  # skips locally, fails on CI


def _copy_zip(src: Path, dst: Path, drop=(), add=None) -> Path:
    """``src`` without the members ``drop`` and with the extra members ``add`` ({name: bytes})."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename not in drop:
                zout.writestr(info, zin.read(info))
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


# ------------------------------------------------------------------ the ZIP
def test_built_zip_passes_the_plugin_repository_checks(built):
    _need_bandit()
    out, left_out = built
    assert checker.check(out) == []
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        meta = configparser.ConfigParser()
        meta.read_string(z.read(f"{TOP}/metadata.txt").decode("utf-8"))
        license_text = z.read(f"{TOP}/LICENSE")
    assert not [n for n in names if n.endswith(".pt") or "__pycache__" in n or n.endswith(".pyc")]
    assert left_out == [f"{TOP}/_vendor/hadcore/weights/stad_default.pt"]
    assert license_text == (REPO / "LICENSE").read_bytes()
    assert f"{TOP}/icon.svg" in names and f"{TOP}/_vendor/hadcore/detectors/stad.py" in names
    general = meta["general"]
    assert general["qgisMaximumVersion"] == "4.99" and general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert general["version"] == hadcore.__version__
    assert "0.1.0" in general["changelog"] and "QGIS 4" in general["changelog"]
    for dep in ("numpy", "scipy", "scikit-learn", "torch", "kdad", "stad", "pdbsnet", "gthad", "h5py",
                "netCDF4", "rasterio"):
        assert dep in general["about"], dep


def test_checker_finds_binary_file_eval_and_missing_license(built, tmp_path):
    _need_bandit()
    out, _ = built
    bad = _copy_zip(out, tmp_path / "bad.zip", drop={f"{TOP}/LICENSE"}, add={
        f"{TOP}/data.bin": b"\x89PNG\r\n\x1a\n\x00\x00",
        f"{TOP}/evil.py": b"def f(s):\n    return eval(s)\n",
        f"{TOP}/run.py": b"exec('x = 1')\n",
    })
    problems = checker.check(bad)
    text = "\n".join(problems)
    assert f"{TOP}/data.bin: binary file" in text
    assert f"{TOP}/evil.py:2: calls the builtin eval()" in text
    assert f"{TOP}/run.py:1: calls the builtin exec()" in text
    assert f"{TOP}/LICENSE: missing" in text
    assert "bandit B307" in text  # eval: bandit's medium finding as well
    assert checker.main([str(bad), "--no-bandit"]) == 1


def test_checker_layout_and_metadata_rules(built, tmp_path):
    out, _ = built
    with zipfile.ZipFile(out) as z:
        meta = z.read(f"{TOP}/metadata.txt").decode("utf-8")
    meta = (meta.replace("qgisMaximumVersion=4.99\n", "")
            .replace("author=hadcore contributors", "author=a/b")
            .replace("tracker=https://github.com/hadcore/hadcore/issues", "tracker=github.com/issues"))
    bad = _copy_zip(out, tmp_path / "bad.zip", drop={f"{TOP}/metadata.txt"}, add={
        f"{TOP}/metadata.txt": meta.encode("utf-8"),
        f"{TOP}/__pycache__/x.cpython-311.pyc": b"text",
        "../escape.txt": b"x",
        "other/README": b"x",
    })
    text = "\n".join(checker.check(bad, bandit=False))
    for expected in ("'qgisMaximumVersion' is missing", "author 'a/b' contains '/'", "tracker 'github.com/issues'",
                     "forbidden folder __pycache__", "(.pyc) is not accepted", "../escape.txt: unsafe name",
                     "exactly one top-level folder"):
        assert expected in text, expected


def test_checker_reports_missing_bandit(built, monkeypatch):
    out, _ = built
    real = importlib.util.find_spec
    monkeypatch.setattr(checker.importlib.util, "find_spec", lambda n, *a: None if n == "bandit" else real(n, *a))
    assert [p for p in checker.check(out) if p.startswith("bandit is not installed")]


# ------------------------------------------------------------------ STAD weights outside the package
@pytest.fixture
def no_package_weights(tmp_path, monkeypatch):
    """The vendored copy's situation: the package's weights folder is empty."""
    empty = tmp_path / "package_weights"
    empty.mkdir()
    monkeypatch.setattr(S, "PACKAGE_WEIGHTS_DIR", empty)
    monkeypatch.delenv("HADCORE_WEIGHTS_DIR", raising=False)
    return empty


def test_stad_default_weights_from_user_folder(no_package_weights, tmp_path, monkeypatch):
    assert S.DEFAULT_WEIGHTS.is_file()  # the installed package keeps its copy
    user = tmp_path / "user_weights"
    user.mkdir()
    copy = Path(shutil.copy(S.DEFAULT_WEIGHTS, user / S.WEIGHTS_NAME))
    monkeypatch.setenv("HADCORE_WEIGHTS_DIR", str(user))
    assert S.default_weights() == copy
    assert hadcore.get_detector("stad").weights_path() == copy
    # the package folder comes first (an installed hadcore: unchanged)
    monkeypatch.setattr(S, "PACKAGE_WEIGHTS_DIR", S.DEFAULT_WEIGHTS.parent)
    assert S.default_weights() == S.DEFAULT_WEIGHTS
    monkeypatch.setattr(S, "PACKAGE_WEIGHTS_DIR", no_package_weights)
    if importlib.util.find_spec("torch") is not None:
        scores = hadcore.get_detector("stad", device="cpu").detect(np.random.default_rng(0).random((12, 12, 20)))
        assert scores.shape == (12, 12) and np.isfinite(scores).all()


def test_stad_user_folder_qgis_profile_then_cache(no_package_weights, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    if "qgis" not in sys.modules:
        assert S.user_weights_dir() == home / ".cache" / "hadcore" / "weights"
        assert "qgis" not in sys.modules  # the core never imports qgis itself
    profile = tmp_path / "profiles" / "default"
    qgis = types.ModuleType("qgis")
    core = types.ModuleType("qgis.core")
    core.QgsApplication = types.SimpleNamespace(qgisSettingsDirPath=lambda: str(profile) + "/")
    qgis.core = core
    monkeypatch.setitem(sys.modules, "qgis", qgis)
    monkeypatch.setitem(sys.modules, "qgis.core", core)
    assert S.user_weights_dir() == profile / "hadcore" / "weights"
    monkeypatch.setenv("HADCORE_WEIGHTS_DIR", str(tmp_path / "env"))
    assert S.user_weights_dir() == tmp_path / "env"


def test_stad_missing_default_weights_one_line_error(no_package_weights, tmp_path, monkeypatch):
    user = tmp_path / "nothing_here"
    monkeypatch.setenv("HADCORE_WEIGHTS_DIR", str(user))
    with pytest.raises(FileError) as err:
        S.default_weights()
    msg = str(err.value)
    assert "\n" not in msg
    for part in (str(no_package_weights), str(user), "pip install hadcore", S.WEIGHTS_URL, S.WEIGHTS_NAME):
        assert part in msg, part
    if importlib.util.find_spec("torch") is not None:
        with pytest.raises(FileError, match="no default weights"):
            hadcore.get_detector("stad", device="cpu").detect(np.random.default_rng(0).random((12, 12, 20)))


# ------------------------------------------------------------------ metadata XML: no DOCTYPE / ENTITY
BOMB = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>\n'
        b"<level_X><metadata>&lol2;</metadata></level_X>\n")


def test_metadata_xml_with_doctype_is_refused(tmp_path):
    import xml.etree.ElementTree as ET

    from hadcore.products._xml import parse_xml
    from hadcore.products.enmap import _Meta
    from hadcore.products.envi import _desis_xml

    ok = tmp_path / "ok.xml"
    ok.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?><level_X><base><level>L2A</level></base></level_X>')
    assert parse_xml(ok).find("base/level").text == "L2A"
    bomb = tmp_path / "bomb-METADATA.XML"
    for data in (BOMB, BOMB.decode("ascii").replace('"1.0"?', '"1.0" encoding="UTF-16"?').encode("utf-16")):
        bomb.write_bytes(data)
        with pytest.raises(ET.ParseError, match="DOCTYPE"):
            parse_xml(bomb)
    with pytest.raises(FileError, match=r"not a readable XML file \(the XML holds a DOCTYPE declaration"):
        _Meta(bomb)
    with pytest.raises(FileError, match="cannot parse the DESIS metadata XML: the XML holds a DOCTYPE"):
        _desis_xml(bomb)
