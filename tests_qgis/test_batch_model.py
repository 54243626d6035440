"""Batch processing and a Graphical Modeler model, inside a real QGIS.

- **Run as Batch Process**: QGIS's own ``processing.gui.BatchAlgorithmDialog`` (its table filled as a user
  fills it, its Run logic: one algorithm instance run row after row, a new context per row, the outputs
  loaded into the project) over three crops of the sample scene of different sizes, written with GDAL; each
  row's score layer must equal the detector called directly on that crop, carry that crop's georeference,
  and its detections equal a single ``processing.run`` on the crop: nothing carries over between rows. The
  same re-entrancy is checked with one algorithm instance run by hand (``alg.run`` three times, then the first
  input again).
- **Graphical Modeler**: a model ``hadcore:rx -> hadcore:vectorize`` built with
  ``QgsProcessingModelAlgorithm`` (:func:`build_model`) and saved as ``tests_qgis/data/rx_vectorize.model3``;
  the saved file is the model :func:`build_model` makes, and it runs through ``processing.run`` (the model
  loaded from the file) and through ``qgis_process.bin run rx_vectorize.model3 -- INPUT=...``; both give the
  polygons of running ``hadcore:rx`` then ``hadcore:vectorize`` directly.

Regenerate the model file (after changing :func:`build_model`): delete it and run this module locally; on
CI (``CI=true``) a missing file fails.
"""

from __future__ import annotations

from pathlib import Path

import hadcore
import numpy as np
import pytest
from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsVectorLayer,
)

from conftest import ON_CI, REPO, read_raster

MODEL_FILE = REPO / "tests_qgis" / "data" / "rx_vectorize.model3"
MODEL_THRESHOLD = "top:20"
DASH = "\u2013"

#: the batch's three crops of the sample scene (GDAL srcWin: x offset, y offset, width, height)
CROPS = {"crop_a": (0, 0, 48, 40), "crop_b": (30, 50, 40, 50), "crop_c": (52, 10, 48, 60)}
BATCH_THRESHOLD = "top:10"


# ---------------------------------------------------------------------------------------------- helpers
def _features(path):
    layer = QgsVectorLayer(str(path), "det", "ogr")
    assert layer.isValid(), path
    return sorted(layer.getFeatures(), key=lambda f: f["id"])


def _same_detections(got, ref, what):
    """Same polygons (geometry and attributes) in two feature lists sorted by id."""
    assert len(got) == len(ref) >= 1, (what, len(got), len(ref))
    for g, r in zip(got, ref):
        assert (g["id"], g["pixels"]) == (r["id"], r["pixels"]), what
        for key in ("area", "peak", "mean", "peak_x", "peak_y"):
            assert g[key] == pytest.approx(r[key], rel=1e-6), (what, key)
        assert g.geometry().equals(r.geometry()) or g.geometry().symDifference(r.geometry()).area() < 1e-6, \
            (what, g["id"], g.geometry().asWkt(), r.geometry().asWkt())


def _direct_rx(path):
    """RX called directly on a GeoTIFF's cube, pixels that are nodata in any band masked (as the plugin does)."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    raw = np.transpose(ds.ReadAsArray(), (1, 2, 0))
    mask = np.ones(raw.shape[:2], bool)
    for b in range(ds.RasterCount):
        nodata = ds.GetRasterBand(b + 1).GetNoDataValue()
        if nodata is not None:
            mask &= raw[:, :, b] != nodata
    return hadcore.get_detector("rx").detect(raw.astype(np.float32), mask=mask)


@pytest.fixture(scope="module")
def crops(sample_tif, tmp_path_factory):
    """{name: path} of three crops of the sample scene of different sizes, georeferenced (gdal.Translate)."""
    from osgeo import gdal

    scene, _ = sample_tif
    d = tmp_path_factory.mktemp("batch_crops")
    out = {}
    for name, win in CROPS.items():
        path = d / f"{name}.tif"
        ds = gdal.Translate(str(path), str(scene), srcWin=list(win), creationOptions=["TILED=YES"])
        assert ds is not None, name
        ds = None
        out[name] = path
    return out


# ---------------------------------------------------------------------------------------------- batch
def test_batch_dialog_runs_each_row_on_its_own_input(plugin, crops, tmp_path):
    """QGIS's "Run as Batch Process" dialog: three rows, three crops; each output is that crop's.

    The dialog runs in a QGIS process of its own (``desktop/run_batch_dialog.py``): from QGIS 3.28 it runs the
    rows as tasks on Qt's event loop, which aborts inside Qt under pytest-qgis.
    """
    import json
    import os
    import subprocess
    import sys

    import processing

    from conftest import PLUGIN_DIR

    names = list(crops)
    rows = [{"input": str(crops[n]), "output": str(tmp_path / f"{n}_rx.tif"),
             "detections": str(tmp_path / f"{n}_det.gpkg")} for n in names]
    config, report = tmp_path / "batch.json", tmp_path / "batch_report.json"
    config.write_text(json.dumps({"plugin_dir": str(PLUGIN_DIR), "rows": rows, "threshold": BATCH_THRESHOLD,
                                  "report": str(report), "timeout_s": 120}), encoding="utf-8")
    profile = tmp_path / "profile"
    profile.mkdir()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile))
    script = Path(__file__).resolve().parent / "desktop" / "run_batch_dialog.py"
    proc = subprocess.run([sys.executable, str(script), str(config)], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert report.exists(), f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    captured = json.loads(report.read_text(encoding="utf-8"))
    assert not captured["timed_out"], captured
    assert captured["errors"] in (None, []), captured["errors"]
    done = captured["rows"]
    assert [r["INPUT"] for r in done] == [str(crops[n]) for n in names]
    loaded = captured["layers"]
    for name, row in zip(names, done):
        out = tmp_path / f"{name}_rx.tif"
        assert Path(row["OUTPUT"]) == out and Path(row["DETECTIONS"]) == tmp_path / f"{name}_det.gpkg"
        scores, gt_out, proj_out, _ = read_raster(out)
        _, gt_in, proj_in, _ = read_raster(crops[name])
        win = CROPS[name]
        assert scores.shape == (win[3], win[2]), name
        assert gt_out == pytest.approx(gt_in) and proj_out == proj_in, name
        np.testing.assert_allclose(scores, _direct_rx(crops[name]), rtol=1e-5, err_msg=name)
        # the detections of this row equal a single run on this crop
        ref = processing.run("hadcore:rx", {"INPUT": str(crops[name]), "THRESHOLD": BATCH_THRESHOLD,
                                            "OUTPUT": str(tmp_path / f"{name}_single.tif"),
                                            "DETECTIONS": str(tmp_path / f"{name}_single.gpkg")})
        got = _features(tmp_path / f"{name}_det.gpkg")
        assert len(got) == ref["N_DETECTIONS"]
        _same_detections(got, _features(ref["DETECTIONS"]), name)
        assert sum(f["pixels"] for f in got) >= 10
        # the rows' layers, loaded into the project, are named after detector and input, detections on top
        score_name, det_name = f"rx {DASH} {name}", f"rx detections {DASH} {name}"
        assert score_name in loaded and det_name in loaded, (name, loaded)
        assert loaded.index(det_name) == loaded.index(score_name) - 1, loaded


def test_one_algorithm_instance_is_reentrant(plugin, crops, tmp_path):
    """One instance run on the three crops and then on the first again: each output is its own input's."""
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().createAlgorithmById("hadcore:rx")
    outputs = []
    for i, name in enumerate([*crops, next(iter(crops))]):
        context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
        out = tmp_path / f"{i}_{name}.tif"
        det = tmp_path / f"{i}_{name}.gpkg"
        params = alg.preprocessParameters({"INPUT": str(crops[name]), "THRESHOLD": BATCH_THRESHOLD,
                                           "OUTPUT": str(out), "DETECTIONS": str(det)})
        results, ok = alg.run(params, context, feedback)
        assert ok, name
        scores = read_raster(out)[0]
        np.testing.assert_allclose(scores, _direct_rx(crops[name]), rtol=1e-5, err_msg=name)
        outputs.append((scores, _features(det)))
    (first, first_det), (again, again_det) = outputs[0], outputs[-1]
    np.testing.assert_array_equal(first, again)
    _same_detections(again_det, first_det, "first crop, run again")


# ---------------------------------------------------------------------------------------------- model
def _with_defaults(child: QgsProcessingModelChildAlgorithm) -> QgsProcessingModelChildAlgorithm:
    """Give every parameter that is not connected its default value, as the Graphical Modeler's dialog does."""
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(child.algorithmId())
    assert alg is not None, child.algorithmId()
    for p in alg.parameterDefinitions():
        if p.isDestination() or p.name() in child.parameterSources() or p.defaultValue() is None:
            continue
        child.addParameterSources(p.name(), [QgsProcessingModelChildParameterSource.fromStaticValue(p.defaultValue())])
    return child


def build_model() -> QgsProcessingModelAlgorithm:
    """The Graphical Modeler model "rx_vectorize": INPUT -> hadcore:rx -> hadcore:vectorize -> DETECTIONS.

    Inputs: ``INPUT`` (raster layer), ``THRESHOLD`` (string, default ``top:20``). Outputs (final, so that
    ``qgis_process`` can name them): ``rx:SCORES`` (the RX score layer) and ``vectorize:DETECTIONS``.
    """
    from qgis.PyQt.QtCore import QPointF

    model = QgsProcessingModelAlgorithm("rx_vectorize", "hadcore")
    model.setHelpContent({"ALG_DESC": "RX anomaly scores of a raster, then their detection polygons."})

    for i, (name, definition) in enumerate((
            ("INPUT", QgsProcessingParameterRasterLayer("INPUT", "Hyperspectral raster")),
            ("THRESHOLD", QgsProcessingParameterString("THRESHOLD", "Threshold", defaultValue=MODEL_THRESHOLD)))):
        component = QgsProcessingModelParameter(name)
        component.setPosition(QPointF(120.0 + 220.0 * i, 60.0))
        model.addModelParameter(definition, component)

    rx = QgsProcessingModelChildAlgorithm("hadcore:rx")
    rx.setChildId("rx")
    rx.setDescription("RX anomaly scores")
    rx.setPosition(QPointF(120.0, 200.0))
    rx.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("INPUT")])
    scores = QgsProcessingModelOutput("SCORES", "Anomaly scores")
    scores.setChildOutputName("OUTPUT")
    scores.setChildId("rx")
    scores.setPosition(QPointF(120.0, 440.0))
    rx.setModelOutputs({"SCORES": scores})
    model.addChildAlgorithm(_with_defaults(rx))

    vec = QgsProcessingModelChildAlgorithm("hadcore:vectorize")
    vec.setChildId("vectorize")
    vec.setDescription("Detections")
    vec.setPosition(QPointF(340.0, 320.0))
    vec.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("rx", "OUTPUT")])
    vec.addParameterSources("THRESHOLD", [QgsProcessingModelChildParameterSource.fromModelParameter("THRESHOLD")])
    detections = QgsProcessingModelOutput("DETECTIONS", "Detections")
    detections.setChildOutputName("OUTPUT")
    detections.setChildId("vectorize")
    detections.setPosition(QPointF(340.0, 440.0))
    vec.setModelOutputs({"DETECTIONS": detections})
    model.addChildAlgorithm(_with_defaults(vec))
    return model


def _static(value) -> str:
    """A static parameter value as text; an empty value is "" whether QGIS stored it as "" or as null (QGIS 3.22
    saves an empty string as null, 3.40+ keeps "": the algorithm reads both as an empty string)."""
    text = "" if value is None else str(value)
    return "" if text in ("None", "NULL") else text


def _structure(model: QgsProcessingModelAlgorithm) -> dict:
    """What a model computes: inputs, child algorithms with their parameter sources, outputs."""
    children = {}
    for cid, child in model.childAlgorithms().items():
        sources = {}
        for pname, srcs in child.parameterSources().items():
            sources[pname] = [(s.source(), s.parameterName(), s.outputChildId(), s.outputName(), _static(s.staticValue()))
                              for s in srcs]
        children[cid] = {"alg": child.algorithmId(), "sources": sources,
                         "outputs": {k: (o.childId(), o.childOutputName()) for k, o in child.modelOutputs().items()}}
    return {"name": model.name(), "group": model.group(),
            "inputs": sorted((p.name(), p.type(), str(p.defaultValue())) for p in model.parameterDefinitions()
                             if not p.isDestination()),
            "outputs": sorted(p.name() for p in model.destinationParameterDefinitions()),
            "children": children}


@pytest.fixture(scope="module")
def model_file(plugin):
    """tests_qgis/data/rx_vectorize.model3 (written from build_model() when missing, never on CI)."""
    if not MODEL_FILE.exists():
        if ON_CI:
            pytest.fail(f"{MODEL_FILE} is missing (commit it: run this module once locally)")
        MODEL_FILE.parent.mkdir(parents=True, exist_ok=True)
        assert build_model().toFile(str(MODEL_FILE)), MODEL_FILE
    return MODEL_FILE


def _load_model(path) -> QgsProcessingModelAlgorithm:
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(path)), path
    return model


def _computation(structure: dict) -> dict:
    """A model's structure without the names of its destination parameters.

    QGIS names those itself: 3.22 ``<child>:<output>`` (``rx:SCORES``), 3.40+ from the output's description
    (``anomaly_scores``) for a model built in memory; a model read from a file keeps the names it was saved with.
    """
    return {k: v for k, v in structure.items() if k != "outputs"}


def test_saved_model_is_the_built_model(model_file, tmp_path):
    saved = _load_model(model_file)
    built = build_model()
    assert _computation(_structure(saved)) == _computation(_structure(built))
    assert len(_structure(built)["outputs"]) == 2
    # the saved file's output names, whatever QGIS reads it: what qgis_process and scripts pass
    assert saved.outputDefinitions() and {"rx:SCORES", "vectorize:DETECTIONS"} == set(_structure(saved)["outputs"])
    ok, errors = saved.validate()
    assert ok, errors
    # and it round-trips through a file: what the Graphical Modeler's "Save" writes
    again = tmp_path / "again.model3"
    assert built.toFile(str(again))
    assert _structure(_load_model(again)) == _structure(built)


@pytest.fixture(scope="module")
def direct_chain(plugin, sample_tif, tmp_path_factory):
    """hadcore:rx then hadcore:vectorize run directly on the sample scene: (scores path, detections path)."""
    import processing

    scene, _ = sample_tif
    d = tmp_path_factory.mktemp("chain")
    rx = processing.run("hadcore:rx", {"INPUT": str(scene), "OUTPUT": str(d / "rx.tif")})
    vec = processing.run("hadcore:vectorize", {"INPUT": rx["OUTPUT"], "THRESHOLD": MODEL_THRESHOLD,
                                               "OUTPUT": str(d / "det.gpkg")})
    assert vec["N_DETECTIONS"] >= 1
    return Path(rx["OUTPUT"]), Path(vec["OUTPUT"])


def test_model_runs_in_processing(model_file, sample_tif, direct_chain, tmp_path):
    import processing

    scene, _ = sample_tif
    ref_scores, ref_det = direct_chain
    model = _load_model(model_file)
    res = processing.run(model, {"INPUT": str(scene), "THRESHOLD": MODEL_THRESHOLD,
                                 "rx:SCORES": str(tmp_path / "scores.tif"),
                                 "vectorize:DETECTIONS": str(tmp_path / "det.gpkg")})
    assert Path(res["rx:SCORES"]) == tmp_path / "scores.tif"
    np.testing.assert_allclose(read_raster(res["rx:SCORES"])[0], read_raster(ref_scores)[0], rtol=1e-6)
    _same_detections(_features(res["vectorize:DETECTIONS"]), _features(ref_det), "model in processing.run")


def test_model_runs_with_qgis_process(model_file, sample_tif, direct_chain, tmp_path):
    from test_qgis_process import PLUGIN_DIR, PLUGIN_NAME, _env, _json, _venv_site, qgis_process

    scene, _ = sample_tif
    _, ref_det = direct_chain
    profile = tmp_path / "profile"
    profile.mkdir()
    env = _env(profile, PLUGIN_DIR, [REPO, _venv_site()])
    r = qgis_process(["plugins", "enable", PLUGIN_NAME], env, profile)
    assert r.returncode == 0, r.stdout + r.stderr
    det, scores = tmp_path / "det.gpkg", tmp_path / "scores.tif"
    r = qgis_process(["--json", "run", str(model_file), "--", f"INPUT={scene}", f"THRESHOLD={MODEL_THRESHOLD}",
                      f"vectorize:DETECTIONS={det}", f"rx:SCORES={scores}"], env, profile)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    results = _json(r.stdout)["results"]
    assert Path(results["vectorize:DETECTIONS"]) == det and det.exists() and scores.exists()
    _same_detections(_features(det), _features(ref_det), "model in qgis_process")
