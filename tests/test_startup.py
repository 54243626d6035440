"""Start-up cost of the CLI: each command imports what it needs and nothing heavier.

Every case runs one command in a fresh interpreter (``python -X importtime``), in process there through
``hadcore_cli.main.main``, and checks the set of modules imported by the end against the heavy packages
that command has no use for. The check is on the module set, not on a clock (shared CI runners are too
noisy for that); the measured import time is printed for information (``pytest -s``) and not asserted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, SAMPLE_DIR

pytestmark = pytest.mark.cli

SAMPLE = SAMPLE_DIR / "abu-airport-1.tif"

#: packages no command below needs unless said otherwise (each costs 0.1 .. 1 s to import)
HEAVY = ("scipy.stats", "sklearn", "torch", "rasterio", "geopandas", "shapely", "pandas", "pyogrio",
         "matplotlib", "distributed", "dask")

_CHILD = textwrap.dedent(
    """
    import json, sys
    from hadcore_cli.main import main
    try:
        main.main(args=json.loads(sys.argv[1]), prog_name="hadcore", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    with open(sys.argv[2], "w") as f:
        json.dump({"code": code, "modules": sorted(sys.modules)}, f)
    """
)


def _run(args, tmp_path):
    """(exit code, imported module names, stdout, seconds of import time) of ``hadcore ARGS``."""
    report = tmp_path / "modules.json"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", _CHILD, json.dumps(args), str(report)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert report.exists(), proc.stderr[-3000:]
    data = json.loads(report.read_text())
    # top-level lines of -X importtime: "import time: self | cumulative | name" with no indent before name
    total_us = sum(int(m.group(1)) for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (?! )", proc.stderr,
                                                         flags=re.MULTILINE))
    return data["code"], set(data["modules"]), proc.stdout, total_us / 1e6


def _loaded(modules, roots):
    """The packages of ``roots`` that were imported (a root or any of its submodules)."""
    return sorted(r for r in roots if any(m == r or m.startswith(r + ".") for m in modules))


def _report(label, seconds, modules):
    print(f"\n[startup] hadcore {label}: {seconds:.3f} s of import time, {len(modules)} modules")


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"], ["info", "rx"], ["info", "kdad"],
                                  ["detect", "--help"], ["benchmark", "--help"], ["train", "--help"],
                                  ["synth", "--help"]],
                         ids=" ".join)
def test_light_commands_import_no_scipy_and_no_io_stack(args, tmp_path):
    """Help, list and info print text: numpy and hadcore's own modules only (no detector dependency)."""
    code, modules, out, seconds = _run(args, tmp_path)
    _report(" ".join(args), seconds, modules)
    assert code == 0
    assert out.strip()
    assert _loaded(modules, HEAVY + ("scipy", "tqdm", "threadpoolctl")) == []


def test_list_still_describes_every_detector(tmp_path):
    import hadcore

    code, modules, out, _ = _run(["list"], tmp_path)
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert listed == set(hadcore.list_detectors())
    # the detector modules themselves are imported (their classes carry the metadata) ...
    assert {f"hadcore.detectors.{n}" for n in ("rx", "kdad", "stad", "pta", "lrx")} <= modules


def test_detect_rx_imports_rasterio_but_not_stats_learning_or_vectors(tmp_path):
    out_tif = tmp_path / "rx.tif"
    code, modules, out, seconds = _run(["detect", "rx", str(SAMPLE), "-o", str(out_tif), "-q"], tmp_path)
    _report("detect rx", seconds, modules)
    assert code == 0 and out_tif.exists()
    assert "AUC(PD,PF)" in out  # the sample's own ground truth was evaluated: the metrics need no scipy.stats
    assert "rasterio" in modules
    assert _loaded(modules, HEAVY) == ["rasterio"]
    assert "hadcore.vectorize" not in modules


def test_detect_rx_with_vector_adds_only_the_vector_stack(tmp_path):
    out_tif, out_gpkg = tmp_path / "rx.tif", tmp_path / "rx.gpkg"
    code, modules, _, seconds = _run(["detect", "rx", str(SAMPLE), "-o", str(out_tif), "--vector", str(out_gpkg),
                                      "--threshold", "fpr:1e-3", "-q"], tmp_path)
    _report("detect rx --vector", seconds, modules)
    assert code == 0 and out_gpkg.exists()
    assert {"rasterio", "geopandas"} <= set(_loaded(modules, HEAVY))
    assert _loaded(modules, ("scipy.stats", "sklearn", "torch", "matplotlib", "distributed", "dask")) == []
