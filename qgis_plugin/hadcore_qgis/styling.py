"""How the layers an algorithm loads into the project look: style, name and order.

When Processing loads an algorithm's outputs (the dialog, ``processing.runAndLoadResults``), every output
carries a :class:`QgsProcessingContext.LayerDetails`; :func:`attach` sets its name and a layer
post-processor, which Processing runs on the main thread once the layer is in the project. Nothing happens
when an output is not loaded (``qgis_process``, ``processing.run``).

- **Scores**: :func:`style_scores`: a single-band pseudocolour renderer on QGIS's *Magma* ramp (black ->
  purple -> orange -> pale yellow, perceptually uniform), stretched from the 2nd to the 99.8th percentile of
  the valid scores (computed with numpy on the written band, nodata/NaN ignored), so that a few extreme
  pixels cannot turn the map black; scores above the stretch take the top colour (no clipping); nodata
  pixels are transparent.
- **Detections**: :func:`style_detections`: outlines only (no fill), cyan (Magma has no blue or green, so cyan
  stands out everywhere on it), 0.6 mm, labelled with ``id`` (1 = the highest peak).
- **Names**: ``rx – abu-airport-1`` and ``rx detections – abu-airport-1`` (detector, en dash, input layer name
  or product file stem); ``detections top:20 – <score layer>`` for the vectorize tool. When the project already
  has a layer of that name (the same detector on the same input again) the new layers get `` (2)``, `` (3)``...,
  the scores and the detections of one run the same number.
- **Order**: the detections are moved directly above their score layer in the layer tree (whichever of the
  two Processing loads first), or to the top of their group (vectorize).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

import numpy as np
from qgis.core import (
    QgsColorRampShader,
    QgsFillSymbol,
    QgsPalLayerSettings,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

from . import compat

#: the score ramp: a name in QGIS's default style (Viridis, Magma and Inferno are there)
RAMP = "Magma"
#: the stretch: percentiles of the valid scores at the ends of the ramp
LOW_PERCENTILE, HIGH_PERCENTILE = 2.0, 99.8
#: a larger score layer is sampled (a regular grid of about this many pixels) for the percentiles
MAX_STATS_PIXELS = 16_000_000
#: detection outlines
OUTLINE_COLOR = QColor(0, 255, 255)
OUTLINE_WIDTH_MM = 0.6
LABEL_FIELD = "id"
DASH = "\u2013"  # en dash in the layer names

SCORES, DETECTIONS, SPECTRA = "scores", "detections", "spectra"

#: Python references to the post-processors handed to Processing until they have run: ``setPostProcessor``
#: transfers ownership to the context, but without a reference of its own QGIS 3.22 lets the Python object be
#: garbage-collected before Processing calls it (a known PyQGIS pitfall). Dropped once they have run.
_ALIVE: list = []
_MAX_ALIVE = 256


# ---------------------------------------------------------------------------------------------- names
def source_name(product_path: str) -> str:
    """Input name of a sensor-product file: its stem (the folder's name for a bare ``METADATA.XML``)."""
    path = os.path.abspath(product_path)
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.upper() == "METADATA":
        stem = os.path.basename(os.path.dirname(path)) or stem
    return stem


def scores_name(detector: str, source: str) -> str:
    return f"{detector} {DASH} {source}"


def detections_name(detector: str, source: str) -> str:
    return f"{detector} detections {DASH} {source}"


def spectra_name(detector: str, source: str) -> str:
    return f"{detector} spectra {DASH} {source}"


def vectorize_name(score_layer_name: str, threshold: str) -> str:
    return f"detections {threshold} {DASH} {score_layer_name}".replace("  ", " ")


# ---------------------------------------------------------------------------------------------- styles
def score_percentiles(path: str, band: int = 1, q=(LOW_PERCENTILE, HIGH_PERCENTILE)) -> Optional[List[float]]:
    """Percentiles ``q`` of the valid values of ``band`` of the raster at ``path`` (GDAL + numpy).

    NaN, infinities and GDAL's invalid pixels (nodata, mask) are left out; a raster above
    :data:`MAX_STATS_PIXELS` is read on a regular subsampling grid. None when it has no valid pixel.
    """
    from osgeo import gdal

    ds = gdal.Open(str(path))
    if ds is None or not 1 <= band <= ds.RasterCount:
        return None
    b = ds.GetRasterBand(band)
    w, h = ds.RasterXSize, ds.RasterYSize
    step = max(1, int(np.ceil(np.sqrt(w * h / MAX_STATS_PIXELS))))
    bw, bh = max(1, w // step), max(1, h // step)
    kw = {} if step == 1 else {"buf_xsize": bw, "buf_ysize": bh, "resample_alg": gdal.GRIORA_NearestNeighbour}
    a = b.ReadAsArray(**kw)
    if a is None:
        return None
    a = a.astype(np.float64)
    valid = np.isfinite(a)
    if not b.GetMaskFlags() & gdal.GMF_ALL_VALID:
        m = b.GetMaskBand().ReadAsArray(**kw)
        if m is not None:
            valid &= m > 0
    values = a[valid]
    if values.size == 0:
        return None
    return [float(v) for v in np.percentile(values, q)]


def style_scores(layer, path: Optional[str] = None) -> bool:
    """Pseudocolour (:data:`RAMP`) stretched over the 2-99.8 % percentiles of band 1 of ``path``.

    ``path`` defaults to the layer's source. Returns False (layer left as it is) when the band has no valid
    pixel or the ramp is missing.
    """
    path = path or layer.source()
    stats = score_percentiles(path)
    ramp = QgsStyle.defaultStyle().colorRamp(RAMP)
    if stats is None or ramp is None:
        return False
    lo, hi = stats
    if not hi > lo:  # a constant layer: any non-empty interval
        hi = lo + (abs(lo) * 1e-6 or 1.0)
    fn = QgsColorRampShader(lo, hi, ramp, compat.SHADER_LINEAR, compat.SHADER_CONTINUOUS)
    fn.classifyColorRamp()  # the ramp's own stops, spread over [lo, hi]
    fn.setClip(False)  # beyond the stretch: the end colours, not transparent
    shader = QgsRasterShader(lo, hi)
    shader.setRasterShaderFunction(fn)
    provider = layer.dataProvider()
    provider.setUseSourceNoDataValue(1, True)
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, shader)
    renderer.setClassificationMin(lo)
    renderer.setClassificationMax(hi)
    origin = QgsRasterMinMaxOrigin()  # what the layer properties show: cumulative cut 2-99.8 %, exact
    origin.setLimits(compat.RANGE_CUMULATIVE_CUT)
    origin.setCumulativeCutLower(LOW_PERCENTILE / 100.0)
    origin.setCumulativeCutUpper(HIGH_PERCENTILE / 100.0)
    origin.setExtent(compat.RANGE_WHOLE_RASTER)
    origin.setStatAccuracy(compat.RANGE_EXACT)
    renderer.setMinMaxOrigin(origin)
    renderer.setNodataColor(QColor())  # invalid colour: nodata pixels transparent
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


def style_detections(layer) -> None:
    """Cyan outlines (no fill, 0.6 mm) labelled with ``id``."""
    symbol = QgsFillSymbol.createSimple({
        "style": "no",
        "outline_style": "solid",
        "outline_color": ",".join(str(c) for c in OUTLINE_COLOR.getRgb()),
        "outline_width": str(OUTLINE_WIDTH_MM),
        "outline_width_unit": "MM",
        "joinstyle": "miter",
    })
    renderer = layer.renderer()
    if renderer is not None and renderer.type() == "singleSymbol":
        renderer.setSymbol(symbol)
    else:
        from qgis.core import QgsSingleSymbolRenderer

        layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    if layer.fields().indexOf(LABEL_FIELD) >= 0:
        fmt = QgsTextFormat()
        fmt.setColor(OUTLINE_COLOR)
        fmt.setSize(8)
        fmt.setSizeUnit(compat.UNIT_POINTS)
        buf = QgsTextBufferSettings()
        buf.setEnabled(True)
        buf.setColor(QColor(0, 0, 0))
        buf.setSize(0.7)
        buf.setSizeUnit(compat.UNIT_MILLIMETERS)
        fmt.setBuffer(buf)
        pal = QgsPalLayerSettings()
        pal.fieldName = LABEL_FIELD
        pal.isExpression = False
        pal.enabled = True
        pal.placement = compat.LABEL_AROUND_POINT  # beside the polygon's centroid
        pal.dist = 1.0
        pal.distUnits = compat.UNIT_MILLIMETERS
        pal.setFormat(fmt)
        layer.setLabeling(QgsVectorLayerSimpleLabeling(pal))
        layer.setLabelsEnabled(True)
    layer.triggerRepaint()


# ---------------------------------------------------------------------------------------------- layer tree
def _tree_node(project, layer_id):
    return project.layerTreeRoot().findLayer(layer_id)


def _move(node, parent, index):
    """Move ``node`` to ``index`` of ``parent`` (a clone inserted there, the original removed)."""
    clone = node.clone()
    parent.insertChildNode(index, clone)
    node.parent().removeChildNode(node)
    return clone


def put_on_top(project, layer_id) -> None:
    """The layer's node to the top of its group."""
    node = _tree_node(project, layer_id)
    if node is None or node.parent() is None:
        return
    parent = node.parent()
    children = parent.children()
    if children and getattr(children[0], "layerId", lambda: None)() == layer_id:
        return
    _move(node, parent, 0)


def put_above(project, layer_id, below_id) -> None:
    """The layer's node directly above the node of ``below_id`` (in that node's group)."""
    node, below = _tree_node(project, layer_id), _tree_node(project, below_id)
    if node is None or below is None or below.parent() is None:
        return
    parent = below.parent()
    ids = [getattr(c, "layerId", lambda: None)() for c in parent.children()]
    i = ids.index(below_id)
    if i > 0 and ids[i - 1] == layer_id:
        return
    _move(node, parent, i)


# ---------------------------------------------------------------------------------------------- post-processors
def _source_key(source: str) -> str:
    """A layer source or output id reduced to its file (``a.gpkg|layername=a`` -> the absolute path of a.gpkg)."""
    path = str(source).split("|", 1)[0]
    return os.path.normcase(os.path.abspath(path)) if os.path.isabs(path) else path


class _Run:
    """The layers one algorithm run loads: shared by their post-processors (names, order)."""

    def __init__(self):
        self.names: Dict[str, str] = {}  # kind -> base name
        self.loaded: Dict[str, str] = {}  # kind -> project layer id
        self.outputs: Dict[str, str] = {}  # kind -> the output's id in the context (a layer id or a file path)
        self.suffix: Optional[str] = None

    def owns(self, layer_id: str, layer) -> bool:
        """Whether a project layer is one of this run's outputs.

        QGIS 3.22 adds each output to the project and post-processes it before loading the next; QGIS 3.28 and
        later add every output first (named already, ``LayerDetails.setOutputLayerName``) and post-process them
        afterwards. So a layer of this run may be in the project before its own post-processor ran: it is
        recognised by its id (a temporary layer keeps the id it had in the context) or by its file.
        """
        if layer_id in self.loaded.values() or layer_id in self.outputs.values():
            return True
        files = {_source_key(o) for o in self.outputs.values()}
        return _source_key(layer.source()) in files


def _unique_suffix(project, run: _Run) -> str:
    """"" or " (n)": the smallest n for which no other layer of the project has any of the run's names."""
    taken = {lyr.name() for lid, lyr in project.mapLayers().items() if not run.owns(lid, lyr)}
    n = 1
    while True:
        suffix = "" if n == 1 else f" ({n})"
        if not any(name + suffix in taken for name in run.names.values()):
            return suffix
        n += 1


class LayerPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles, names and places one loaded output (``kind``: :data:`SCORES`, :data:`DETECTIONS` or
    :data:`SPECTRA`, the detections' spectra table, related to them by ``id`` once both are loaded)."""

    def __init__(self, kind: str, name: str, path: Optional[str] = None, run: Optional[_Run] = None,
                 project=None):
        super().__init__()
        if kind not in (SCORES, DETECTIONS, SPECTRA):
            raise ValueError(f"kind must be {SCORES!r}, {DETECTIONS!r} or {SPECTRA!r}, not {kind!r}")
        self.kind, self.name, self.path, self.project = kind, name, path, project
        self.run = run if run is not None else _Run()
        self.run.names[kind] = name
        self.done = False

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - QGIS's name
        try:
            self._post_process(layer)
        except Exception as exc:  # styling must never lose a result layer
            _report(feedback, f"hadcore: could not style layer {self.name!r}: {exc}")
        finally:
            self.done = True

    def _post_process(self, layer):
        if layer is None:
            return
        project = self.project or QgsProject.instance()
        run = self.run
        run.loaded[self.kind] = layer.id()
        if run.suffix is None:
            run.suffix = _unique_suffix(project, run)
        layer.setName(self.name + run.suffix)
        if self.kind == SPECTRA:
            relate_spectra(project, run)
            return
        if self.kind == SCORES:
            style_scores(layer, self.path if self.path and os.path.isfile(self.path) else None)
            if DETECTIONS in run.loaded:  # the detections were loaded first
                put_above(project, run.loaded[DETECTIONS], layer.id())
        else:
            style_detections(layer)
            if SCORES in run.loaded:
                put_above(project, layer.id(), run.loaded[SCORES])
            else:
                put_on_top(project, layer.id())
            relate_spectra(project, run)
        _select_top_of_run(project, run)


def relate_spectra(project, run: _Run):
    """Once a run's detections and spectra table are both loaded: a project relation from the table's ``id`` to
    the detections' ``id`` (a detection's attribute form lists its spectra rows). Returns the relation or None."""
    from qgis.core import QgsRelation

    det, spec = run.loaded.get(DETECTIONS), run.loaded.get(SPECTRA)
    if not det or not spec or project.mapLayer(det) is None or project.mapLayer(spec) is None:
        return None
    rel = QgsRelation()
    rel.setId(f"hadcore_spectra_{spec}")
    rel.setName(f"{project.mapLayer(det).name()}: spectra")
    rel.setReferencingLayer(spec)
    rel.setReferencedLayer(det)
    rel.addFieldPair("id", "id")
    if not rel.isValid():
        return None
    project.relationManager().addRelation(rel)
    return rel


def _report(feedback, message: str) -> None:
    """To the run's feedback; to QGIS's message log when there is none or QGIS has deleted it already."""
    try:
        if feedback is not None:
            feedback.reportError(message)
            return
    except RuntimeError:  # "wrapped C/C++ object ... has been deleted"
        pass
    from qgis.core import QgsMessageLog

    QgsMessageLog.logMessage(message, "hadcore", compat.MSG_WARNING)


def _select_top_of_run(project, run: _Run) -> None:
    """Make the run's upper layer (its detections, else its scores) the Layers panel's current layer.

    QGIS 3.28+ loads the outputs of the next run above the panel's current layer, and makes the first output it
    loads current; were that the score layer, the next run would land between this run's detections and
    scores. A selection the user made elsewhere (not one of this run's layers) is left alone.
    """
    try:
        from qgis.utils import iface
    except ImportError:  # pragma: no cover - qgis.utils is part of every QGIS install
        return
    view = iface.layerTreeView() if iface is not None else None
    if view is None or project is not QgsProject.instance():
        return
    top = run.loaded.get(DETECTIONS) or run.loaded.get(SCORES)
    current = view.currentLayer()
    if top and (current is None or current.id() in run.loaded.values()) and project.mapLayer(top) is not None:
        view.setCurrentLayer(project.mapLayer(top))


def _keep(processor) -> None:
    _ALIVE[:] = [p for p in _ALIVE if not p.done]
    if len(_ALIVE) >= _MAX_ALIVE:  # never run (their algorithm failed): forget the oldest half
        del _ALIVE[: _MAX_ALIVE // 2]
    _ALIVE.append(processor)


def attach(context, layer_id, kind: str, name: str, run: Optional[_Run] = None):
    """Name ``layer_id`` (an output Processing will load) ``name`` and give it ``kind``'s post-processor.

    Returns the post-processor, or None when ``context`` will not load ``layer_id``. Layers attached with
    the same ``run`` (a :class:`_Run`) share a name suffix and are ordered together.
    """
    if not layer_id or not context.willLoadLayerOnCompletion(layer_id):
        return None
    details = context.layerToLoadOnCompletionDetails(layer_id)
    details.name = name
    details.forceName = True  # even with "use the file name as layer name" set
    processor = LayerPostProcessor(kind, name, path=layer_id if kind == SCORES else None, run=run,
                                   project=details.project)
    processor.run.outputs[kind] = layer_id
    _keep(processor)
    details.setPostProcessor(processor)
    return processor


def attach_detector_outputs(context, detector: str, source: str, scores_id, detections_id=None,
                            spectra_id=None) -> None:
    """The score layer, (optional) detections and (optional) their spectra table of one detector run on input
    ``source``."""
    run = _Run()
    if detections_id and context.willLoadLayerOnCompletion(detections_id):
        run.names[DETECTIONS] = detections_name(detector, source)  # known before either loads: same suffix
    if spectra_id and context.willLoadLayerOnCompletion(spectra_id):
        run.names[SPECTRA] = spectra_name(detector, source)
    attach(context, scores_id, SCORES, scores_name(detector, source), run)
    attach(context, detections_id, DETECTIONS, detections_name(detector, source), run)
    attach(context, spectra_id, SPECTRA, spectra_name(detector, source), run)
