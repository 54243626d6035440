"""Processing algorithms: one per registry detector (generated), and the base the tools share.

Parameter names follow QGIS conventions: ``INPUT``, ``BANDS``, ``SCALE``, ``OUTPUT``, ``THRESHOLD``,
``CONNECTIVITY``, ``MIN_SIZE``, ``DETECTIONS``; a detector parameter ``ridge`` becomes ``RIDGE`` (and
``DETECTOR_<NAME>`` if it would clash with a common name). Every value is validated by the detector's own
:meth:`hadcore.params.Param.coerce`; hadcore errors become ``QgsProcessingException``. The vectorize and
evaluate tools are in :mod:`hadcore_qgis.tools` (they import from here, never the reverse).
"""

from __future__ import annotations

import html
import os
import time

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFields,
    QgsGeometry,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from . import compat, deps, gdal_io, styling
from .helptext import detector_help, family_group
from .loader import load_hadcore

COMMON_NAMES = ("INPUT", "PRODUCT", "BANDS", "BAD_BANDS", "SCALE", "OUTPUT", "THRESHOLD", "CONNECTIVITY",
                "MIN_SIZE", "DETECTIONS", "SPECTRA", "REPORT", "N_DETECTIONS", "SECONDS")
#: the file filter of the PRODUCT input (sniffing is by content: "All files" for AVIRIS-NG images without
#: an extension)
PRODUCT_FILTER = ("Sensor products (*.nc *.NC *.he5 *.HE5 *.h5 *.hdf5 *.xml *.XML *.hdr *.img *.dat *.bsq *.bil "
                  "*.bip *.tif *.TIF *.tiff);;All files (*)")
CONNECTIVITY_OPTIONS = ["8 (corners touch)", "4 (edges only)"]
DEFAULT_THRESHOLD = "percentile:99.5"


def tr(text: str) -> str:
    return QCoreApplication.translate("hadcore", text)


def qgis_param_name(name: str) -> str:
    """QGIS parameter name of a detector parameter: upper case, prefixed if it clashes."""
    up = name.upper()
    return f"DETECTOR_{up}" if up in COMMON_NAMES else up


def _hc():
    hc, error = load_hadcore()
    if hc is None:
        raise QgsProcessingException(error)
    return hc


class _Base(QgsProcessingAlgorithm):
    def tr(self, text):
        return tr(text)

    def _raster(self, parameters, name, context):
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{name}: layer {layer.name()!r} is not a GDAL raster (provider {layer.providerType()!r})"
            )
        try:
            ds = gdal_io.open_raster(layer.dataProvider().dataSourceUri())
        except gdal_io.RasterIOError as exc:
            raise QgsProcessingException(str(exc)) from None
        return layer, ds

    @staticmethod
    def _progress(feedback, start: float, stop: float):
        hc = _hc()

        def callback(fraction, message=None):
            feedback.setProgress(start + (stop - start) * fraction)

        return hc.Progress(callback, feedback.isCanceled)


def detection_fields() -> QgsFields:
    fields = QgsFields()
    fields.append(compat.field("id", "int"))
    fields.append(compat.field("pixels", "int"))
    for name in ("area", "peak", "mean", "peak_x", "peak_y"):
        fields.append(compat.field(name, "double"))
    return fields


def spectra_fields() -> QgsFields:
    """The detection-spectra table (:data:`hadcore.spectra.SPECTRA_COLUMNS`): one row per detection and band."""
    fields = QgsFields()
    for name, kind in (("id", "int"), ("band", "int"), ("wavelength_nm", "double"), ("mean", "double"),
                       ("std", "double"), ("peak", "double"), ("pixels", "int")):
        fields.append(compat.field(name, kind))
    return fields


def write_spectra(sink, spectra) -> int:
    """Add the rows of ``spectra`` (:class:`hadcore.spectra.DetectionSpectra`) to a table ``sink``."""
    import math

    cols = spectra.to_columns()
    fields = spectra_fields()
    n = len(cols["id"])
    for i in range(n):
        feat = QgsFeature(fields)
        vals = []
        for name in ("id", "band", "wavelength_nm", "mean", "std", "peak", "pixels"):
            v = cols[name][i]
            if name in ("id", "band", "pixels"):
                vals.append(int(v))
            else:
                vals.append(None if not math.isfinite(float(v)) else float(v))
        feat.setAttributes(vals)
        sink.addFeature(feat, compat.SINK_FAST_INSERT)
    return n


def write_detections(sink, labels, table, info, connectivity, feedback) -> int:
    """Polygonize ``labels`` (GDAL) and add one multipolygon feature per detection to ``sink``."""
    polys = gdal_io.polygonize_labels(labels, info, connectivity=connectivity)
    fields = detection_fields()
    n = 0
    for row in table:
        if feedback.isCanceled():
            break
        parts = [QgsGeometry.fromWkt(w) for w in polys.get(row["id"], [])]
        if not parts:
            continue
        geom = parts[0] if len(parts) == 1 else QgsGeometry.collectGeometry(parts)
        geom.convertToMultiType()
        x, y = info.pixel_centre(row["peak_row"], row["peak_col"])
        feat = QgsFeature(fields)
        feat.setGeometry(geom)
        feat.setAttributes([int(row["id"]), int(row["pixels"]), float(row["pixels"] * info.pixel_area),
                            float(row["peak"]), float(row["mean"]), float(x), float(y)])
        sink.addFeature(feat, compat.SINK_FAST_INSERT)
        n += 1
    return n


def _add_detection_params(alg, with_sink_optional: bool):
    alg.addParameter(QgsProcessingParameterString(
        "THRESHOLD", tr("Threshold (percentile:P | value:X | top:N | otsu | fpr:R)"),
        defaultValue=DEFAULT_THRESHOLD, optional=with_sink_optional))
    alg.addParameter(QgsProcessingParameterEnum(
        "CONNECTIVITY", tr("Pixel connectivity of a detection"), options=CONNECTIVITY_OPTIONS, defaultValue=0))
    alg.addParameter(QgsProcessingParameterNumber(
        "MIN_SIZE", tr("Smallest detection (pixels)"), compat.NUMBER_INTEGER,
        defaultValue=1, minValue=1))


class DetectorAlgorithm(_Base):
    """A hadcore detector as a Processing algorithm, generated from its declaration."""

    def __init__(self, detector_name: str):
        super().__init__()
        self._name = detector_name
        self._cls = _hc().get_detector_class(detector_name)

    def createInstance(self):
        return DetectorAlgorithm(self._name)

    def name(self):
        return self._name

    def displayName(self):
        return self._cls.title or self._name

    def group(self):
        return family_group(self._cls.family)

    def groupId(self):
        return self._cls.family

    def shortDescription(self):
        return self._cls.summary

    def shortHelpString(self):
        return _requirements_html(self._name, self._cls.requires) + detector_help(self._cls, qgis_param_name)

    def tags(self):
        return ["hyperspectral", "anomaly", "detection", self._name, self._cls.family]

    # ------------------------------------------------------------------ parameters
    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Hyperspectral raster"), optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "PRODUCT", tr("or a sensor product file (EMIT .nc, PRISMA .he5, EnMAP METADATA.XML, AVIRIS / HyTES / "
                          "DESIS)"), behavior=compat.FILE_BEHAVIOR_FILE, fileFilter=PRODUCT_FILTER,
            optional=True))
        bands = QgsProcessingParameterString("BANDS", tr("Bands (1-based, e.g. 1-50,60; empty = all)"),
                                             defaultValue="", optional=True)
        self.addParameter(bands)
        bad = QgsProcessingParameterString(
            "BAD_BANDS", tr("Bad bands to drop besides the product's flags ('auto' = also water-vapour windows and "
                            "constant bands; 'none' = keep all; or 1-based bands)"), defaultValue="", optional=True)
        bad.setFlags(bad.flags() | compat.PARAMETER_FLAG_ADVANCED)
        self.addParameter(bad)
        for p in self._cls.params:
            self.addParameter(_qgis_parameter(p))
        self.addParameter(QgsProcessingParameterBoolean("SCALE", tr("Scale scores to 0-1"), defaultValue=False))
        mem = QgsProcessingParameterNumber("MEM_LIMIT", tr("Memory budget (MB; 0 = a quarter of the RAM, at most 2048)"),
                                           compat.NUMBER_INTEGER, defaultValue=0, minValue=0)
        mem.setFlags(mem.flags() | compat.PARAMETER_FLAG_ADVANCED)
        self.addParameter(mem)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Anomaly scores")))
        _add_detection_params(self, with_sink_optional=True)
        self.addParameter(QgsProcessingParameterFeatureSink(
            "DETECTIONS", tr("Detections"), compat.SOURCE_VECTOR_POLYGON, optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFeatureSink(
            "SPECTRA", tr("Spectra of the detections (mean, SD, peak; id 0 = background)"),
            compat.SOURCE_VECTOR_TABLE, optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            "REPORT", tr("Spectra report (HTML, with the plot)"), fileFilter="HTML files (*.html)", optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("N_DETECTIONS", tr("Number of detections")))
        self.addOutput(QgsProcessingOutputNumber("SECONDS", tr("Detector run time (s)")))

    def _detector_values(self, parameters, context):
        values = {}
        for p in self._cls.params:
            qn = qgis_param_name(p.name)
            raw = parameters.get(qn)
            if p.optional and (raw is None or (isinstance(raw, str) and raw.strip() == "")):
                values[p.name] = None
            elif p.type == "int":
                values[p.name] = self.parameterAsInt(parameters, qn, context)
            elif p.type == "float":
                values[p.name] = self.parameterAsDouble(parameters, qn, context)
            elif p.type == "bool":
                values[p.name] = self.parameterAsBool(parameters, qn, context)
            elif p.type == "choice":
                values[p.name] = list(p.choices)[self.parameterAsEnum(parameters, qn, context)]
            elif p.type == "path":
                values[p.name] = self.parameterAsFile(parameters, qn, context) or p.default
            else:
                values[p.name] = self.parameterAsString(parameters, qn, context)
        return values

    # ------------------------------------------------------------------ run
    def processAlgorithm(self, parameters, context, feedback):
        hc = _hc()
        lacking = deps.missing(self._cls.requires)
        if lacking:
            raise QgsProcessingException(deps.message(self._name, lacking))
        try:
            return self._run(hc, parameters, context, feedback)
        except ModuleNotFoundError as exc:  # an optional package the declaration did not name
            raise QgsProcessingException(deps.message(self._name, [exc.name or str(exc)])) from None
        except hc.Cancelled:
            raise QgsProcessingException(tr("Cancelled by the user")) from None
        except (hc.HadcoreError, gdal_io.RasterIOError) as exc:
            raise QgsProcessingException(str(exc)) from None

    def _run(self, hc, parameters, context, feedback):
        from hadcore.tags import score_tags

        spec = (self.parameterAsString(parameters, "BANDS", context) or "").strip()
        bad = (self.parameterAsString(parameters, "BAD_BANDS", context) or "").strip() or None
        product_path = (self.parameterAsFile(parameters, "PRODUCT", context) or "").strip()
        has_layer = parameters.get("INPUT") not in (None, "")
        if bool(product_path) == has_layer:
            raise QgsProcessingException("give either a raster layer (INPUT) or a sensor product file (PRODUCT)")
        scene = None
        if product_path:
            # a product GDAL cannot open as a layer: hadcore's readers (they need h5py / rasterio)
            from hadcore.scene import open_scene

            scene = open_scene(product_path, bands=spec or None, bad_bands=bad)
            Ho, Wo = scene.output_shape
            info = gdal_io.RasterInfo(path=product_path, width=Wo, height=Ho, count=scene.n_source_bands,
                                      geotransform=None if scene.transform is None else tuple(scene.transform.to_gdal()),
                                      projection="" if scene.crs is None else scene.crs.to_wkt())
            bands = list(scene.band_indices)
            scene_wl = scene.wavelengths
            crs = QgsCoordinateReferenceSystem(info.projection) if info.projection else QgsCoordinateReferenceSystem()
            for note in scene.notes:
                feedback.pushInfo(f"{os.path.basename(product_path)}: {note}")
        else:
            layer, ds = self._raster(parameters, "INPUT", context)
            info = gdal_io.raster_info(ds)
            # the same rule as the CLI and hadcore.detect: the file's bbl flags, auto, none, lists
            scene_wl = None
            bands, notes, layer_wl, layer_fw = gdal_io.choose_bands_with_wavelengths(
                ds, layer.source(), spec or None, bad)
            for note in notes:
                feedback.pushInfo(f"{layer.name()}: {note}")
            crs = layer.crs()
        detector = self._cls(**self._detector_values(parameters, context))
        if getattr(detector, "spectrum_params", ()):  # a target detector: its library spec on these bands
            from hadcore.library import prepare_spectra

            wl, fw = (scene.wavelengths, scene.fwhm) if scene is not None else (layer_wl, layer_fw)
            for note in prepare_spectra(detector, wl, fw, len(bands)):
                feedback.pushInfo(note)
        threshold = (self.parameterAsString(parameters, "THRESHOLD", context) or "").strip() or DEFAULT_THRESHOLD
        scale = self.parameterAsBool(parameters, "SCALE", context)
        sink, sink_id = self.parameterAsSink(parameters, "DETECTIONS", context, detection_fields(),
                                             compat.WKB_MULTIPOLYGON, crs)
        spectra_sink, spectra_id = self.parameterAsSink(parameters, "SPECTRA", context, spectra_fields(),
                                                        compat.WKB_NO_GEOMETRY, QgsCoordinateReferenceSystem())
        report = (self.parameterAsFileOutput(parameters, "REPORT", context) or "").strip() \
            if parameters.get("REPORT") not in (None, "") else ""
        want_spectra = spectra_sink is not None or bool(report)
        if sink is not None or want_spectra:
            from hadcore.threshold import parse_threshold

            if parse_threshold(threshold).kind == "fpr":
                if detector.null_distribution is None:
                    raise QgsProcessingException(f"threshold 'fpr' needs scores with a known null distribution; "
                                                 f"{self._name!r} scores have none")
                if scale:
                    raise QgsProcessingException("threshold 'fpr:' applies to unscaled scores; set SCALE to false")
        feedback.pushInfo(f"{detector!r} on {info.height} x {info.width} pixels, {len(bands)} of {info.count} bands")

        from hadcore.engine import run_scene

        mem_limit = self.parameterAsInt(parameters, "MEM_LIMIT", context)
        source = scene.source if scene is not None else gdal_io.GdalSource(ds, bands)
        collector = None
        if want_spectra:  # gathered in the pass that writes the scores (hadcore.spectra)
            from hadcore.spectra import SpectraCollector, expected_detections

            collector = SpectraCollector(len(bands), source.shape[1],
                                         expected=expected_detections(threshold, source.shape[0] * source.shape[1]))
        out_path = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        # the score-layer tags every hadcore writer writes (hadcore.tags): the CLI reads them back
        metadata = score_tags(self._name, detector.get_params(), n_bands=len(bands), bands=bands, normalized=scale,
                              extra={"source": os.path.basename(product_path) if product_path else layer.name()})
        out = gdal_io.FloatRasterSink(out_path, info, description=f"hadcore:{self._name} anomaly score",
                                      metadata=metadata)
        t0 = time.perf_counter()
        cache = gdal_io.limited_block_cache(64)
        cache.__enter__()
        try:
            # the CLI's and hadcore.detect's entry; a swath product (EMIT) is re-grided onto its map grid there
            run_info = run_scene(detector, source, out, output=scene.output if scene is not None else None,
                                 mem_limit_mb=(collector.engine_budget(mem_limit or None) if collector is not None
                                               else mem_limit or None),
                                 progress=self._progress(feedback, 0.0, 90.0),
                                 observer=collector)
            out.metadata.update(run_info.detector_tags)
            for key, value in run_info.detector_tags.items():
                feedback.pushInfo(f"{self._name}: {key} = {value}")
            if scale:
                out.rescale()
            out.close()
        except BaseException:
            out.abort()
            raise
        finally:
            cache.__exit__(None, None, None)
        seconds = time.perf_counter() - t0
        feedback.pushInfo(f"{self._name}: {seconds:.2f} s, {run_info.plan.n_blocks} block(s) under "
                          f"{run_info.plan.budget // 2**20} MB")
        feedback.setProgress(95.0)
        results = {"OUTPUT": out_path, "SECONDS": seconds, "N_DETECTIONS": 0}
        if sink is not None or want_spectra:
            from hadcore.components import label_detections

            conn = 8 if self.parameterAsEnum(parameters, "CONNECTIVITY", context) == 0 else 4
            min_size = self.parameterAsInt(parameters, "MIN_SIZE", context)
            # the one-band score layer (the input is B times larger), read back whole
            scores = gdal_io.read_band(gdal_io.open_raster(out_path), 1)
            from hadcore.threshold import parse_threshold

            law = detector.null_law(len(bands)) if parse_threshold(threshold).kind == "fpr" else None
            labels, table = label_detections(scores, threshold, connectivity=conn, min_size=min_size,
                                             n_bands=len(bands), null=law)
            results["N_DETECTIONS"] = len(table)
            if sink is not None:
                n = write_detections(sink, labels, table, info, conn, feedback)
                feedback.pushInfo(f"{n} detection(s) at threshold {threshold}")
                results.update(DETECTIONS=sink_id, N_DETECTIONS=n)
            if want_spectra:
                import numpy as np

                with gdal_io.limited_block_cache(64):  # any pixel read again: GDAL's cache held as in the run
                    found = collector.finish(labels, table, source,
                                             output=scene.output if scene is not None else None,
                                             wavelengths=scene_wl if scene is not None else layer_wl,
                                             band_numbers=np.asarray(bands) + 1)
                for note in found.notes:
                    feedback.pushInfo(note)
                if spectra_sink is not None:
                    write_spectra(spectra_sink, found)
                    results["SPECTRA"] = spectra_id
                if report:
                    self._write_report(found, report, feedback)
                    results["REPORT"] = report
        ds = None
        source = None
        # when Processing loads the outputs: named after detector and input, styled, detections on top
        styling.attach_detector_outputs(context, self._name,
                                        styling.source_name(product_path) if product_path else layer.name(),
                                        out_path, sink_id if sink is not None else None,
                                        spectra_id if spectra_sink is not None else None)
        feedback.setProgress(100.0)
        return results


    def _write_report(self, found, path, feedback):
        """The HTML report of the detections' spectra, the plot embedded (PNG beside it as well)."""
        from hadcore.plots import have_matplotlib, plot_detection_spectra, spectra_html

        png = None
        if have_matplotlib():
            png = os.path.splitext(path)[0] + "_spectra.png"
            plot_detection_spectra(found, png, title=f"hadcore {self._name}: spectra of the detections")
        else:
            feedback.pushInfo("the report has no plot: matplotlib is not installed in QGIS's Python")
        text = spectra_html(found, png, title=f"hadcore {self._name}: spectra of the detections")
        tmp = path + ".part"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)


def _requirements_html(name: str, requires) -> str:
    """The optional packages a detector needs, and how to install the ones QGIS's Python lacks."""
    if not requires:
        return ""
    names = ", ".join(deps.PIP_NAMES.get(m, (m, m))[0] for m in requires)
    lacking = deps.missing(requires)
    if not lacking:
        return f"<p><i>Needs {html.escape(names)} (installed).</i></p>"
    return f"<p><b>Not available here</b>: {html.escape(deps.message(name, lacking))}</p>"


def _qgis_parameter(p):
    """A QGIS parameter definition from a hadcore :class:`~hadcore.params.Param`."""
    qn = qgis_param_name(p.name)
    desc = p.help.rstrip(".")
    if p.odd:
        desc += " (odd)"
    if p.type in ("int", "float"):
        kind = compat.NUMBER_INTEGER if p.type == "int" else compat.NUMBER_DOUBLE
        kw = {}
        if p.min is not None:
            kw["minValue"] = p.min
        if p.max is not None:
            kw["maxValue"] = p.max
        d = QgsProcessingParameterNumber(qn, desc, kind, defaultValue=p.default, optional=p.optional, **kw)
    elif p.type == "bool":
        d = QgsProcessingParameterBoolean(qn, desc, defaultValue=p.default, optional=p.optional)
    elif p.type == "choice":
        choices = [str(c) for c in p.choices]
        default = choices.index(str(p.default)) if p.default is not None else None
        d = QgsProcessingParameterEnum(qn, desc, options=choices, allowMultiple=False, defaultValue=default,
                                       optional=p.optional)
    elif p.type == "path":
        d = QgsProcessingParameterFile(qn, desc, behavior=compat.FILE_BEHAVIOR_FILE, extension="",
                                       defaultValue=p.default, optional=p.optional)
    else:
        d = QgsProcessingParameterString(qn, desc, defaultValue=p.default, optional=p.optional)
    d.setHelp(f"{p.help} Allowed: {p.describe_range()}.")
    return d


class MissingHadcoreAlgorithm(QgsProcessingAlgorithm):
    """Shown instead of the detectors when hadcore cannot be imported: explains how to install it."""

    def __init__(self, message: str):
        super().__init__()
        self._message = message

    def createInstance(self):
        return MissingHadcoreAlgorithm(self._message)

    def name(self):
        return "install_hadcore"

    def displayName(self):
        return tr("hadcore is not installed: how to install it")

    def group(self):
        return tr("Setup")

    def groupId(self):
        return "setup"

    def shortHelpString(self):
        return html.escape(self._message)

    def initAlgorithm(self, config=None):
        pass

    def processAlgorithm(self, parameters, context, feedback):
        raise QgsProcessingException(self._message)
