"""Fixtures for the tests that run inside a real QGIS (pytest-qgis, headless).

- ``plugin``: the ``hadcore_qgis`` plugin loaded from ``qgis_plugin/`` the way QGIS loads plugins
  (``qgis.utils.loadPlugin`` + ``startProcessingPlugin``), with Processing initialised.
- ``sample_tif``: the sample scene ``sample_data/abu-airport-1.tif`` (+ ``_gt.tif``); built from
  ``../shared/data/abu-airport-1.npz`` in a temporary folder when the repository has none yet.
- ``crop_tif``: a small georeferenced crop (32 x 32 pixels, 20 bands of abu-urban-1) with one nodata pixel,
  so that every registry detector runs in seconds.

Nothing here skips on CI (``CI=true``): a missing QGIS or missing data fails there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "qgis_plugin"
PLUGIN_NAME = "hadcore_qgis"
DATA_DIR = Path(os.environ.get("HADCORE_DATA", REPO.parent / "shared" / "data"))
SAMPLE = REPO / "sample_data" / "abu-airport-1.tif"
ON_CI = os.environ.get("CI", "").lower() == "true"
EPSG = 32615  # UTM 15N: a projected CRS for crops we build ourselves (the scenes carry no georeference)
NODATA = -9999.0

#: Small/fast parameters for slow detectors in the per-detector tests (registry name -> parameters, in
#: hadcore names). Only speed matters here; the detector's own tests check its quality on full scenes.
FAST_PARAMS = {
    "lsmad": {"max_iter": 5},
    "kdad": {"epochs": 2},
    "stad": {"epochs": 2},
    "aed": {"n_iter": 1},
    "pdbsnet": {"epochs": 2},
    "gthad": {"epochs": 2, "embed": 16},
    # target detectors: a target given by its values, one per band of the 20-band crop (it has no wavelengths)
    **{name: {"target": ",".join(str(1000 + 40 * k) for k in range(20))} for name in ("ace", "mf", "cemf", "osp", "sam")},
}


def _skip_or_fail(msg: str):
    if ON_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def load_npz(name: str):
    path = DATA_DIR / f"{name}.npz"
    if not path.exists():
        _skip_or_fail(f"benchmark data not found: {path}")
    with np.load(path) as z:
        return z["cube"].astype(np.float32), z["gt"].astype(np.uint8)


def write_geotiff(path, cube, *, nodata=None, epsg=EPSG, origin=(500000.0, 3300000.0), pixel=3.5):
    """(H, W[, B]) array -> GeoTIFF with a CRS and a north-up geotransform (GDAL)."""
    from osgeo import gdal, osr

    a = np.asarray(cube)
    if a.ndim == 2:
        a = a[:, :, None]
    H, W, B = a.shape
    dtype = gdal.GDT_Byte if a.dtype == np.uint8 else gdal.GDT_Float32
    ds = gdal.GetDriverByName("GTiff").Create(str(path), W, H, B, dtype, ["INTERLEAVE=PIXEL", "TILED=YES"])
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(B):
        band = ds.GetRasterBand(b + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(a[:, :, b])
    ds.FlushCache()
    ds = None
    return Path(path)


def read_raster(path):
    """(array (H, W) float64 of band 1, geotransform, projection WKT, nodata) of a written layer."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    assert ds is not None, f"cannot open {path}"
    band = ds.GetRasterBand(1)
    return band.ReadAsArray().astype(np.float64), ds.GetGeoTransform(), ds.GetProjection(), band.GetNoDataValue()


@pytest.fixture(scope="session", autouse=True)
def layer_panel(qgis_app, qgis_iface):
    """A real Layers panel (``QgsLayerTreeView`` on the project's layer tree) for pytest-qgis's mock ``iface``.

    QGIS 3.28+ Processing hands ``iface.layerTreeView()`` to C++ (``QgsProcessingGuiUtils.addResultLayers``)
    when it loads an algorithm's outputs; the mock would answer with a MagicMock, which C++ rejects. The QGIS
    desktop has this view; here it is a real one, never shown (offscreen).
    """
    from qgis.core import QgsLayerTreeModel, QgsProject
    from qgis.gui import QgsLayerTreeView

    view = QgsLayerTreeView()
    model = QgsLayerTreeModel(QgsProject.instance().layerTreeRoot(), view)
    view.setModel(model)
    qgis_iface.layerTreeView = lambda: view
    # the desktop's iface.setActiveLayer makes the layer the Layers panel's current one (QGIS 3.40's Processing
    # calls it on the first output it loads)
    set_active = qgis_iface.setActiveLayer
    qgis_iface.setActiveLayer = lambda layer: (set_active(layer), view.setCurrentLayer(layer))[0]
    yield view
    del qgis_iface.layerTreeView, qgis_iface.setActiveLayer


@pytest.fixture(scope="session")
def plugin(qgis_app, qgis_processing):
    """The plugin, loaded from qgis_plugin/ like QGIS does; returns its provider."""
    import qgis.utils
    from qgis.core import QgsApplication

    if str(PLUGIN_DIR) not in qgis.utils.plugin_paths:
        qgis.utils.plugin_paths[:0] = [str(PLUGIN_DIR)]
    if str(PLUGIN_DIR) not in sys.path:
        sys.path.insert(0, str(PLUGIN_DIR))
    qgis.utils.updateAvailablePlugins()
    assert qgis.utils.loadPlugin(PLUGIN_NAME), "qgis.utils.loadPlugin failed"
    assert qgis.utils.startProcessingPlugin(PLUGIN_NAME), "qgis.utils.startProcessingPlugin failed"
    provider = QgsApplication.processingRegistry().providerById("hadcore")
    assert provider is not None
    yield provider


@pytest.fixture(scope="session")
def sample_tif(tmp_path_factory):
    """(scene GeoTIFF, ground-truth GeoTIFF) of abu-airport-1."""
    gt_path = SAMPLE.with_name(SAMPLE.stem + "_gt.tif")
    if SAMPLE.exists() and gt_path.exists():
        return SAMPLE, gt_path
    cube, gt = load_npz("abu-airport-1")
    d = tmp_path_factory.mktemp("sample")
    return write_geotiff(d / "abu-airport-1.tif", cube), write_geotiff(d / "abu-airport-1_gt.tif", gt)


@pytest.fixture(scope="session")
def crop_tif(tmp_path_factory):
    """(crop GeoTIFF path, crop cube float32 with the nodata pixel, ground truth): 32 x 32 x 20, nodata at (0, 0)."""
    cube, gt = load_npz("abu-urban-1")
    r, c = 30, 30
    crop = cube[r:r + 32, c:c + 32, ::10][:, :, :20].copy()
    g = gt[r:r + 32, c:c + 32].copy()
    assert g.sum() > 0, "the crop should contain anomaly pixels"
    crop[0, 0, :] = NODATA
    d = tmp_path_factory.mktemp("crop")
    path = write_geotiff(d / "urban1_crop.tif", crop, nodata=NODATA)
    write_geotiff(d / "urban1_crop_gt.tif", g)
    return path, crop, g


def registry_detectors():
    """Registry names, read at collection time (the test iterates whatever is registered)."""
    try:
        import hadcore
    except ImportError as exc:  # pragma: no cover
        if ON_CI:
            raise
        return []
    return hadcore.list_detectors()


def fast_params(name: str) -> dict:
    """FAST_PARAMS[name], keeping only parameters the detector declares."""
    import hadcore

    declared = {p.name for p in hadcore.get_detector_class(name).params}
    return {k: v for k, v in FAST_PARAMS.get(name, {}).items() if k in declared}


def to_qgis_params(name: str, params: dict) -> dict:
    """Detector parameters (hadcore names/values) -> QGIS parameter dict (the plugin's names, choices as index)."""
    import hadcore
    from hadcore_qgis.algorithms import qgis_param_name  # importable once the ``plugin`` fixture ran

    cls = hadcore.get_detector_class(name)
    out = {}
    for k, v in params.items():
        p = cls.param(k)
        out[qgis_param_name(k)] = [str(c) for c in p.choices].index(str(v)) if p.type == "choice" else v
    return out
