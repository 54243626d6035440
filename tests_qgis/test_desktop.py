"""The real QGIS desktop (under Xvfb): the plugin installed from its zip, a detector run from its dialog.

What a user does and sees, checked on the running GUI (``tests_qgis/desktop/run_desktop.py`` drives it and
writes a JSON report; see its docstring):

- the zip of ``scripts/build_plugin_zip.py`` unpacked into a fresh profile's
  ``profiles/default/python/plugins/`` and enabled in ``QGIS3.ini``, as *Install from ZIP* does; QGIS
  (``qgis --code``) loads it itself. hadcore is not installed in QGIS's Python (Debian's
  ``/usr/bin/python3``): the plugin runs the copy the zip ships (``_vendor``); scikit-learn comes from
  Debian's ``python3-sklearn``;
- ``sample_data/abu-airport-1.tif`` added as a layer; the dialog of ``hadcore:rx`` (temporary outputs) and
  then of ``hadcore:lrx`` (small windows, 30 bands, outputs saved to files), each with DETECTIONS enabled
  (threshold ``top:20``), **Run** pressed, the outputs loaded by QGIS;
- the layer tree: both outputs of each run present, the detections above their score layer; the score
  layer drawn with a pseudocolour ramp (``singlebandpseudocolor``), not grey; layer names
  ``"<detector> – <input name>"`` and ``"<detector> detections – <input name>"``; the help HTML free of
  RST/LaTeX markup.

Screenshots (``qgis_dialog.png``: the rx dialog; ``qgis_map.png``: the main window after the rx run) are
written to the test's temporary folder; with ``HADCORE_SAVE_SCREENSHOTS=1`` they are also copied to
``docs/img/``. Without Xvfb or the ``qgis`` binary the test skips locally and fails on CI (``CI=true``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ON_CI, PLUGIN_NAME, REPO

QGIS = "/usr/bin/qgis"
SYSTEM_PYTHON = "/usr/bin/python3"  # the Python that Debian's QGIS desktop embeds
SCRIPT = Path(__file__).resolve().parent / "desktop" / "run_desktop.py"
IMG_DIR = REPO / "docs" / "img"
SCREENSHOTS = ("qgis_dialog.png", "qgis_map.png")  # copied to docs/img with HADCORE_SAVE_SCREENSHOTS=1
TIMEOUT_S = 240
DASH = "\u2013"  # en dash, as in "rx – abu-airport-1"

RUNS = [
    # temporary outputs: what the dialog offers by default ("[Save to temporary file]", "[Create temporary layer]")
    {"tag": "rx", "algorithm": "rx",
     "parameters": {"THRESHOLD": "top:20", "OUTPUT": "TEMPORARY_OUTPUT", "DETECTIONS": "TEMPORARY_OUTPUT"}},
    # outputs saved to files (paths filled in below); small windows and 30 bands so that it runs in seconds
    {"tag": "lrx", "algorithm": "lrx",
     "parameters": {"INNER": 3, "OUTER": 9, "BANDS": "1-30", "THRESHOLD": "top:20"}},
]


def _need(path: str, what: str):
    if not (os.path.exists(path) or shutil.which(path)):
        msg = f"{what} not found ({path}): apt-get install -y xvfb qgis (scripts/setup_qgis_env.sh)"
        if ON_CI:
            pytest.fail(msg)
        pytest.skip(msg)


def _clean_env(home: Path, profile: Path, config: Path, tmp: Path) -> dict:
    """The environment of a fresh user: no virtual environment, no PYTHONPATH, a private profile."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "QT_QPA_PLATFORM", "QGIS_PLUGINPATH",
                        "DISPLAY", "XAUTHORITY")}
    xdg = tmp / "xdg"
    xdg.mkdir(mode=0o700)
    env.update(HOME=str(home), QGIS_CUSTOM_CONFIG_PATH=str(profile), HADCORE_DESKTOP_CONFIG=str(config),
               TMPDIR=str(tmp), XDG_RUNTIME_DIR=str(xdg), PROJ_DATA=env.get("PROJ_DATA", "/usr/share/proj"),
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    return env


def _install_from_zip(tmp: Path) -> Path:
    """Build the plugin zip and install it into a fresh profile like "Install from ZIP"; returns the profile."""
    zpath = tmp / f"{PLUGIN_NAME}.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_plugin_zip.py"), "-o", str(zpath)], check=True,
                   capture_output=True)
    profile = tmp / "qgis_config"
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(zpath) as z:
        assert all(n.startswith(f"{PLUGIN_NAME}/") for n in z.namelist())
        z.extractall(plugins)
    ini = profile / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text(f"[PythonPlugins]\n{PLUGIN_NAME}=true\n", encoding="utf-8")
    return profile


@pytest.fixture(scope="module")
def desktop(tmp_path_factory, sample_tif):
    """Run QGIS desktop once under Xvfb; returns (report dict, folder of its files, expected hadcore file)."""
    _need("xvfb-run", "xvfb-run (Xvfb)")
    _need(QGIS, "the QGIS desktop")
    _need(SYSTEM_PYTHON, "Debian's Python")
    tmp = tmp_path_factory.mktemp("desktop")
    home, out = tmp / "home", tmp / "out"
    home.mkdir()
    out.mkdir()
    profile = _install_from_zip(tmp)
    config = tmp / "config.json"
    runs = json.loads(json.dumps(RUNS))
    runs[1]["parameters"].update(OUTPUT=str(out / "lrx_scores.tif"), DETECTIONS=str(out / "lrx_detections.gpkg"))
    scene, _ = sample_tif
    config.write_text(json.dumps({"input": str(scene), "out_dir": str(out), "report": str(out / "report.json"),
                                  "runs": runs, "timeout_s": TIMEOUT_S - 40, "run_timeout_s": 120}),
                      encoding="utf-8")
    env = _clean_env(home, profile, config, tmp)

    # QGIS's Python must import numpy, scipy, scikit-learn (Debian: python3-sklearn); hadcore itself must
    # come from the zip unless this Python has one installed (then the loader prefers that one)
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import sklearn, scipy, numpy"], env=env, cwd=str(tmp),
                           capture_output=True, text=True)
    if probe.returncode != 0:
        msg = f"{SYSTEM_PYTHON} cannot import scikit-learn: apt-get install -y python3-sklearn\n{probe.stderr[-500:]}"
        if ON_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    installed = subprocess.run([SYSTEM_PYTHON, "-c", "import hadcore; print(hadcore.__file__)"], env=env,
                               cwd=str(tmp), capture_output=True, text=True)
    vendored = profile / "profiles" / "default" / "python" / "plugins" / PLUGIN_NAME / "_vendor" / "hadcore"
    expected_hadcore = (Path(installed.stdout.strip()) if installed.returncode == 0 else vendored / "__init__.py")

    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", QGIS, "--noversioncheck", "--nologo",
           "--code", str(SCRIPT)]
    proc = subprocess.Popen(cmd, env=env, cwd=str(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # xvfb-run, Xvfb and qgis: the session started above
        stdout, _ = proc.communicate()
        stdout += f"\n[test_desktop] killed after {TIMEOUT_S} s"
    (tmp / "qgis_stdout.txt").write_text(stdout, encoding="utf-8")
    report_path = out / "report.json"
    if not report_path.exists():
        pytest.fail(f"QGIS wrote no report (exit code {proc.returncode}); its output:\n{stdout[-3000:]}")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    report["exit_code"] = proc.returncode  # 134 (abort while shutting down) is possible with QGIS 3.22
    report["stdout_tail"] = stdout[-3000:]
    if os.environ.get("HADCORE_SAVE_SCREENSHOTS") == "1" and report.get("stage") == "done":
        for name in SCREENSHOTS:
            if (out / name).exists():
                shutil.copyfile(out / name, IMG_DIR / name)
    return report, out, expected_hadcore


def _runs(report):
    assert report.get("stage") == "done", (report.get("stage"), report.get("errors"), report.get("stdout_tail"))
    runs = report["runs"]
    assert [r["tag"] for r in runs] == [r["tag"] for r in RUNS]
    return runs


def _tree(report):
    return report["layer_tree"]


def _outputs(report, run):
    """(score layer entry, detections layer entry, their indices in the final tree: 0 = top) of one run."""
    tree = _tree(report)
    new = [(i, e) for i, e in enumerate(tree) if e["id"] in run["new_layers"]]
    rasters = [(i, e) for i, e in new if e["type"] == "raster"]
    vectors = [(i, e) for i, e in new if e["type"] == "vector"]
    assert len(rasters) == 1 and len(vectors) == 1, (run["tag"], [e["name"] for _, e in new])
    (si, score), (di, det) = rasters[0], vectors[0]
    return score, det, si, di


def _input_name(report):
    return report["input_layer"]["name"]


def test_the_dialog_runs_the_plugin_installed_from_the_zip(desktop):
    report, out, expected_hadcore = desktop
    runs = _runs(report)
    assert report["errors"] == [], report["errors"]
    assert PLUGIN_NAME in report["active_plugins"]
    assert Path(report["hadcore_file"]).resolve() == expected_hadcore.resolve(), report["hadcore_file"]
    assert {"hadcore:rx", "hadcore:lrx", "hadcore:vectorize", "hadcore:evaluate"} <= set(report["provider_algorithms"])
    assert _input_name(report) == "abu-airport-1"
    for run in runs:
        assert run["run_ok"], run["dialog_log"][-2000:]
        # the dialog ran with what was set in its widgets: the input layer, the threshold, detections enabled
        params = run["dialog_parameters"]
        assert params["INPUT"] == report["input_layer"]["id"]
        assert params["THRESHOLD"] == "top:20"
        assert params["DETECTIONS"] not in ("", "None", "NULL"), params
        assert int(run["results"]["N_DETECTIONS"]) >= 1, run["results"]
        assert "Execution completed" in run["dialog_log"], run["dialog_log"][-2000:]
    lrx = runs[1]
    assert Path(lrx["results"]["OUTPUT"]) == out / "lrx_scores.tif" and (out / "lrx_scores.tif").exists()
    assert (out / "lrx_detections.gpkg").exists()


def test_screenshots_show_the_dialog_and_the_map(desktop):
    from qgis.PyQt.QtGui import QImage

    report, out, _ = desktop
    _runs(report)
    for name in ("qgis_dialog.png", "qgis_map.png", "qgis_dialog_lrx.png", "qgis_map_lrx.png"):
        img = QImage(str(out / name))
        assert not img.isNull(), name
        assert img.width() >= 800 and img.height() >= 600, (name, img.width(), img.height())
        colours = {img.pixel(x, y) for x in range(0, img.width(), 17) for y in range(0, img.height(), 17)}
        assert len(colours) > 20, f"{name} looks blank ({len(colours)} colours)"


def test_output_layers_are_in_the_layer_tree(desktop):
    report, _, _ = desktop
    tree = _tree(report)
    for run in _runs(report):
        score, det, _, _ = _outputs(report, run)
        assert score["visible"] and det["visible"]
        assert score["provider"] == "gdal"
        if run["tag"] == "lrx":
            assert Path(score["source"]) == Path(run["results"]["OUTPUT"])
            assert det["source"].split("|")[0] == run["results"]["DETECTIONS"]
        assert det["n_features"] == int(run["results"]["N_DETECTIONS"]) >= 1
        assert {"id", "pixels", "area", "peak", "mean", "peak_x", "peak_y"} <= set(det["fields"])
    assert tree[-1]["id"] == report["input_layer"]["id"], "the input layer stays at the bottom"


def test_detections_are_drawn_above_their_score_layer(desktop):
    report, _, _ = desktop
    names = [e["name"] for e in _tree(report)]
    for run in _runs(report):
        score, det, si, di = _outputs(report, run)
        assert di < si, f"{run['tag']}: detections {det['name']!r} are below the score layer {score['name']!r} " \
                        f"(layer tree, top first: {names})"


def test_score_layer_is_drawn_in_pseudocolour(desktop):
    report, _, _ = desktop
    for run in _runs(report):
        score, _, _, _ = _outputs(report, run)
        assert score["renderer"] == "singlebandpseudocolor", f"{run['tag']}: score layer drawn as {score['renderer']!r}"
        lo, hi, stats = score["min"], score["max"], score["band1_stats"]
        assert math.isfinite(lo) and math.isfinite(hi) and lo < hi, (lo, hi)
        span = stats["max"] - stats["min"]
        assert stats["min"] - 1e-6 * span <= lo and hi <= stats["max"] + 1e-6 * span, (lo, hi, stats)
        assert len(score.get("ramp", [])) >= 2, score.get("ramp")


def test_layer_names_say_detector_and_input(desktop):
    report, _, _ = desktop
    inp = _input_name(report)
    for run in _runs(report):
        score, det, _, _ = _outputs(report, run)
        # "<detector>": the algorithm's name (rx), as shown upper-case (RX) or its display name
        detector = {run["alg_name"], run["alg_name"].upper(), run["display_name"]}
        assert score["name"] in {f"{d} {DASH} {inp}" for d in detector}, \
            f"{run['tag']}: score layer named {score['name']!r}, expected '{run['alg_name']} {DASH} {inp}'"
        assert det["name"] in {f"{d} detections {DASH} {inp}" for d in detector}, \
            f"{run['tag']}: detections named {det['name']!r}, expected '{run['alg_name']} detections {DASH} {inp}'"


MARKUP = [
    (re.compile(r"\\"), "backslash (LaTeX)"),
    (re.compile(r":math:"), ":math: role"),
    (re.compile(r"``"), "double back-quotes (RST literal)"),
    (re.compile(r"\.\. \w+::"), "RST directive"),
    (re.compile(r":[a-z]+:`"), "RST role"),
]


def test_help_html_has_no_rst_or_latex_markup(desktop):
    report, _, _ = desktop
    for run in _runs(report):
        html = run["help_html"]
        assert "<p>" in html and "Reference" in html
        found = [f"{what}: ...{html[max(0, m.start() - 30):m.end() + 30]}..."
                 for rx, what in MARKUP for m in [rx.search(html)] if m]
        assert not found, f"{run['tag']}: help HTML shows markup:\n" + "\n".join(found)
