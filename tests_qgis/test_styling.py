"""Layers loaded into the project by Processing: styled, named, detections above their scores (styling.py).

Runs through ``processing.runAndLoadResults`` (what the Processing dialog does: Processing's
``handleAlgorithmResults`` loads the outputs and calls the layer post-processors), inside a real QGIS.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from qgis.core import (
    QgsColorRampShader,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsStyle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QColor

from conftest import read_raster

DASH = "\u2013"
RAMP = "Magma"  # the documented choice (styling.RAMP)


def _compat():
    """The plugin's table of QGIS names (importable once the ``plugin`` fixture has loaded it)."""
    from hadcore_qgis import compat

    return compat


@pytest.fixture(autouse=True)
def empty_project():
    project = QgsProject.instance()
    project.removeAllMapLayers()
    project.layerTreeRoot().removeAllChildren()
    yield project
    project.removeAllMapLayers()
    project.layerTreeRoot().removeAllChildren()


def load(alg_id, params):
    import processing

    res = processing.runAndLoadResults(alg_id, dict(params), feedback=QgsProcessingFeedback())
    assert res is not None, f"{alg_id} failed"
    return res


def tree():
    """Layers of the layer tree, top first (what the user sees)."""
    return [n.layer() for n in QgsProject.instance().layerTreeRoot().findLayers()]


def names():
    return [lyr.name() for lyr in tree()]


def by_name(name):
    found = QgsProject.instance().mapLayersByName(name)
    assert len(found) == 1, f"{name!r}: {len(found)} layer(s); project has {names()}"
    return found[0]


def rx_on_sample(sample_tif, tmp_path, stem="rx", **extra):
    scene, _ = sample_tif
    return load("hadcore:rx", {"INPUT": str(scene), "OUTPUT": str(tmp_path / f"{stem}.tif"),
                               "DETECTIONS": "TEMPORARY_OUTPUT", "THRESHOLD": "top:20", **extra})


def assert_score_style(layer, path):
    scores = read_raster(path)[0]
    lo, hi = np.nanpercentile(scores, [2.0, 99.8])  # independent of the plugin: numpy on the file
    assert np.isfinite(scores).sum() > 0 and hi > lo
    r = layer.renderer()
    assert r.type() == "singlebandpseudocolor"
    assert r.band() == 1
    assert r.classificationMin() == pytest.approx(lo, rel=1e-9, abs=1e-12)
    assert r.classificationMax() == pytest.approx(hi, rel=1e-9, abs=1e-12)
    fn = r.shader().rasterShaderFunction()
    assert isinstance(fn, QgsColorRampShader)
    assert fn.minimumValue() == pytest.approx(lo) and fn.maximumValue() == pytest.approx(hi)
    assert fn.colorRampType() == _compat().SHADER_LINEAR
    assert not fn.clip(), "scores above the stretch keep the top colour"
    ramp = QgsStyle.defaultStyle().colorRamp(RAMP)
    items = fn.colorRampItemList()
    assert len(items) == ramp.count() > 2
    for i, item in enumerate(items):
        assert item.color.name() == ramp.color(ramp.value(i)).name()
        assert item.value == pytest.approx(lo + ramp.value(i) * (hi - lo))
    assert items[0].value == pytest.approx(lo) and items[-1].value == pytest.approx(hi)
    assert not r.nodataColor().isValid() or r.nodataColor().alpha() == 0, "nodata must be transparent"
    assert layer.dataProvider().useSourceNoDataValue(1)
    assert r.minMaxOrigin().cumulativeCutLower() == pytest.approx(0.02)
    assert r.minMaxOrigin().cumulativeCutUpper() == pytest.approx(0.998)


def assert_outline_style(layer):
    assert isinstance(layer, QgsVectorLayer)
    r = layer.renderer()
    assert r.type() == "singleSymbol"
    sl = r.symbol().symbolLayer(0)
    assert sl.brushStyle() == Qt.BrushStyle.NoBrush, "detections: outlines only"
    assert sl.strokeColor().name() == "#00ffff"
    assert sl.strokeWidth() == pytest.approx(0.6)
    assert layer.labelsEnabled() and layer.labeling().settings().fieldName == "id"


def test_scores_and_detections_are_styled_named_and_ordered(plugin, sample_tif, tmp_path):
    res = rx_on_sample(sample_tif, tmp_path)
    assert res["N_DETECTIONS"] >= 1
    scores = by_name(f"rx {DASH} abu-airport-1")
    dets = by_name(f"rx detections {DASH} abu-airport-1")
    assert names() == [dets.name(), scores.name()], "detections directly above their scores"
    assert isinstance(scores, QgsRasterLayer) and scores.source() == str(tmp_path / "rx.tif")
    assert_score_style(scores, res["OUTPUT"])
    assert_outline_style(dets)
    assert dets.featureCount() == res["N_DETECTIONS"]


def test_two_runs_have_distinct_names_and_each_pair_stays_together(plugin, sample_tif, crop_tif, tmp_path):
    rx_on_sample(sample_tif, tmp_path, "a")
    rx_on_sample(sample_tif, tmp_path, "b", RIDGE=0.5)
    base, det = f"rx {DASH} abu-airport-1", f"rx detections {DASH} abu-airport-1"
    assert sorted(names()) == sorted([base, det, base + " (2)", det + " (2)"])
    order = names()
    assert order.index(det) == order.index(base) - 1
    assert order.index(det + " (2)") == order.index(base + " (2)") - 1
    assert order[0] == det + " (2)", "the newest run on top"
    assert by_name(base + " (2)").source() == str(tmp_path / "b.tif")
    # another input: its own name, no number
    load("hadcore:rx", {"INPUT": str(crop_tif[0]), "OUTPUT": str(tmp_path / "c.tif")})
    assert names()[0] == f"rx {DASH} urban1_crop"
    assert len(set(names())) == len(names()) == 5


def test_without_detections_only_the_scores_load(plugin, sample_tif, tmp_path):
    scene, _ = sample_tif
    res = load("hadcore:rx", {"INPUT": str(scene), "OUTPUT": "TEMPORARY_OUTPUT"})
    assert names() == [f"rx {DASH} abu-airport-1"]
    assert_score_style(tree()[0], res["OUTPUT"])


def test_detections_go_above_scores_loaded_earlier(plugin, sample_tif, tmp_path):
    """Whichever layer Processing loads first (its load order follows the layer ids), detections end on top."""
    scene, _ = sample_tif
    other = QgsRasterLayer(str(scene), "my scene", "gdal")  # the input, a project layer: named after it
    QgsProject.instance().addMapLayer(other)
    # a file sink (id = its path) sorts before the score layer path here: the detections load first
    res = load("hadcore:rx", {"INPUT": other.id(), "OUTPUT": str(tmp_path / "z_scores.tif"),
                              "DETECTIONS": str(tmp_path / "a_det.gpkg"), "THRESHOLD": "top:20"})
    assert names() == [f"rx detections {DASH} my scene", f"rx {DASH} my scene", "my scene"]
    assert_outline_style(tree()[0])
    assert_score_style(tree()[1], res["OUTPUT"])


def test_post_processors_survive_garbage_collection(plugin, sample_tif, tmp_path):
    """The algorithm run with a context, gc, then Processing's own handleAlgorithmResults (as the GUI does)."""
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import QgsApplication

    scene, _ = sample_tif
    project = QgsProject.instance()
    context = QgsProcessingContext()
    context.setProject(project)
    params = {"INPUT": str(scene), "OUTPUT": QgsProcessingOutputLayerDefinition(str(tmp_path / "g.tif"), project),
              "DETECTIONS": QgsProcessingOutputLayerDefinition("TEMPORARY_OUTPUT", project), "THRESHOLD": "top:20"}
    feedback = QgsProcessingFeedback()
    alg = QgsApplication.processingRegistry().createAlgorithmById("hadcore:rx")
    res, ok = alg.run(params, context, feedback)  # processing.run would take the memory layer out of context
    assert ok
    assert len(context.layersToLoadOnCompletion()) == 2
    gc.collect()
    assert handleAlgorithmResults(alg, context, feedback, parameters=params)
    assert names() == [f"rx detections {DASH} abu-airport-1", f"rx {DASH} abu-airport-1"]
    assert_score_style(tree()[1], res["OUTPUT"])
    assert_outline_style(tree()[0])


def test_processing_run_loads_nothing_and_styles_nothing(plugin, sample_tif, tmp_path):
    import processing

    scene, _ = sample_tif
    res = processing.run("hadcore:rx", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "p.tif"),
                                        "DETECTIONS": "TEMPORARY_OUTPUT", "THRESHOLD": "top:20"})
    assert names() == [] and res["N_DETECTIONS"] >= 1


def test_vectorize_output_is_outlined_named_and_on_top(plugin, sample_tif, tmp_path):
    scene, _ = sample_tif
    res = load("hadcore:rx", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "v.tif")})
    score_layer = tree()[0]
    load("hadcore:vectorize", {"INPUT": score_layer.id(), "THRESHOLD": "top:20", "OUTPUT": "TEMPORARY_OUTPUT"})
    assert names() == [f"detections top:20 {DASH} rx {DASH} abu-airport-1", f"rx {DASH} abu-airport-1"]
    assert_outline_style(tree()[0])
    assert_score_style(tree()[1], res["OUTPUT"])


def test_product_input_is_named_after_the_file_stem(plugin, sample_tif, tmp_path):
    import shutil

    scene, _ = sample_tif
    product = tmp_path / "my-scene.tif"
    shutil.copy(scene, product)
    load("hadcore:rx", {"PRODUCT": str(product), "OUTPUT": "TEMPORARY_OUTPUT"})
    assert names() == [f"rx {DASH} my-scene"]


def test_nodata_pixels_are_transparent(plugin, crop_tif, tmp_path):
    """The crop's pixel (0, 0) is nodata: rendered transparent, its neighbours opaque ramp colours."""
    path, _, _ = crop_tif
    res = load("hadcore:rx", {"INPUT": str(path), "OUTPUT": str(tmp_path / "crop.tif")})
    layer = by_name(f"rx {DASH} urban1_crop")
    assert_score_style(layer, res["OUTPUT"])
    ms = QgsMapSettings()
    ms.setLayers([layer])
    ms.setDestinationCrs(layer.crs())
    ms.setExtent(layer.extent())
    ms.setOutputSize(QSize(32, 32))
    ms.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    assert QColor.fromRgba(img.pixel(0, 0)).alpha() == 0
    assert QColor.fromRgba(img.pixel(5, 5)).alpha() == 255
    ramp = QgsStyle.defaultStyle().colorRamp(RAMP)
    scores = read_raster(res["OUTPUT"])[0]
    r, c = np.unravel_index(np.nanargmax(scores), scores.shape)
    top = QColor.fromRgba(img.pixel(int(c), int(r)))
    end = ramp.color(1.0)
    assert max(abs(top.red() - end.red()), abs(top.green() - end.green()), abs(top.blue() - end.blue())) <= 3


def test_results_group_keeps_the_pair_together(plugin, sample_tif, tmp_path):
    """With Processing's "results group" setting the layers go into that group, detections still on top."""
    from processing.core.ProcessingConfig import ProcessingConfig

    key = ProcessingConfig.RESULTS_GROUP_NAME
    before = ProcessingConfig.getSetting(key)
    ProcessingConfig.setSettingValue(key, "hadcore results")
    try:
        rx_on_sample(sample_tif, tmp_path)
    finally:
        ProcessingConfig.setSettingValue(key, before or "")
    group = QgsProject.instance().layerTreeRoot().findGroup("hadcore results")
    assert group is not None
    assert [n.layer().name() for n in group.findLayers()] == [f"rx detections {DASH} abu-airport-1",
                                                              f"rx {DASH} abu-airport-1"]


def test_percentiles_of_a_large_layer_come_from_a_sample(plugin, sample_tif, tmp_path, monkeypatch):
    from hadcore_qgis import styling

    import processing

    scene, _ = sample_tif
    res = processing.run("hadcore:rx", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "s.tif")})
    scores = read_raster(res["OUTPUT"])[0]
    exact = styling.score_percentiles(res["OUTPUT"])
    assert exact == pytest.approx(list(np.nanpercentile(scores, [2.0, 99.8])))
    monkeypatch.setattr(styling, "MAX_STATS_PIXELS", 2500)  # 10000 pixels -> every 2nd row and column
    lo, hi = styling.score_percentiles(res["OUTPUT"])
    p = np.nanpercentile(scores, [0.5, 5.0, 98.0])
    assert p[0] <= lo <= p[1] and p[2] <= hi <= np.nanmax(scores)


def test_spectra_table_loads_related_to_its_detections(plugin, sample_tif, tmp_path):
    """The SPECTRA output, loaded beside the detections, is related to them by id in the project: a detection's
    form lists its spectra rows (one per band), the background (id 0) belongs to no detection."""
    scene, _ = sample_tif
    res = load("hadcore:rx", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "rx.tif"), "THRESHOLD": "top:10",
                              "DETECTIONS": str(tmp_path / "det.gpkg"), "SPECTRA": str(tmp_path / "spectra.csv")})
    dets = by_name(f"rx detections {DASH} abu-airport-1")
    table = by_name(f"rx spectra {DASH} abu-airport-1")
    rels = QgsProject.instance().relationManager().referencingRelations(table)
    assert len(rels) == 1 and rels[0].referencedLayer().id() == dets.id() and rels[0].isValid()
    feature = next(dets.getFeatures())
    rows = list(rels[0].getRelatedFeatures(feature))
    n_bands = len({f["band"] for f in table.getFeatures()})
    assert len(rows) == n_bands and {int(r["id"]) for r in rows} == {feature["id"]}  # a CSV holds text
    assert table.featureCount() == (res["N_DETECTIONS"] + 1) * n_bands
