"""End to end with the ``qgis_process`` command line (Debian's ``/usr/bin/qgis_process.bin``).

The plugin is enabled from ``qgis_plugin/`` in a private profile; ``qgis_process`` runs the system
Python, which sees hadcore and scikit-learn (and torch) only through ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import hadcore
import pytest

from conftest import ON_CI, PLUGIN_DIR, PLUGIN_NAME, REPO, read_raster

QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # /usr/bin/qgis_process passes a flag the binary rejects


def _env(profile: Path, plugin_path: Path, pythonpath):
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugin_path),
               QGIS_CUSTOM_CONFIG_PATH=str(profile), PROJ_DATA=env.get("PROJ_DATA", "/usr/share/proj"),
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"), PYTHONPATH=os.pathsep.join(map(str, pythonpath)))
    env.setdefault("XDG_RUNTIME_DIR", str(profile))
    return env


def qgis_process(args, env, cwd, timeout=300):
    if not os.path.exists(QGIS_PROCESS):
        if ON_CI:
            pytest.fail(f"{QGIS_PROCESS} missing on CI")
        pytest.skip(f"{QGIS_PROCESS} not installed")
    return subprocess.run([QGIS_PROCESS, *args], env=env, cwd=str(cwd), capture_output=True, text=True,
                          timeout=timeout)


def _json(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


def _venv_site():
    return sysconfig.get_paths()["purelib"]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    profile = tmp_path_factory.mktemp("qgis_profile")
    env = _env(profile, PLUGIN_DIR, [REPO, _venv_site()])
    r = qgis_process(["plugins", "enable", PLUGIN_NAME], env, profile)
    assert r.returncode == 0, r.stdout + r.stderr
    return env, profile


def test_list_shows_every_registry_detector(cli_env):
    env, cwd = cli_env
    r = qgis_process(["list"], env, cwd)
    assert r.returncode == 0, r.stderr
    for name in hadcore.list_detectors():
        assert f"hadcore:{name}" in r.stdout, name
    assert "hadcore:vectorize" in r.stdout and "hadcore:evaluate" in r.stdout


def test_help_shows_the_parameters(cli_env, plugin):
    from hadcore_qgis.algorithms import qgis_param_name

    env, cwd = cli_env
    # rx and the first detector of every family (one qgis_process start each, ~2 s); the in-process test
    # test_provider.py checks every detector's parameter definitions.
    names, families = ["rx"], {"statistical"}
    for name in hadcore.list_detectors():
        fam = hadcore.get_detector_class(name).family
        if fam not in families:
            families.add(fam)
            names.append(name)
    for name in names:
        r = qgis_process(["help", f"hadcore:{name}"], env, cwd)
        assert r.returncode == 0, r.stderr
        cls = hadcore.get_detector_class(name)
        assert cls.reference.split(",")[0].split()[-1] in r.stdout  # the citation is in the help
        for p in ("INPUT", "BANDS", "OUTPUT", "DETECTIONS",
                  *(qgis_param_name(p.name) for p in hadcore.get_detector_class(name).params)):
            assert p in r.stdout, (name, p)


def test_json_run_rx_keeps_crs_and_transform(cli_env, sample_tif, tmp_path):
    env, cwd = cli_env
    scene, _ = sample_tif
    out, det = tmp_path / "rx.tif", tmp_path / "det.gpkg"
    r = qgis_process(["--json", "run", "hadcore:rx", "--", f"INPUT={scene}", f"OUTPUT={out}",
                      "THRESHOLD=percentile:99", f"DETECTIONS={det}"], env, cwd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    results = _json(r.stdout)["results"]
    assert Path(results["OUTPUT"]) == out and out.exists() and det.exists()
    assert results["N_DETECTIONS"] >= 1
    scores, gt_out, proj_out, _ = read_raster(out)
    _, gt_in, proj_in, _ = read_raster(scene)
    assert gt_out == pytest.approx(gt_in) and proj_out == proj_in and proj_out


def test_json_run_reports_a_bad_parameter(cli_env, sample_tif, tmp_path):
    env, cwd = cli_env
    scene, _ = sample_tif
    r = qgis_process(["--json", "run", "hadcore:rx", "--", f"INPUT={scene}", f"OUTPUT={tmp_path / 'x.tif'}",
                      "BANDS=0-3"], env, cwd)
    assert r.returncode != 0
    assert "band range '0-3' is outside 1-205" in r.stdout + r.stderr


def test_plugin_zip_installs_and_runs(tmp_path, sample_tif):
    """The zip of scripts/build_plugin_zip.py, unpacked like "Install from ZIP", runs with no hadcore installed."""
    zpath = tmp_path / "hadcore_qgis.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_plugin_zip.py"), "-o", str(zpath)], check=True)
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(zpath) as z:
        names = z.namelist()
        assert all(n.startswith(f"{PLUGIN_NAME}/") for n in names)
        assert f"{PLUGIN_NAME}/metadata.txt" in names and f"{PLUGIN_NAME}/_vendor/hadcore/__init__.py" in names
        z.extractall(plugins)
    profile = tmp_path / "profile"
    profile.mkdir()
    # only the venv's site-packages (scikit-learn, torch): hadcore itself must come from the zip
    env = _env(profile, plugins, [_venv_site()])
    check = subprocess.run(["/usr/bin/python3", "-c", "import hadcore"], env=env, cwd=str(profile),
                           capture_output=True, text=True)
    assert check.returncode != 0, "hadcore must not be importable outside the zip for this test"
    r = qgis_process(["plugins", "enable", PLUGIN_NAME], env, profile)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "zip_rx.tif"
    scene, _ = sample_tif
    r = qgis_process(["--json", "run", "hadcore:rx", "--", f"INPUT={scene}", f"OUTPUT={out}"], env, profile)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    scores = read_raster(out)[0]
    assert scores.shape == read_raster(scene)[0].shape
    from osgeo import gdal

    assert gdal.Open(str(out)).GetMetadataItem("hadcore_version") == hadcore.__version__


MISSING_SCRIPT = r"""
import json, sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "hadcore" or name.startswith("hadcore."):
            raise ModuleNotFoundError("No module named 'hadcore' (blocked by the test)")
sys.meta_path.insert(0, _Block())
from qgis.core import QgsApplication, QgsProcessingException
app = QgsApplication([], False)
app.initQgis()
sys.path.append("/usr/share/qgis/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing, qgis.utils
qgis.utils.plugin_paths[:0] = [sys.argv[1]]
sys.path.insert(0, sys.argv[1])  # QGIS adds its plugin folders to sys.path; a bare QgsApplication does not
qgis.utils.updateAvailablePlugins()
out = {"loaded": qgis.utils.loadPlugin(sys.argv[2]), "started": qgis.utils.startProcessingPlugin(sys.argv[2])}
provider = QgsApplication.processingRegistry().providerById("hadcore")
out["ids"] = [a.id() for a in provider.algorithms()] if provider else []
alg = QgsApplication.processingRegistry().algorithmById("hadcore:install_hadcore")
out["help"] = alg.shortHelpString() if alg else ""
try:
    processing.run("hadcore:install_hadcore", {})
    out["run"] = "no error"
except QgsProcessingException as exc:
    out["run"] = str(exc)
print("RESULT" + json.dumps(out))
app.exitQgis()
"""


def test_missing_hadcore_plugin_loads_and_explains(tmp_path):
    env = _env(tmp_path, PLUGIN_DIR, [])
    r = subprocess.run(["/usr/bin/python3", "-c", MISSING_SCRIPT, str(PLUGIN_DIR), PLUGIN_NAME], env=env,
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.split("RESULT", 1)[1])
    assert out["loaded"] and out["started"]
    assert out["ids"] == ["hadcore:install_hadcore"]
    for text in (out["help"], out["run"]):
        assert "cannot be imported" in text and "pip install" in text


NO_SKLEARN_SCRIPT = r"""
import json, sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sklearn", "torch"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
sys.meta_path.insert(0, _Block())
from qgis.core import QgsApplication, QgsProcessingException
app = QgsApplication([], False)
app.initQgis()
sys.path.append("/usr/share/qgis/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing, qgis.utils
qgis.utils.plugin_paths[:0] = [sys.argv[1]]
sys.path.insert(0, sys.argv[1])
qgis.utils.updateAvailablePlugins()
out = {"loaded": qgis.utils.loadPlugin("hadcore_qgis"), "started": qgis.utils.startProcessingPlugin("hadcore_qgis")}
reg = QgsApplication.processingRegistry()
out["ids"] = sorted(a.id() for a in reg.providerById("hadcore").algorithms())
out["help"] = {n: reg.algorithmById(f"hadcore:{n}").shortHelpString() for n in ("kifd", "stad", "rx")}
out["run"] = {}
for name in ("kifd", "stad", "rx"):
    try:
        res = processing.run(f"hadcore:{name}", {"INPUT": sys.argv[2], "OUTPUT": sys.argv[3] + f"/{name}.tif"})
        out["run"][name] = "ok: " + str(sorted(res))
    except QgsProcessingException as exc:
        out["run"][name] = str(exc)
print("RESULT" + json.dumps(out))
"""


def test_missing_optional_packages_are_named_with_the_install_command(tmp_path, crop_tif):
    """No scikit-learn and no torch in QGIS's Python (as in the Windows and macOS builds): every detector is still
    listed, the ones that need them say so in their help, and running one fails with one line that names the
    package and the pip command; RX runs."""
    env = _env(tmp_path, PLUGIN_DIR, [REPO, _venv_site()])
    r = subprocess.run([sys.executable, "-c", NO_SKLEARN_SCRIPT, str(PLUGIN_DIR), str(crop_tif[0]), str(tmp_path)],
                       env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.split("RESULT", 1)[1])
    assert out["loaded"] and out["started"]
    assert {f"hadcore:{n}" for n in hadcore.list_detectors()} <= set(out["ids"])
    assert "Not available here" in out["help"]["kifd"] and "scikit-learn" in out["help"]["kifd"]
    assert "Not available here" in out["help"]["stad"] and "torch" in out["help"]["stad"]
    assert "Not available here" not in out["help"]["rx"]
    for name, package, deb in (("kifd", "scikit-learn", "python3-sklearn"), ("stad", "torch", "python3-torch")):
        msg = out["run"][name]
        assert "\n" not in msg.strip(), msg
        assert f"{name} needs {package}" in msg, msg
        command = msg.split("install with: ", 1)[1]
        # Debian's QGIS runs the system Python, where pip refuses (PEP 668): apt there, pip elsewhere
        assert (command.startswith("sudo apt install") and deb in command) or \
               ("-m pip install" in command and package in command), msg
    assert out["run"]["rx"].startswith("ok:"), out["run"]["rx"]
