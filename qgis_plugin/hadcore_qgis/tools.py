"""Processing tools on anomaly-score layers: vectorize and evaluate.

``vectorize`` thresholds a score layer into detection polygons; ``evaluate`` compares it with a ground-truth
layer (the metrics as outputs, an HTML report with the ROC curve). Both share the base class and the
detection helpers of :mod:`hadcore_qgis.algorithms` with the detector algorithms: this module imports
from there, never the reverse.
"""

from __future__ import annotations

import html
import os

import numpy as np
from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from . import compat, gdal_io, styling
from .algorithms import _add_detection_params, _Base, _hc, detection_fields, tr, write_detections


class VectorizeAlgorithm(_Base):
    """Score layer + threshold -> detection polygons."""

    def createInstance(self):
        return VectorizeAlgorithm()

    def name(self):
        return "vectorize"

    def displayName(self):
        return tr("Vectorize anomaly layer")

    def group(self):
        return tr("Tools")

    def groupId(self):
        return "tools"

    def shortHelpString(self):
        return tr(
            "<p>Thresholds an anomaly-score layer (higher = more anomalous) and writes one polygon per connected "
            "detection (GDAL Polygonize of the labelled detections), with attributes id (1 = highest peak), "
            "pixels, area (CRS units squared), peak, mean, peak_x, peak_y (CRS coordinates of the peak pixel "
            "centre).</p><p>THRESHOLD: <code>percentile:P</code> (P-th percentile of valid scores), "
            "<code>value:X</code>, <code>top:N</code> (N highest pixels), <code>otsu</code>, <code>fpr:R</code> "
            "(the quantile of the scores' law under a Gaussian background, from the layer's hadcore metadata: "
            "chi-square with B degrees of freedom for RX, B from N_BANDS when the layer has none; beta for ACE; "
            "normal for MF). Pixels with score &gt;= threshold are detections; nodata pixels never are.</p>")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Anomaly-score layer")))
        self.addParameter(QgsProcessingParameterNumber("BAND", tr("Band"), compat.NUMBER_INTEGER,
                                                       defaultValue=1, minValue=1))
        _add_detection_params(self, with_sink_optional=False)
        self.addParameter(QgsProcessingParameterNumber(
            "N_BANDS", tr("Band count of the detector input (fpr: thresholds; 0 = from metadata)"),
            compat.NUMBER_INTEGER, defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", tr("Detections"),
                                                            compat.SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputNumber("N_DETECTIONS", tr("Number of detections")))
        self.addOutput(QgsProcessingOutputNumber("THRESHOLD_VALUE", tr("Threshold score")))

    def processAlgorithm(self, parameters, context, feedback):
        hc = _hc()
        from hadcore.components import label_detections
        from hadcore.tags import check_fpr, read_score_tags
        from hadcore.threshold import parse_threshold

        layer, ds = self._raster(parameters, "INPUT", context)
        info = gdal_io.raster_info(ds)
        try:
            scores = gdal_io.read_band(ds, self.parameterAsInt(parameters, "BAND", context))
            n_bands = self.parameterAsInt(parameters, "N_BANDS", context) or None
            threshold = self.parameterAsString(parameters, "THRESHOLD", context).strip()
            law = None
            if parse_threshold(threshold).kind == "fpr":
                # the layer's null law from its tags, written by the CLI, Python or this plugin (its earlier
                # schema too: chi-square with the band count)
                law = check_fpr(read_score_tags(ds.GetMetadata() or {}), n_bands)
            conn = 8 if self.parameterAsEnum(parameters, "CONNECTIVITY", context) == 0 else 4
            min_size = self.parameterAsInt(parameters, "MIN_SIZE", context)
            labels, table = label_detections(scores, threshold, connectivity=conn, min_size=min_size,
                                             n_bands=n_bands, null=law)
        except (hc.HadcoreError, gdal_io.RasterIOError) as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.setProgress(50.0)
        sink, sink_id = self.parameterAsSink(parameters, "OUTPUT", context, detection_fields(),
                                             compat.WKB_MULTIPOLYGON, layer.crs())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, "OUTPUT"))
        n = write_detections(sink, labels, table, info, conn, feedback)
        thr = table[0]["threshold"] if table else float("nan")
        feedback.pushInfo(f"{n} detection(s) at threshold {threshold}")
        styling.attach(context, sink_id, styling.DETECTIONS, styling.vectorize_name(layer.name(), threshold))
        return {"OUTPUT": sink_id, "N_DETECTIONS": n, "THRESHOLD_VALUE": thr}


METRIC_OUTPUTS = (
    ("auc_pd_pf", "AUC_PD_PF", "AUC(PD,PF): area under the ROC curve (higher is better)"),
    ("auc_pd_tau", "AUC_PD_TAU", "AUC(PD,tau): mean normalised score of anomaly pixels (higher is better)"),
    ("auc_pf_tau", "AUC_PF_TAU", "AUC(PF,tau): mean normalised score of background pixels (lower is better)"),
    ("auc_bs", "AUC_BS", "AUC_BS = AUC(PD,PF) - AUC(PF,tau) (higher is better)"),
    ("snpr", "SNPR", "AUC_SNPR = AUC(PD,tau) / AUC(PF,tau) (higher is better)"),
    ("snpr_db", "SNPR_DB", "10 log10(AUC_SNPR), dB"),
)


class EvaluateAlgorithm(_Base):
    """Score layer + ground-truth layer -> the metrics of EVALUATION.md, as outputs and an HTML report."""

    def createInstance(self):
        return EvaluateAlgorithm()

    def name(self):
        return "evaluate"

    def displayName(self):
        return tr("Evaluate against ground truth")

    def group(self):
        return tr("Tools")

    def groupId(self):
        return "tools"

    def shortHelpString(self):
        items = "".join(f"<li><b>{o}</b>: {html.escape(d)}</li>" for _, o, d in METRIC_OUTPUTS)
        return tr(
            "<p>Compares an anomaly-score layer (higher = more anomalous) with a ground-truth layer of the same "
            "size (pixel value &gt; 0 = anomaly) over the pixels valid in both (nodata and NaN excluded). "
            "Metrics of Chang's 3-D ROC; the tau-metrics use scores min-max normalised over valid pixels.</p>"
            f"<ul>{items}</ul><p>The HTML report lists the metrics and draws the ROC curve.</p>")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Anomaly-score layer")))
        self.addParameter(QgsProcessingParameterNumber("BAND", tr("Score band"), compat.NUMBER_INTEGER,
                                                       defaultValue=1, minValue=1))
        self.addParameter(QgsProcessingParameterRasterLayer("GROUND_TRUTH", tr("Ground truth (value > 0 = anomaly)")))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_HTML", tr("Report"), fileFilter="HTML files (*.html)", optional=True, createByDefault=True))
        for _, out, desc in METRIC_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(out, desc.split(":")[0]))
        self.addOutput(QgsProcessingOutputNumber("N_ANOMALY", tr("Anomaly pixels evaluated")))
        self.addOutput(QgsProcessingOutputNumber("N_BACKGROUND", tr("Background pixels evaluated")))

    def processAlgorithm(self, parameters, context, feedback):
        hc = _hc()
        from hadcore.metrics import evaluate, roc_curve

        score_layer, sds = self._raster(parameters, "INPUT", context)
        gt_layer, gds = self._raster(parameters, "GROUND_TRUTH", context)
        try:
            scores = gdal_io.read_band(sds, self.parameterAsInt(parameters, "BAND", context))
            gt = gdal_io.read_band(gds, 1)
            if scores.shape != gt.shape:
                raise hc.InputError(f"score layer is {scores.shape[0]} x {scores.shape[1]} pixels but the ground "
                                    f"truth is {gt.shape[0]} x {gt.shape[1]}")
            valid = np.isfinite(gt)
            truth = np.where(valid, gt, 0) > 0
            metrics = evaluate(scores, truth, mask=valid)
            pf, pd_, _ = roc_curve(scores, truth, mask=valid)
        except (hc.HadcoreError, gdal_io.RasterIOError) as exc:
            raise QgsProcessingException(str(exc)) from None
        ok = valid & np.isfinite(scores)
        n_anom, n_back = int((truth & ok).sum()), int((~truth & ok).sum())
        for key, _, _ in METRIC_OUTPUTS:
            feedback.pushInfo(f"{key} = {metrics[key]:.4f}")
        results = {out: float(metrics[key]) for key, out, _ in METRIC_OUTPUTS}
        results.update(N_ANOMALY=n_anom, N_BACKGROUND=n_back)
        path = self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context)
        if path:
            _write_report(path, score_layer.name(), gt_layer.name(), metrics, pf, pd_, n_anom, n_back)
            results["OUTPUT_HTML"] = path
        return results


def _roc_svg(pf, pd_, size=320) -> str:
    step = max(1, len(pf) // 1000)
    idx = list(range(0, len(pf), step))
    if idx[-1] != len(pf) - 1:
        idx.append(len(pf) - 1)
    m = 30
    pts = " ".join(f"{m + pf[i] * (size - 2 * m):.1f},{size - m - pd_[i] * (size - 2 * m):.1f}" for i in idx)
    s, e = m, size - m
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}">'
        f'<rect x="{s}" y="{s}" width="{e - s}" height="{e - s}" fill="none" stroke="#888"/>'
        f'<line x1="{s}" y1="{e}" x2="{e}" y2="{s}" stroke="#ccc" stroke-dasharray="4 3"/>'
        f'<polyline points="{pts}" fill="none" stroke="#c0392b" stroke-width="2"/>'
        f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="12">PF</text>'
        f'<text x="10" y="{size / 2}" font-size="12">PD</text></svg>'
    )


def _write_report(path, score_name, gt_name, metrics, pf, pd_, n_anom, n_back):
    e = html.escape
    rows = "".join(f"<tr><td>{e(d)}</td><td>{metrics[k]:.4f}</td></tr>" for k, _, d in METRIC_OUTPUTS)
    doc = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>hadcore evaluation</title>"
        "<style>body{font-family:sans-serif}td{padding:2px 10px}</style></head><body>"
        f"<h2>hadcore evaluation</h2><p>Scores: <b>{e(score_name)}</b>; ground truth: <b>{e(gt_name)}</b>; "
        f"{n_anom} anomaly and {n_back} background pixels.</p>"
        f"<table>{rows}</table><h3>ROC curve</h3>{_roc_svg(np.asarray(pf), np.asarray(pd_))}</body></html>"
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(doc)
