"""Drive the real QGIS desktop (run by ``qgis --code run_desktop.py`` under Xvfb) and write a JSON report.

Started by ``tests_qgis/test_desktop.py``; it reads its settings from the JSON file named by the environment
variable ``HADCORE_DESKTOP_CONFIG``::

    {"input": "sample_data/abu-airport-1.tif", "out_dir": "/tmp/...", "report": "/tmp/.../report.json",
     "runs": [{"tag": "rx", "algorithm": "rx",
               "parameters": {"THRESHOLD": "top:20", "DETECTIONS": "TEMPORARY_OUTPUT"}}, ...],
     "timeout_s": 200, "run_timeout_s": 120}

What it does, as a user would, one step at a time on QGIS's event loop (``QTimer.singleShot``):

1. waits until QGIS has started and the ``hadcore`` provider is registered (the plugin, installed from the
   zip into a fresh profile, is loaded by QGIS itself);
2. adds the input raster as a layer (``iface.addRasterLayer``);
3. for each run in turn: opens the algorithm's dialog (``processing.createAlgorithmDialog``) with INPUT =
   that layer and the run's parameters (DETECTIONS enabled), takes a screenshot of it, presses **Run**;
   polls until the dialog reports the algorithm finished (``algorithmFinished``) and its output layers are
   in the project; closes the dialog, zooms to the scene, waits for the canvas, screenshots the main window
   and records the layer tree;
4. writes the report: per run the help HTML (``shortHelpString``), the dialog's parameters and log, the
   results, the layers it added, and the layer tree after it (names top first, type, renderer type,
   renderer min/max, band statistics, source); QGIS's message log; which hadcore module was imported;
   then quits QGIS.

Screenshots (in ``out_dir``): ``qgis_dialog.png`` and ``qgis_map.png`` for the first run,
``qgis_dialog_<tag>.png`` / ``qgis_map_<tag>.png`` for later ones, ``qgis_dialog_log_<tag>.png`` (the
dialog's log after each run).

The report is rewritten after every step (``"stage"`` says how far it got), so a crash or a hang still
leaves what happened. QGIS 3.22 may abort while shutting down: the test judges the run by this report.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

from qgis.core import Qgis, QgsApplication, QgsProject
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QDockWidget, QTextEdit
from qgis.utils import iface

with open(os.environ["HADCORE_DESKTOP_CONFIG"], encoding="utf-8") as _fh:
    CONFIG = json.load(_fh)
OUT_DIR = CONFIG["out_dir"]
T0 = time.monotonic()
REPORT = {"stage": "started", "errors": [], "log": [], "messages": [],
          "qgis_version": Qgis.QGIS_VERSION, "python": sys.version.split()[0], "screenshots": {}}
STATE = {"done": False, "finished": None}  # keeps Python references (dialog, layers) alive


def _compat():
    """The plugin's own table of QGIS names (the plugin, installed from the ZIP, is importable by now)."""
    from hadcore_qgis import compat

    return compat


def log(msg: str) -> None:
    REPORT["log"].append(f"{time.monotonic() - T0:7.2f} s  {msg}")


def write_report() -> None:
    tmp = CONFIG["report"] + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(REPORT, fh, indent=1, default=str)
    os.replace(tmp, CONFIG["report"])


def _on_message(message, tag, level):
    REPORT["messages"].append({"tag": tag, "level": int(level), "message": message[:2000]})


QgsApplication.messageLog().messageReceived.connect(_on_message)


def step(fn):
    """Run ``fn`` on the event loop; any exception ends the run with the traceback in the report."""

    def wrapped():
        if STATE["done"]:
            return
        try:
            fn()
        except Exception:
            fail(f"{fn.__name__}: {traceback.format_exc()}")

    return wrapped


def later(ms: int, fn) -> None:
    QTimer.singleShot(ms, step(fn))


def fail(msg: str) -> None:
    REPORT["errors"].append(msg)
    log("FAILED: " + (msg.splitlines()[0] if msg else "?"))
    finish()


def finish() -> None:
    if STATE["done"]:
        return
    STATE["done"] = True
    REPORT["seconds"] = round(time.monotonic() - T0, 2)
    write_report()
    # close the project first (QGIS 3.22 crashes in its destructor when it still holds the output layers),
    # then leave the event loop: no "save project?" question. It may still abort while shutting down,
    # after this report is written.
    QTimer.singleShot(300, _quit)


def _quit():
    try:
        QgsProject.instance().clear()
        QgsProject.instance().setDirty(False)
    finally:
        QTimer.singleShot(300, lambda: QgsApplication.instance().exit(0))


def screenshot(widget, name: str) -> str:
    path = os.path.join(OUT_DIR, name)
    ok = widget.grab().save(path, "PNG")
    REPORT["screenshots"][name] = path if ok else None
    log(f"screenshot {name}: {'saved' if ok else 'FAILED'}")
    return path


def wait_for(condition, then, what: str, timeout_s: float, every_ms: int = 250) -> None:
    """Poll ``condition()`` on the event loop; call ``then()`` when true, fail after ``timeout_s``."""
    start = time.monotonic()

    def poll():
        if condition():
            log(f"{what}: after {time.monotonic() - start:.1f} s")
            then()
        elif time.monotonic() - start > timeout_s:
            fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        else:
            later(every_ms, poll)

    poll.__name__ = f"wait_for({what})"
    later(every_ms, poll)


# ----------------------------------------------------------------------------- steps
def wait_for_qgis():
    REPORT["stage"] = "waiting for QGIS and the hadcore provider"
    write_report()

    def ready():
        return (iface is not None and iface.mainWindow() is not None and iface.mainWindow().isVisible()
                and QgsApplication.processingRegistry().providerById("hadcore") is not None
                and all(QgsApplication.processingRegistry().algorithmById(f"hadcore:{r['algorithm']}") is not None
                        for r in _runs()))

    wait_for(ready, add_layer, "QGIS started and the hadcore provider registered", timeout_s=90)


def add_layer():
    import qgis.utils

    REPORT["stage"] = "adding the input layer"
    REPORT["active_plugins"] = sorted(qgis.utils.active_plugins)
    hc = sys.modules.get("hadcore")
    REPORT["hadcore_file"] = getattr(hc, "__file__", None)
    REPORT["hadcore_version"] = getattr(hc, "__version__", None)
    provider = QgsApplication.processingRegistry().providerById("hadcore")
    REPORT["provider_algorithms"] = sorted(a.id() for a in provider.algorithms()) if provider else []
    win = iface.mainWindow()
    win.resize(1600, 1000)
    win.move(0, 0)
    layers_dock = win.findChild(QDockWidget, "Layers")
    if layers_dock is not None:  # wide enough for "rx detections – abu-airport-1"
        win.resizeDocks([layers_dock], [340], Qt.Orientation.Horizontal)
    layer = iface.addRasterLayer(CONFIG["input"])  # named after the file, like Layer > Add Raster Layer
    if layer is None or not layer.isValid():
        raise RuntimeError(f"cannot add the raster layer {CONFIG['input']}")
    STATE["input_layer"] = layer
    REPORT["input_layer"] = {"name": layer.name(), "id": layer.id(), "source": layer.source()}
    log(f"input layer {layer.name()!r} added")
    write_report()
    later(500, open_dialog)


def _runs():
    return CONFIG.get("runs") or [{"tag": "rx", "algorithm": "rx", "parameters": {}}]


def open_dialog():
    import processing

    run = _runs()[STATE.setdefault("run_index", 0)]
    tag = run["tag"]
    alg_id = f"hadcore:{run['algorithm']}"
    REPORT["stage"] = f"{tag}: opening the dialog of {alg_id}"
    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    if alg is None:
        raise RuntimeError(f"algorithm {alg_id} not found")
    entry = {"tag": tag, "alg_id": alg_id, "alg_name": alg.name(), "display_name": alg.displayName(),
             "help_html": alg.shortHelpString()}
    REPORT.setdefault("runs", []).append(entry)
    STATE["run"] = entry
    params = {"INPUT": STATE["input_layer"].id(), **run.get("parameters", {})}
    dlg = processing.createAlgorithmDialog(alg_id, params)
    if dlg is None:
        raise RuntimeError(f"processing.createAlgorithmDialog({alg_id!r}) returned None")
    STATE["dialog"] = dlg
    STATE["finished"] = None
    dlg.resize(1000, 760)
    dlg.show()
    dlg.raise_()
    dlg.algorithmFinished.connect(lambda ok, results: STATE.update(finished=(bool(ok), dict(results))))
    log(f"{tag}: dialog of {alg_id} shown")
    write_report()
    later(1500, press_run)


def press_run():
    entry, dlg = STATE["run"], STATE["dialog"]
    REPORT["stage"] = f"{entry['tag']}: pressing Run"
    # the values the dialog's widgets hold, as the dialog passes them to the algorithm
    entry["dialog_parameters"] = {k: str(v) for k, v in dlg.createProcessingParameters().items()}
    entry["screenshot_dialog"] = screenshot(
        dlg, "qgis_dialog.png" if STATE["run_index"] == 0 else f"qgis_dialog_{entry['tag']}.png")
    STATE["layers_before"] = set(QgsProject.instance().mapLayers())
    dlg.runButton().click()
    log(f"{entry['tag']}: Run pressed")
    write_report()

    def finished():
        return STATE["finished"] is not None

    wait_for(finished, after_run, f"{entry['tag']}: the algorithm to finish",
             timeout_s=float(CONFIG.get("run_timeout_s", 120)))


def _dialog_log(dlg) -> str:
    texts = [w.toPlainText() for w in dlg.findChildren(QTextEdit) if w.objectName() == "txtLog"]
    return "\n".join(texts)


def after_run():
    entry, dlg = STATE["run"], STATE["dialog"]
    REPORT["stage"] = f"{entry['tag']}: algorithm finished"
    ok, results = STATE["finished"]
    entry["run_ok"] = ok
    entry["results"] = {k: str(v) for k, v in results.items()}
    entry["dialog_log"] = _dialog_log(dlg)
    log(f"{entry['tag']}: finished: ok={ok}, results={sorted(results)}")
    write_report()
    if not ok:
        raise RuntimeError(f"{entry['tag']}: the algorithm failed in the dialog; see its dialog_log")
    screenshot(dlg, f"qgis_dialog_log_{entry['tag']}.png")
    n_outputs = int(CONFIG.get("outputs_per_run", 2))

    def layers_loaded():
        return len(set(QgsProject.instance().mapLayers()) - STATE["layers_before"]) >= n_outputs

    wait_for(layers_loaded, show_map, f"{entry['tag']}: the output layers in the project", timeout_s=30)


def show_map():
    entry, dlg = STATE["run"], STATE["dialog"]
    REPORT["stage"] = f"{entry['tag']}: showing the map"
    entry["new_layers"] = sorted(set(QgsProject.instance().mapLayers()) - STATE["layers_before"])
    if dlg.isVisible():
        dlg.close()  # what a user does next: close the dialog and look at the map
    toolbox = iface.mainWindow().findChild(QDockWidget, "ProcessingToolbox")
    if toolbox is not None:
        toolbox.show()
    canvas = iface.mapCanvas()
    canvas.setExtent(STATE["input_layer"].extent())
    canvas.refreshAllLayers()
    start = time.monotonic()

    def rendered():
        # at least 2 s for the refresh to start, then until the canvas stops drawing
        return time.monotonic() - start > 2.0 and not canvas.isDrawing()

    wait_for(rendered, after_map, f"{entry['tag']}: the map canvas to finish rendering", timeout_s=30)


def after_map():
    entry = STATE["run"]
    entry["layer_tree"] = layer_tree()
    entry["screenshot_map"] = screenshot(
        iface.mainWindow(), "qgis_map.png" if STATE["run_index"] == 0 else f"qgis_map_{entry['tag']}.png")
    write_report()
    STATE["run_index"] += 1
    if STATE["run_index"] < len(_runs()):
        later(500, open_dialog)
    else:
        later(100, record)


def _renderer_info(layer) -> dict:
    r = layer.renderer()
    info = {"renderer": r.type() if r is not None else None}
    if layer.type() == _compat().LAYER_RASTER and r is not None:
        if hasattr(r, "classificationMin"):  # singlebandpseudocolor
            info.update(min=r.classificationMin(), max=r.classificationMax())
            shader = r.shader()
            fn = shader.rasterShaderFunction() if shader is not None else None
            if fn is not None and hasattr(fn, "colorRampItemList"):
                info["ramp"] = [(i.value, i.color.name()) for i in fn.colorRampItemList()]
        elif hasattr(r, "contrastEnhancement") and r.contrastEnhancement() is not None:  # singlebandgray
            ce = r.contrastEnhancement()
            info.update(min=ce.minimumValue(), max=ce.maximumValue())
        every = _compat().resolve("Qgis.RasterBandStatistic.All", "QgsRasterBandStats.Stats.All")
        stats = layer.dataProvider().bandStatistics(1, every)
        info["band1_stats"] = {"min": stats.minimumValue, "max": stats.maximumValue, "mean": stats.mean}
    elif r is not None and hasattr(r, "symbol") and r.symbol() is not None:
        sym = r.symbol()
        info["symbol"] = sym.dump() if hasattr(sym, "dump") else str(sym)
        info["n_features"] = layer.featureCount()
        info["fields"] = [f.name() for f in layer.fields()]
    return info


def layer_tree():
    """The Layers panel, top first: name, type, provider, source, renderer (type, min/max, ...)."""
    tree = []
    for node in QgsProject.instance().layerTreeRoot().findLayers():
        layer = node.layer()
        entry = {"name": node.name(), "layer_name": layer.name() if layer else None,
                 "id": layer.id() if layer else None,
                 "type": {_compat().LAYER_RASTER: "raster", _compat().LAYER_VECTOR: "vector"}.get(
                     layer.type(), str(layer.type())) if layer else None,
                 "provider": layer.providerType() if layer else None,
                 "source": layer.source() if layer else None,
                 "visible": node.isVisible()}
        if layer is not None:
            entry.update(_renderer_info(layer))
        tree.append(entry)
    return tree


def record():
    REPORT["stage"] = "recording"
    REPORT["layer_tree"] = layer_tree()
    REPORT["stage"] = "done"
    log("done")
    finish()


# ----------------------------------------------------------------------------- start
def _watchdog():
    if not STATE["done"]:
        fail(f"watchdog: the whole run took longer than {CONFIG.get('timeout_s', 180)} s "
             f"(stage: {REPORT['stage']})")


QTimer.singleShot(int(1000 * float(CONFIG.get("timeout_s", 180))), _watchdog)
write_report()
later(1000, wait_for_qgis)
