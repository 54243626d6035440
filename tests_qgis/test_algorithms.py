"""Every registry detector through ``processing.run`` on a small real crop, inside a real QGIS."""

from __future__ import annotations

import threading
import time

import hadcore
import numpy as np
import pytest
from qgis.PyQt.QtCore import Qt
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

from conftest import NODATA, fast_params, read_raster, registry_detectors, to_qgis_params


def run(alg_id, params, feedback=None):
    import processing

    return processing.run(alg_id, params, feedback=feedback or QgsProcessingFeedback())


def direct(name, cube, **params):
    """The same detector called directly on the array (the reference for the plugin's output)."""
    return hadcore.get_detector(name, **params).detect(cube, mask=(cube != NODATA).all(axis=2))


@pytest.mark.parametrize("name", registry_detectors())
def test_every_detector_writes_a_georeferenced_layer(plugin, crop_tif, tmp_path, name):
    path, cube, _ = crop_tif
    params = fast_params(name)
    out = tmp_path / f"{name}.tif"
    res = run(f"hadcore:{name}", {"INPUT": str(path), "OUTPUT": str(out), **to_qgis_params(name, params)})
    assert res["OUTPUT"] == str(out)
    scores, gt_out, proj_out, nodata = read_raster(out)
    _, gt_in, proj_in, _ = read_raster(path)
    assert scores.shape == cube.shape[:2]
    assert gt_out == pytest.approx(gt_in)
    assert proj_out == proj_in and "32615" in proj_out
    assert np.isnan(nodata)
    from osgeo import gdal

    ds = gdal.Open(str(out))
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert ds.GetMetadataItem("detector") == name
    assert np.isnan(scores[0, 0]), "the nodata pixel of the input must be nodata in the output"
    assert np.isfinite(scores[1:, 1:]).all()
    ref = direct(name, cube, **params)
    np.testing.assert_allclose(scores, ref, rtol=1e-5, atol=1e-6 * np.nanmax(np.abs(ref)), equal_nan=True)


def test_a_changed_parameter_reaches_the_detector(plugin, crop_tif, tmp_path):
    path, cube, _ = crop_tif
    a = run("hadcore:rx", {"INPUT": str(path), "OUTPUT": str(tmp_path / "a.tif")})
    b = run("hadcore:rx", {"INPUT": str(path), "RIDGE": 0.5, "OUTPUT": str(tmp_path / "b.tif")})
    sa, sb = read_raster(a["OUTPUT"])[0], read_raster(b["OUTPUT"])[0]
    assert not np.allclose(sa[1:, 1:], sb[1:, 1:], rtol=1e-3)
    np.testing.assert_allclose(sb, direct("rx", cube, ridge=0.5), rtol=1e-5, equal_nan=True)


def test_band_selection_and_scaling(plugin, crop_tif, tmp_path):
    path, cube, _ = crop_tif
    res = run("hadcore:rx", {"INPUT": str(path), "BANDS": "1-5,9", "SCALE": True, "OUTPUT": str(tmp_path / "s.tif")})
    s = read_raster(res["OUTPUT"])[0]
    ref = direct("rx", cube[:, :, [0, 1, 2, 3, 4, 8]])
    ref = (ref - np.nanmin(ref)) / (np.nanmax(ref) - np.nanmin(ref))
    np.testing.assert_allclose(s, ref, rtol=1e-4, atol=1e-6, equal_nan=True)
    assert np.nanmin(s) == 0.0 and np.nanmax(s) == pytest.approx(1.0)


def _features(path):
    layer = QgsVectorLayer(str(path), "det", "ogr")
    assert layer.isValid(), path
    return layer, list(layer.getFeatures())


def test_detections_polygons_and_attributes(plugin, crop_tif, tmp_path):
    path, cube, _ = crop_tif
    res = run("hadcore:rx", {"INPUT": str(path), "OUTPUT": str(tmp_path / "rx.tif"), "THRESHOLD": "top:25",
                             "DETECTIONS": str(tmp_path / "det.gpkg")})
    layer, feats = _features(res["DETECTIONS"])
    assert res["N_DETECTIONS"] == len(feats) >= 1
    assert "32615" in layer.crs().authid()
    scores = read_raster(res["OUTPUT"])[0]
    top = np.sort(scores[np.isfinite(scores)])[-25]
    assert sum(f["pixels"] for f in feats) == int((scores >= top).sum())
    for f in feats:
        geom = f.geometry()
        # pixels are 3.5 m squares: the polygon area is the pixel count times 12.25 m2
        assert geom.area() == pytest.approx(f["pixels"] * 3.5 ** 2)
        assert f["area"] == pytest.approx(f["pixels"] * 3.5 ** 2)
        assert f["peak"] >= f["mean"] >= top - 1e-3 * abs(top)
        from qgis.core import QgsGeometry, QgsPointXY

        assert geom.contains(QgsGeometry.fromPointXY(QgsPointXY(f["peak_x"], f["peak_y"])))
    ids = [f["id"] for f in feats]
    assert sorted(ids) == list(range(1, len(feats) + 1))
    peaks = [f["peak"] for f in sorted(feats, key=lambda f: f["id"])]
    assert peaks == sorted(peaks, reverse=True)

    # the vectorize tool on the written layer gives the same detections
    vec = run("hadcore:vectorize", {"INPUT": res["OUTPUT"], "THRESHOLD": "top:25",
                                    "OUTPUT": str(tmp_path / "vec.gpkg")})
    _, vfeats = _features(vec["OUTPUT"])
    assert [(f["id"], f["pixels"]) for f in vfeats] == [(f["id"], f["pixels"]) for f in feats]
    assert vec["THRESHOLD_VALUE"] == pytest.approx(top, rel=1e-6)


def test_evaluate_reports_the_metrics(plugin, crop_tif, tmp_path):
    from hadcore.metrics import evaluate

    path, cube, gt = crop_tif
    gt_path = path.with_name("urban1_crop_gt.tif")
    rx = run("hadcore:rx", {"INPUT": str(path), "OUTPUT": str(tmp_path / "rx.tif")})
    html = tmp_path / "report.html"
    res = run("hadcore:evaluate", {"INPUT": rx["OUTPUT"], "GROUND_TRUTH": str(gt_path), "OUTPUT_HTML": str(html)})
    ref = evaluate(direct("rx", cube), gt)
    for key, out in (("auc_pd_pf", "AUC_PD_PF"), ("auc_pd_tau", "AUC_PD_TAU"), ("auc_pf_tau", "AUC_PF_TAU"),
                     ("auc_bs", "AUC_BS"), ("snpr", "SNPR")):
        assert res[out] == pytest.approx(ref[key], rel=1e-5), out
    assert res["N_ANOMALY"] == int(gt.sum() - gt[0, 0])  # pixel (0, 0) is nodata in the crop
    text = html.read_text()
    assert f"{ref['auc_pd_pf']:.4f}" in text and "<svg" in text


@pytest.mark.parametrize("params, words", [
    ({"THRESHOLD": "median", "DETECTIONS": "TEMPORARY_OUTPUT"}, "bad threshold"),
    ({"BANDS": "1-999"}, "outside 1-20"),
    ({"BANDS": "1-1"}, "at least"),
])
def test_bad_input_gives_a_one_line_message(plugin, crop_tif, tmp_path, params, words):
    path, _, _ = crop_tif
    with pytest.raises(QgsProcessingException) as exc:
        run("hadcore:rx", {"INPUT": str(path), "OUTPUT": str(tmp_path / "x.tif"), **params})
    msg = str(exc.value)
    assert words in msg and "\n" not in msg.strip() and "Traceback" not in msg


def test_bad_detector_parameter_is_reported(plugin, crop_tif, tmp_path):
    if "lrx" not in hadcore.list_detectors():
        pytest.skip("lrx not registered")
    path, _, _ = crop_tif
    with pytest.raises(QgsProcessingException) as exc:
        run("hadcore:lrx", {"INPUT": str(path), "INNER": 4, "OUTPUT": str(tmp_path / "x.tif")})
    assert "inner" in str(exc.value) and "odd" in str(exc.value)


@pytest.mark.parametrize("name", registry_detectors())
def test_cancel_inside_every_detector(plugin, crop_tif, tmp_path, name):
    """The feedback's cancel flag stops the detector at its next progress report."""
    path, _, _ = crop_tif
    feedback = QgsProcessingFeedback()
    # cancel once progress passed reading the bands (5 %): the detector itself must notice. Direct connection:
    # detectors may report from worker threads, and no event loop runs during processing.run.
    feedback.progressChanged.connect(lambda p: feedback.cancel() if p > 5.0 else None, Qt.ConnectionType.DirectConnection)
    out = tmp_path / "c.tif"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run(f"hadcore:{name}", {"INPUT": str(path), "OUTPUT": str(out), **to_qgis_params(name, fast_params(name))},
            feedback)
    assert not out.exists()


def test_cancellation_is_honoured_within_a_second(plugin, sample_tif, tmp_path):
    """A long run (LRX on the whole sample scene) cancelled from another thread stops within about 1 s."""
    if "lrx" not in hadcore.list_detectors():
        pytest.skip("lrx not registered")
    scene, _ = sample_tif
    feedback = QgsProcessingFeedback()
    timer = threading.Timer(1.0, feedback.cancel)
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(QgsProcessingException, match="Cancelled"):
            run("hadcore:lrx", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "l.tif")}, feedback)
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0 + 1.5, f"took {elapsed:.2f} s to stop after a cancel at 1.0 s"
