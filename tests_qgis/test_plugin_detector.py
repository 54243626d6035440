"""A third-party detector (an entry point of another installed package) becomes a Processing algorithm of the
provider without touching the plugin: the example of docs/CONTRIBUTING-DETECTORS.md, installed in a temporary
folder as ``pip install`` would leave it (tests/test_plugin_detector.py does the same outside QGIS)."""

from __future__ import annotations

import re
import sys

import hadcore
import numpy as np
from hadcore import registry
from qgis.core import QgsApplication, QgsProcessingFeedback, QgsProcessingParameterNumber

from conftest import NODATA, REPO, read_raster

MODULE = "hadcore_meandist"


def _install(site):
    text = (REPO / "docs" / "CONTRIBUTING-DETECTORS.md").read_text()
    source = re.search(r"```python\n(# hadcore_meandist\.py\n.*?)```", text, re.S).group(1)
    (site / f"{MODULE}.py").write_text(source)
    info = site / "hadcore_meandist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hadcore-meandist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nmeandist = {MODULE}:MeanDistance\n")


def test_an_entry_point_detector_becomes_an_algorithm(plugin, crop_tif, tmp_path, monkeypatch):
    import processing

    _install(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._scan_entry_points.cache_clear()
    try:
        plugin.refreshAlgorithms()  # what QGIS does when the provider reloads
        assert "hadcore:meandist" in {alg.id() for alg in plugin.algorithms()}
        alg = QgsApplication.processingRegistry().createAlgorithmById("hadcore:meandist")
        assert alg.displayName() == "Mean distance (example)" and alg.groupId() == "statistical"
        d = alg.parameterDefinition("POWER")
        assert isinstance(d, QgsProcessingParameterNumber) and d.minimum() == 0.5 and d.maximum() == 4.0
        assert "Euclidean distance" in alg.shortHelpString()

        path, cube, _ = crop_tif
        out = tmp_path / "meandist.tif"
        processing.run("hadcore:meandist", {"INPUT": str(path), "POWER": 2.0, "OUTPUT": str(out)},
                       feedback=QgsProcessingFeedback())
        scores = read_raster(out)[0]
        ref = hadcore.get_detector("meandist", power=2).detect(cube, mask=(cube != NODATA).all(axis=2))
        np.testing.assert_allclose(scores, ref, rtol=1e-5, equal_nan=True)
    finally:
        monkeypatch.undo()
        sys.modules.pop(MODULE, None)
        registry._scan_entry_points.cache_clear()
        plugin.refreshAlgorithms()
    assert "hadcore:meandist" not in {alg.id() for alg in plugin.algorithms()}
