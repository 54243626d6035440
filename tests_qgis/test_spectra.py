"""The spectra of detections from the dialog (issue 26): a detector algorithm's SPECTRA table and HTML REPORT hold
each detection's mean, SD and peak spectra and the background's, the same as the pixels themselves; the table,
saved into a GeoPackage, names a target for "find more like this" (TARGET = spectra.gpkg:ID), which gives the
scores Python gives for the same spec."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import read_raster
from test_bands import WAVELENGTHS, _write

from conftest import load_npz


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    cube, _ = load_npz("abu-urban-1")
    crop = cube[10:74, 10:74, ::17][:, :, :12].astype(np.float32).copy()
    d = tmp_path_factory.mktemp("spectra")
    return _write(d / "scene.tif", crop), crop, d


def test_spectra_table_report_and_a_detection_as_target(plugin, scene):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

    import hadcore
    from hadcore.components import label_detections
    from hadcore.vectorize import read_detection_spectra

    path, crop, d = scene
    res = processing.run("hadcore:rx", {"INPUT": str(path), "OUTPUT": str(d / "rx.tif"),
                                        "THRESHOLD": "percentile:99", "DETECTIONS": str(d / "det.gpkg"),
                                        "SPECTRA": str(d / "spectra.gpkg"), "REPORT": str(d / "report.html")},
                         feedback=QgsProcessingFeedback())
    assert res["N_DETECTIONS"] > 0
    table = QgsVectorLayer(res["SPECTRA"], "spectra", "ogr")
    names = [f.name() for f in table.fields()]
    valid = table.isValid()
    del table  # not held by Python when QGIS shuts down
    assert valid and names[-7:] == \
        ["id", "band", "wavelength_nm", "mean", "std", "peak", "pixels"]
    # the scores QGIS wrote, labelled as the algorithm did: every spectrum against the pixels themselves
    scores = read_raster(d / "rx.tif")[0]
    labels, rows = label_detections(scores, "percentile:99")
    keep = [b for b in range(12) if b != 3]  # band 4 is flagged bad in the file
    X = crop[:, :, keep].astype(np.float64)
    found = read_detection_spectra(d / "spectra.gpkg")
    assert list(found.ids) == [r["id"] for r in rows]
    for k, r in enumerate(rows):
        np.testing.assert_allclose(found.mean[k], X[labels == r["id"]].mean(0), rtol=1e-9)
        np.testing.assert_allclose(found.std[k], X[labels == r["id"]].std(0), rtol=1e-7, atol=1e-9)
        np.testing.assert_array_equal(found.peak[k], X[r["peak_row"], r["peak_col"]])
    np.testing.assert_allclose(found.background_mean, X[labels == 0].mean(0), rtol=1e-9)
    np.testing.assert_allclose(found.wavelengths, WAVELENGTHS[keep], atol=0.05)
    html = (d / "report.html").read_text(encoding="utf-8")
    assert "<table" in html and str(rows[0]["pixels"]) in html
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        assert "data:image/png;base64," in html

    # find more like detection 1, from the dialog and from Python: the same scores
    spec = f"{d / 'spectra.gpkg'}:1"
    processing.run("hadcore:ace", {"INPUT": str(path), "TARGET": spec, "OUTPUT": str(d / "ace.tif")},
                   feedback=QgsProcessingFeedback())
    ours = read_raster(d / "ace.tif")[0]
    np.testing.assert_allclose(ours, hadcore.detect("ace", str(path), target=spec), rtol=1e-4, atol=1e-6)
    assert np.nanmean(ours[labels == 1]) > np.nanpercentile(ours, 95)
    with pytest.raises(QgsProcessingException, match="no detection with id 999"):
        processing.run("hadcore:ace", {"INPUT": str(path), "TARGET": f"{d / 'spectra.gpkg'}:999",
                                       "OUTPUT": str(d / "bad.tif")}, feedback=QgsProcessingFeedback())
    assert not (d / "bad.tif").exists()
