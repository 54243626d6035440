"""Run QGIS's "Run as Batch Process" dialog of ``hadcore:rx`` in a QGIS of its own; write a JSON report.

Started by ``tests_qgis/test_batch_model.py`` (``python run_batch_dialog.py CONFIG.json``). From QGIS 3.28 the
dialog runs its rows as tasks on Qt's event loop; under pytest-qgis that loop aborted inside Qt even with no
hadcore post-processor attached, so the dialog runs here, in a plain ``QgsApplication`` as in ``qgis_process``.

CONFIG: ``{"plugin_dir": ..., "rows": [{"input": ..., "output": ..., "detections": ...}], "threshold": "top:10",
"report": "report.json", "timeout_s": 120}``. The report: the parameters of each row the dialog completed
(``rows``, in order), the errors of its summary (``errors``; None where QGIS made none) and the names of the
layers it loaded into the project, top of the layer tree first.
"""

from __future__ import annotations

import json
import os
import sys
import time

from qgis.core import QgsApplication, QgsProcessingContext, QgsProject

CONFIG = json.load(open(sys.argv[1], encoding="utf-8"))
app = QgsApplication([], False)
app.initQgis()
sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))
from processing.core.Processing import Processing  # noqa: E402

Processing.initialize()
import qgis.utils  # noqa: E402

qgis.utils.plugin_paths[:0] = [CONFIG["plugin_dir"]]
sys.path.insert(0, CONFIG["plugin_dir"])
qgis.utils.updateAvailablePlugins()
assert qgis.utils.loadPlugin("hadcore_qgis") and qgis.utils.startProcessingPlugin("hadcore_qgis")

from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog  # noqa: E402
from qgis.PyQt.QtCore import QCoreApplication  # noqa: E402

captured = {"rows": [], "errors": None}


def _value(v):
    """A parameter value as the path it names (an output definition's sink) or its string."""
    sink = getattr(v, "sink", None)
    if sink is not None:
        return sink.staticValue()
    return v if isinstance(v, (int, float)) else str(v)


class Dialog(BatchAlgorithmDialog):
    """QGIS's dialog, noting each row it completes (its outputs loaded) and the summary it may end with."""

    def handleAlgorithmResults(self, algorithm, context, feedback, parameters):  # noqa: N802 - QGIS's name
        result = super().handleAlgorithmResults(algorithm, context, feedback, parameters)
        captured["rows"].append({k: _value(v) for k, v in parameters.items()})
        return result

    def createSummaryTable(self, algorithm_results, errors):  # noqa: N802 - QGIS's name
        if not captured["rows"]:  # QGIS 3.22's dialog loads results with the module function, not the method
            captured["rows"] = [{k: _value(v) for k, v in r["parameters"].items()} for r in algorithm_results]
        captured["errors"] = [str(e) for e in errors]


alg = QgsApplication.processingRegistry().createAlgorithmById("hadcore:rx")
dlg = Dialog(alg)
panel = dlg.mainWidget()
rows = CONFIG["rows"]
panel.addRow(len(rows) - panel.batchRowCount())
context = QgsProcessingContext()
col = panel.parameter_to_column
for i, row in enumerate(rows):
    # what a user types into the table (row 0 of the table is the "fill down" row)
    panel.wrappers[i][col["INPUT"]].setParameterValue(row["input"], context)
    panel.wrappers[i][col["THRESHOLD"]].setParameterValue(CONFIG["threshold"], context)
    panel.tblParameters.cellWidget(i + 1, col["OUTPUT"]).setValue(row["output"])
    panel.tblParameters.cellWidget(i + 1, col["DETECTIONS"]).setValue(row["detections"])
panel.checkLoadLayersOnCompletion.setChecked(True)
dlg.runAlgorithm()  # the dialog's Run: row after row, on one algorithm instance
deadline = time.monotonic() + float(CONFIG.get("timeout_s", 120))
while len(captured["rows"]) < len(rows) and captured["errors"] is None and time.monotonic() < deadline:
    QCoreApplication.processEvents()
    time.sleep(0.01)
end = time.monotonic() + 2.0  # the summary (QGIS 3.22, 3.40) follows the last row
while captured["errors"] is None and time.monotonic() < end:
    QCoreApplication.processEvents()
    time.sleep(0.01)
captured["timed_out"] = len(captured["rows"]) < len(rows)
captured["layers"] = [n.layer().name() for n in QgsProject.instance().layerTreeRoot().findLayers()]
with open(CONFIG["report"] + ".part", "w", encoding="utf-8") as fh:
    json.dump(captured, fh, indent=1)
os.replace(CONFIG["report"] + ".part", CONFIG["report"])
# the report is written: leave without QGIS's shutdown, which can hang (3.22, after a batch) or abort
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
