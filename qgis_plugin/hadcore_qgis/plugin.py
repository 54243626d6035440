"""The plugin object: registers the Processing provider (GUI and headless)."""

from __future__ import annotations

from qgis.core import QgsApplication, QgsMessageLog

from . import compat
from .loader import load_hadcore


class HadcorePlugin:
    """Adds the ``hadcore`` Processing provider; ``iface`` may be None (``qgis_process``, tests)."""

    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802 - QGIS's name
        from .provider import HadcoreProvider

        if self.provider is None:
            self.provider = HadcoreProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802 - QGIS's name
        self.initProcessing()
        _, error = load_hadcore()
        if error and self.iface is not None:
            self.iface.messageBar().pushMessage("hadcore", error.splitlines()[0], level=compat.MSG_WARNING, duration=0)
        if error:
            QgsMessageLog.logMessage(error, "hadcore", compat.MSG_WARNING)

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
