"""Sensor products through ``processing.run("hadcore:rx", {"PRODUCT": ...})`` inside a real QGIS: EMIT L2A (scored
in swath geometry, written on the GLT map grid), PRISMA L2D and EnMAP L2A, built by ``tests/product_fixtures``
around a real benchmark crop (they need netCDF4 / h5py / rasterio: Debian's, in .venv-qgis).

Expectations come from the fixture (its cube, its band flags, its georeference read back with netCDF4 / h5py /
GDAL), not from hadcore's readers.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsRasterLayer

from conftest import REPO, _skip_or_fail, load_npz, read_raster

if str(REPO / "tests") not in sys.path:  # the product fixture generators (tests/product_fixtures)
    sys.path.append(str(REPO / "tests"))

# Debian's netCDF4 (Cython, built against an older numpy header) warns once on import; harmless
pytestmark = pytest.mark.filterwarnings("ignore:numpy.ndarray size changed:RuntimeWarning")

#: abu-airport-2 rows 40-69, columns 24-59: the scene's 87 anomaly pixels, 1080 pixels, H != W
SCENE, ROWS, COLS = "abu-airport-2", slice(40, 70), slice(24, 60)
H, W = 30, 36
EMIT_FILLED = (3, 4)  # a whole EMIT pixel at the fill value


def run(params, feedback=None):
    import processing

    return processing.run("hadcore:rx", params, feedback=feedback or QgsProcessingFeedback())


def apply_glt(swath2d, glt_x, glt_y):
    """NASA's emit_tools.apply_glt for one layer: out[y, x] = swath[glt_y - 1, glt_x - 1], NaN where 0."""
    out = np.full(glt_x.shape, np.nan, dtype=np.float64)
    hit = (glt_x != 0) & (glt_y != 0)
    out[hit] = swath2d[glt_y[hit] - 1, glt_x[hit] - 1]
    return out


def ranges(idx):
    """1-based ranges of sorted 0-based indices: [0, 1, 2, 5] -> "1-3,6"."""
    out = []
    idx = list(idx)
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        out.append(f"{idx[i] + 1}" if i == j else f"{idx[i] + 1}-{idx[j] + 1}")
        i = j + 1
    return ",".join(out)


def _libraries():
    for m in ("netCDF4", "h5py", "rasterio"):
        try:
            __import__(m)
        except ImportError as exc:  # scripts/setup_qgis_env.sh installs python3-netcdf4, -h5py, -rasterio
            _skip_or_fail(f"{m} is needed in QGIS's Python for the product readers: {exc}")


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    """{name: dict(path, cube, good, wkt, geotransform, shape, glt)} for EMIT, PRISMA L2D and EnMAP L2A."""
    _libraries()
    from osgeo import osr

    from product_fixtures.emit import emit_good, emit_swath, emit_wavelengths, make_emit
    from product_fixtures.enmap import GSD, ORIGIN, build_enmap
    from product_fixtures.prisma import PIXEL, make_prisma, read_truth

    cube, gt = load_npz(SCENE)
    cube, gt = cube[ROWS, COLS].copy(), gt[ROWS, COLS].copy()
    root = tmp_path_factory.mktemp("products")
    out = {}

    # EMIT L2A: swath cube, GLT, georeference as stored (netCDF4)
    import netCDF4

    swath = emit_swath(cube, "L2A")
    path = make_emit(root / "emit", swath, gt, fill=[EMIT_FILLED])
    swath[EMIT_FILLED] = np.nan
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        glt_x = np.asarray(nc["location/glt_x"][:]).astype(np.int64)
        glt_y = np.asarray(nc["location/glt_y"][:]).astype(np.int64)
        wkt, geo = str(nc.spatial_ref), tuple(float(v) for v in nc.geotransform)
    out["emit"] = dict(path=path, cube=swath, good=emit_good(emit_wavelengths()) != 0, wkt=wkt, geotransform=geo,
                       shape=glt_x.shape, glt=(glt_x, glt_y))

    # PRISMA L2D: reader-order cube from the fixture's truth; corners = pixel centres of a 30 m grid (h5py)
    import h5py

    path = make_prisma(root / "prisma", cube, gt, level="L2D")
    truth = read_truth(path)
    wl, vnir = truth["wavelengths"], truth["vnir"]
    with h5py.File(path, "r") as f:
        epsg = int(f.attrs["Epsg_Code"])
        e0, n0 = float(f.attrs["Product_ULcorner_easting"]), float(f.attrs["Product_ULcorner_northing"])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    # VNIR and SWIR overlap at 920-1010 nm: the SWIR bands at or below the longest VNIR band are left out
    good = ~(~vnir & (wl <= wl[vnir].max()))
    out["prisma"] = dict(path=path, cube=truth["cube"], good=good, wkt=srs.ExportToWkt(), wavelengths=wl,
                         geotransform=(e0 - PIXEL / 2, PIXEL, 0.0, n0 + PIXEL / 2, 0.0, -PIXEL), shape=(H, W),
                         glt=None)

    # EnMAP L2A: the METADATA.XML; its UTM 30 m grid with a no-data margin
    f = build_enmap(root / "enmap", cube, gt, level="L2A")
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    out["enmap"] = dict(path=f.xml, cube=f.expected, good=np.asarray(f.good, bool), wkt=srs.ExportToWkt(),
                        geotransform=(ORIGIN[0], GSD, 0.0, ORIGIN[1], 0.0, -GSD), shape=f.expected.shape[:2],
                        glt=None)
    assert out["enmap"]["shape"] == (H + 2 * f.margin, W + 2 * f.margin) and f.margin > 0
    return out


def _same_crs(wkt_a, wkt_b):
    from osgeo import osr

    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(wkt_a)
    b.ImportFromWkt(wkt_b)
    return bool(a.IsSame(b))


@pytest.mark.parametrize("name", ["emit", "prisma", "enmap"])
def test_product_is_scored_on_its_own_grid(plugin, products, tmp_path, name):
    import hadcore
    from osgeo import gdal

    p = products[name]
    out = tmp_path / f"{name}_rx.tif"
    res = run({"PRODUCT": str(p["path"]), "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out) and out.exists()

    # the layer QGIS loads: the product's grid
    layer = QgsRasterLayer(str(out), "scores", "gdal")
    assert layer.isValid()
    Ho, Wo = p["shape"]
    assert (layer.height(), layer.width()) == (Ho, Wo)
    assert _same_crs(layer.crs().toWkt(), p["wkt"]), layer.crs().authid()
    x0, dx, _, y0, _, dy = p["geotransform"]
    ext = layer.extent()
    for got, want in ((ext.xMinimum(), x0), (ext.xMaximum(), x0 + Wo * dx), (ext.yMaximum(), y0),
                      (ext.yMinimum(), y0 + Ho * dy)):
        assert got == pytest.approx(want, abs=1e-6 * max(abs(dx), abs(dy)))
    scores, geo, proj, nodata = read_raster(out)
    assert geo == pytest.approx(p["geotransform"], rel=1e-12, abs=1e-12) and np.isnan(nodata)
    assert _same_crs(proj, p["wkt"])

    # the scores: RX of the good bands of the fixture's cube (EMIT: through the GLT)
    good = p["good"]
    ref = hadcore.get_detector("rx").detect(np.ascontiguousarray(p["cube"][:, :, good])).astype(np.float64)
    if p["glt"] is not None:
        ref = apply_glt(ref, *p["glt"])
        r, c = EMIT_FILLED
        gx, gy = p["glt"]
        assert np.isnan(scores[(gy == r + 1) & (gx == c + 1)]).all()
    assert scores.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(scores), np.isnan(ref))
    valid = np.isfinite(ref)
    assert valid.sum() > 0.9 * H * W
    np.testing.assert_allclose(scores[valid], ref[valid], rtol=1e-4)

    # the layer says what was used
    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("bands") == str(int(good.sum()))
    assert ds.GetMetadataItem("band_list") == ranges(np.flatnonzero(good))
    assert ds.GetMetadataItem("detector") == "rx"
    ds = None


def test_bad_bands_auto_drops_water_vapour_bands(plugin, products, tmp_path):
    import hadcore

    p = products["prisma"]
    wl = p["wavelengths"]
    windows = ((1350.0, 1450.0), (1800.0, 1950.0), (2450.0, math.inf))
    auto = p["good"] & ~np.any([(wl >= lo) & (wl < hi) for lo, hi in windows], axis=0)
    assert 0 < auto.sum() < p["good"].sum()
    out = tmp_path / "auto.tif"
    run({"PRODUCT": str(p["path"]), "BAD_BANDS": "auto", "OUTPUT": str(out)})
    from osgeo import gdal

    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("bands") == str(int(auto.sum()))
    ds = None
    scores = read_raster(out)[0]
    ref = hadcore.get_detector("rx").detect(np.ascontiguousarray(p["cube"][:, :, auto]))
    np.testing.assert_allclose(scores, ref, rtol=1e-4, equal_nan=True)


@pytest.mark.parametrize("name", ["emit", "prisma"])
def test_detections_of_a_product_are_in_its_crs(plugin, products, tmp_path, name):
    from qgis.core import QgsVectorLayer

    p = products[name]
    res = run({"PRODUCT": str(p["path"]), "OUTPUT": str(tmp_path / "rx.tif"), "THRESHOLD": "top:10",
               "DETECTIONS": str(tmp_path / "det.gpkg")})
    layer = QgsVectorLayer(res["DETECTIONS"], "det", "ogr")
    assert layer.isValid()
    assert _same_crs(layer.crs().toWkt(), p["wkt"]), layer.crs().authid()
    feats = list(layer.getFeatures())
    assert res["N_DETECTIONS"] == len(feats) >= 1
    scores = read_raster(res["OUTPUT"])[0]
    top = np.sort(scores[np.isfinite(scores)])[-10]
    assert sum(f["pixels"] for f in feats) == int((scores >= top).sum())
    x0, dx, _, y0, _, dy = p["geotransform"]
    Ho, Wo = p["shape"]
    for f in feats:  # peaks are pixel centres of the product's grid
        col, row = (f["peak_x"] - x0) / dx - 0.5, (f["peak_y"] - y0) / dy - 0.5
        assert 0 <= row < Ho and 0 <= col < Wo
        assert col == pytest.approx(round(col), abs=1e-6) and row == pytest.approx(round(row), abs=1e-6)
        assert scores[int(round(row)), int(round(col))] == pytest.approx(f["peak"], rel=1e-6)


@pytest.mark.parametrize("which", ["both", "neither"])
def test_exactly_one_of_input_and_product(plugin, products, crop_tif, tmp_path, which):
    params = {"OUTPUT": str(tmp_path / "x.tif")}
    if which == "both":
        params.update(INPUT=str(crop_tif[0]), PRODUCT=str(products["prisma"]["path"]))
    with pytest.raises(QgsProcessingException) as exc:
        run(params)
    msg = str(exc.value).strip()
    assert "\n" not in msg and "Traceback" not in msg
    assert "INPUT" in msg and "PRODUCT" in msg and "either" in msg, msg
    assert not (tmp_path / "x.tif").exists()


@pytest.mark.parametrize("name", ["emit", "prisma", "hytes_l2"])
def test_truncated_product_is_a_one_line_error(plugin, products, tmp_path, name):
    if name == "hytes_l2":  # an HDF5 product whose reader cannot recognise it once truncated
        from product_fixtures.hytes import make_hytes_l2

        cube, _ = load_npz(SCENE)
        src = make_hytes_l2(tmp_path / "hytes", cube[ROWS, COLS])
    else:
        src = products[name]["path"]
    bad = tmp_path / src.name
    data = src.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "x.tif"
    with pytest.raises(QgsProcessingException) as exc:
        run({"PRODUCT": str(bad), "OUTPUT": str(out)})
    msg = str(exc.value).strip()
    assert "\n" not in msg and "Traceback" not in msg, msg
    assert bad.name in msg and "truncated" in msg, msg
    assert not out.exists()
