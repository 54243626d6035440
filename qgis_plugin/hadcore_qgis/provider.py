"""The ``hadcore`` Processing provider: one algorithm per registry detector, plus the tools."""

from __future__ import annotations

import os

from qgis.core import QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from . import compat
from .loader import load_hadcore

_ICON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "icon.svg")


class HadcoreProvider(QgsProcessingProvider):
    """Provider id ``hadcore``; algorithm ids are the detector names (``hadcore:rx``)."""

    def id(self):
        return "hadcore"

    def name(self):
        return "hadcore"

    def longName(self):
        hc, _ = load_hadcore()
        version = getattr(hc, "__version__", None)
        return f"hadcore {version}: hyperspectral anomaly detection" if version else "hadcore (not installed)"

    def icon(self):
        return QIcon(_ICON)

    def svgIconPath(self):
        return _ICON

    def loadAlgorithms(self):
        from .algorithms import DetectorAlgorithm, MissingHadcoreAlgorithm
        from .tools import EvaluateAlgorithm, VectorizeAlgorithm

        hc, error = load_hadcore()
        if hc is None:
            QgsMessageLog.logMessage(error, "hadcore", compat.MSG_WARNING)
            self.addAlgorithm(MissingHadcoreAlgorithm(error))
            return
        # a detector added to the registry appears here without touching the plugin
        for name in hc.list_detectors():
            try:
                alg = DetectorAlgorithm(name)
            except Exception as exc:  # one broken detector (missing optional dependency) must not hide the rest
                QgsMessageLog.logMessage(f"hadcore: detector {name!r} not available: {exc}", "hadcore", compat.MSG_WARNING)
                continue
            self.addAlgorithm(alg)
        self.addAlgorithm(VectorizeAlgorithm())
        self.addAlgorithm(EvaluateAlgorithm())
