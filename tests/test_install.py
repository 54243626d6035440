"""A plain ``pip install hadcore`` gives a working ``hadcore``: every third-party distribution the command imports
is a declared dependency (or one of theirs), and the extras set lower bounds only."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "abu-airport-1.tif"

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

pytestmark = pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")


def _project():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower().replace("_", "-")


def _closure(names):
    """Distributions reachable from ``names`` through their (non-extra) requirements."""
    seen, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        try:
            reqs = metadata.requires(n) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in reqs if "extra ==" not in r]
    return seen


def _modules(code, args, tmp_path):
    out = tmp_path / "mods.txt"
    code += f"\nimport sys\nopen({str(out)!r}, 'w').write(' '.join(sorted(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return {m.split(".")[0] for m in out.read_text().split()}


def _imported_distributions(args, tmp_path):
    """Third-party distributions whose modules a ``hadcore`` subprocess imports (beyond what the bare
    interpreter imports at start-up, e.g. setuptools' distutils hook)."""
    code = ("import sys\nsys.argv = ['hadcore'] + sys.argv[1:]\nfrom hadcore_cli.main import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code")
    mods = _modules(code, args, tmp_path) - _modules("pass", [], tmp_path)
    top = metadata.packages_distributions()
    return {d.lower().replace("_", "-") for m in mods for d in top.get(m, [])} - {"hadcore"}


def test_detect_imports_only_declared_dependencies(tmp_path):
    declared = {_name(r) for r in _project()["dependencies"]}
    allowed = _closure(declared)
    for args in (["--help"], ["list"], ["detect", "rx", str(SAMPLE), "-o", str(tmp_path / "rx.tif"), "-q"],
                 ["inspect", str(SAMPLE)]):
        missing = _imported_distributions(args, tmp_path) - allowed
        assert not missing, f"hadcore {args[0]} imports {sorted(missing)}, not in pyproject's dependencies"


def test_cli_and_product_readers_need_no_extra():
    declared = {_name(r) for r in _project()["dependencies"]}
    for need in ("click", "rasterio", "geopandas", "h5py", "tqdm"):
        assert need in declared
    # the core stays three packages (QGIS installs --no-deps): hadcore.base imports nothing else
    r = subprocess.run([sys.executable, "-c", "import sys, hadcore, hadcore.base, hadcore.detectors; "
                        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"],
                       capture_output=True, text=True)
    mods = set(r.stdout.split())
    assert not mods & {"click", "rasterio", "geopandas", "h5py", "torch", "tqdm"}, mods


def test_torch_extra_is_a_lower_bound_not_a_pin():
    extras = _project()["optional-dependencies"]
    torch = [r for r in extras["torch"] if _name(r) == "torch"]
    assert torch and "==" not in torch[0] and ">=" in torch[0]
    # the CPU pin lives in the set-up script
    assert "torch==2.13.0" in (REPO / "scripts" / "setup.sh").read_text()


def test_every_package_of_the_tree_is_installed():
    """pyproject lists its packages by name: a new sub-package (hadcore.engine, hadcore.io) missing from that list
    works in an editable install and is absent from a wheel. Every folder of hadcore/ with an __init__.py is
    listed, and a wheel built from the tree holds every module."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tree = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "hadcore").rglob("__init__.py")}
    assert tree <= listed, f"add to pyproject.toml [tool.setuptools] packages: {sorted(tree - listed)}"
    assert "hadcore_cli" in listed


def test_a_wheel_holds_every_module(tmp_path):
    import zipfile

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                        "-w", str(tmp_path)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"no wheel build here: {r.stderr.strip().splitlines()[-1:]}")
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    modules = {str(p.relative_to(REPO)) for p in (REPO / "hadcore").rglob("*.py")}
    assert modules <= names, sorted(modules - names)[:5]
