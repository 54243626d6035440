"""The install command the QGIS plugin gives for a missing optional package (qgis_plugin/hadcore_qgis/deps.py).

deps.py imports nothing from QGIS, so it is loaded here by path, without the plugin package.
"""

import importlib.util
from pathlib import Path

DEPS = Path(__file__).resolve().parents[1] / "qgis_plugin" / "hadcore_qgis" / "deps.py"


def _deps():
    spec = importlib.util.spec_from_file_location("hadcore_qgis_deps", DEPS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_missing_finds_absent_modules_only():
    deps = _deps()
    assert deps.missing(["numpy", "json"]) == []
    assert deps.missing(["numpy", "no_such_module_hadcore_xyz"]) == ["no_such_module_hadcore_xyz"]


def test_install_command_per_platform():
    deps = _deps()
    win = deps.install_command(["sklearn"], platform="win32", executable="C:/OSGeo4W/bin/qgis-bin.exe", prefix="")
    assert win == "python -m pip install scikit-learn"
    mac = deps.install_command(["torch"], platform="darwin", executable="/Applications/QGIS.app/Contents/MacOS/QGIS",
                               prefix="/Applications/QGIS.app/Contents/MacOS")
    assert mac.startswith("/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install --user torch")
    assert "download.pytorch.org/whl/cpu" in mac
    linux = deps.install_command(["sklearn", "torch"], platform="linux", executable="/usr/bin/qgis", prefix="/usr",
                                 externally_managed=False)
    assert linux.startswith("/usr/bin/python3 -m pip install --user scikit-learn torch")
    venv = deps.install_command(["h5py"], platform="linux", executable="/opt/venv/bin/python3", prefix="/usr",
                                externally_managed=False)
    assert venv == "/opt/venv/bin/python3 -m pip install --user h5py"
    # Debian's QGIS runs the system Python, where pip refuses (PEP 668): apt
    debian = deps.install_command(["sklearn", "torch"], platform="linux", executable="/usr/bin/qgis",
                                  prefix="/usr", externally_managed=True)
    assert debian == "sudo apt install python3-sklearn python3-torch"


def test_message_is_one_line_naming_package_and_command():
    deps = _deps()
    msg = deps.message("kifd", ["sklearn"], platform="win32", executable="qgis-bin.exe", prefix="")
    assert "\n" not in msg
    assert msg.startswith("kifd needs scikit-learn") and "OSGeo4W Shell" in msg
    assert "python -m pip install scikit-learn" in msg
