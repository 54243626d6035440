"""A picture made by QGIS's own map renderer: sample scene composite, RX anomaly layer, detection polygons.

Writes ``docs/img/qgis_render.png`` (shown in the README and docs/qgis.md): left panel, a band composite of
the sample scene with the detection polygons; right panel, the anomaly layer (colour ramp, top 3 % of the
scores, over the dimmed composite) with the same polygons.
"""

from __future__ import annotations

import numpy as np
from qgis.core import (
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsFillSymbol,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter

from conftest import REPO, read_raster

PANEL = 400
TITLE = 28
OUT = REPO / "docs" / "img" / "qgis_render.png"
# ABU airport-1 is an AVIRIS scene (205 bands, ~400-2500 nm); with no wavelengths in the file, bands
# 29 / 19 / 10 (about 650 / 550 / 460 nm) give a near true-colour composite.
RGB = (29, 19, 10)


def _compat():
    """The plugin's table of QGIS names (importable once the ``plugin`` fixture has loaded it)."""
    from hadcore_qgis import compat

    return compat


def _composite(path, opacity=1.0):
    layer = QgsRasterLayer(str(path), "scene", "gdal")
    assert layer.isValid()
    prov = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(prov, *RGB)
    for band, setter in zip(RGB, (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
                                  renderer.setBlueContrastEnhancement)):
        lo, hi = prov.cumulativeCut(band, 0.02, 0.98)
        ce = QgsContrastEnhancement(prov.dataType(band))
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum, True)
        ce.setMinimumValue(lo)
        ce.setMaximumValue(hi)
        setter(ce)
    renderer.setOpacity(opacity)
    layer.setRenderer(renderer)
    return layer


def _anomaly(path, scores):
    """Colour ramp yellow -> red -> dark red with stops at score percentiles 97, 99, 99.7 and the maximum."""
    layer = QgsRasterLayer(str(path), "rx", "gdal")
    assert layer.isValid()
    stops = [(97, "#ffff66"), (99, "#ff9900"), (99.7, "#ff0000"), (100, "#99000d")]
    items = [QgsColorRampShader.ColorRampItem(float(np.nanpercentile(scores, q)), QColor(c), f"p{q}")
             for q, c in stops]
    shader_fn = QgsColorRampShader(items[0].value, items[-1].value)
    shader_fn.setColorRampType(_compat().SHADER_LINEAR)
    shader_fn.setColorRampItemList(items)
    shader_fn.setClip(True)  # scores below the 97th percentile are transparent
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    layer.setRenderer(QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader))
    return layer


def _polygons(path):
    layer = QgsVectorLayer(str(path), "detections", "ogr")
    assert layer.isValid()
    symbol = QgsFillSymbol.createSimple({"color": "0,0,0,0", "outline_color": "0,255,255,255",
                                         "outline_width": "0.5"})
    layer.renderer().setSymbol(symbol)
    return layer


def _render(layers, extent, crs):
    ms = QgsMapSettings()
    ms.setLayers(layers)  # top first
    ms.setDestinationCrs(crs)
    ms.setExtent(extent)
    ms.setOutputSize(QSize(PANEL, PANEL))
    ms.setBackgroundColor(QColor("black"))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def test_render_scene_anomalies_and_polygons(plugin, sample_tif, tmp_path):
    import processing

    scene, _ = sample_tif
    res = processing.run("hadcore:rx", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "rx.tif"),
                                        "THRESHOLD": "percentile:99", "MIN_SIZE": 2,
                                        "DETECTIONS": str(tmp_path / "det.gpkg")})
    scores = read_raster(res["OUTPUT"])[0]
    base = _composite(scene)
    dim = _composite(scene, opacity=0.45)
    anomaly = _anomaly(res["OUTPUT"], scores)
    polys = _polygons(res["DETECTIONS"])
    left = _render([polys, base], base.extent(), base.crs())
    right = _render([polys, anomaly, dim], base.extent(), base.crs())

    img = QImage(2 * PANEL, PANEL + TITLE, QImage.Format.Format_RGB32)
    img.fill(QColor("white"))
    p = QPainter(img)
    p.drawImage(0, TITLE, left)
    p.drawImage(PANEL, TITLE, right)
    p.setPen(QColor("black"))
    f = QFont()
    f.setPixelSize(15)
    p.setFont(f)
    p.drawText(0, 0, PANEL, TITLE, Qt.AlignmentFlag.AlignCenter, f"abu-airport-1, bands {RGB}, {res['N_DETECTIONS']} detections")
    p.drawText(PANEL, 0, PANEL, TITLE, Qt.AlignmentFlag.AlignCenter, "hadcore:rx scores (top 3 %), detections")
    p.end()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    assert img.save(str(OUT), "PNG")

    back = QImage(str(OUT))
    assert (back.width(), back.height()) == (2 * PANEL, PANEL + TITLE)
    assert OUT.stat().st_size < 400_000, "keep the committed picture small"

    def colours(image, x0):
        seen, cyan, warm = set(), 0, 0
        for y in range(TITLE, TITLE + PANEL, 2):
            for x in range(x0, x0 + PANEL, 2):
                c = QColor(image.pixel(x, y))
                seen.add((c.red() // 8, c.green() // 8, c.blue() // 8))
                cyan += c.red() < 80 and c.green() > 200 and c.blue() > 200
                warm += c.red() > 180 and c.blue() < 120
        return len(seen), cyan, warm

    n_left, cyan_left, _ = colours(back, 0)
    n_right, cyan_right, warm_right = colours(back, PANEL)
    assert n_left > 200, "the composite should not be blank"
    assert cyan_left > 20 and cyan_right > 20, "the detection outlines should be drawn"
    assert warm_right > 20, "the anomaly ramp should show"
