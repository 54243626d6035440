"""The EMIT reader (hadcore.products.emit) on EMIT-layout granules holding real benchmark cubes."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, load_scene, require
from product_fixtures.emit import (FILL, N_BANDS, RESOLUTION_DEG, emit_fwhm, emit_good, emit_swath,
                                   emit_wavelengths, make_emit)

# the swath: abu-airport-2 rows 0-79, columns 0-89 (all 87 anomaly pixels; H != W catches swapped axes)
H, W = 80, 90
FILLED = [(5, 7), (60, 30)]  # whole pixels at the fill value
FILLED_ONE = (12, 40, 100)  # one band of one pixel


@pytest.fixture(scope="module", autouse=True)
def _libraries():
    for m in ("h5py", "netCDF4", "rasterio"):
        require(m)


@pytest.fixture(scope="module")
def l2a(tmp_path_factory):
    """(path, expected (H, W, 285) float32 with NaN at fill values, gt) of an L2A reflectance granule."""
    cube, gt = load_scene("abu-airport-2")
    cube, gt = cube[:H, :W], gt[:H, :W]
    swath = emit_swath(cube, "L2A")
    path = make_emit(tmp_path_factory.mktemp("emit_l2a"), swath, gt, fill=FILLED + [FILLED_ONE])
    expected = swath.copy()
    for r, c in FILLED:
        expected[r, c, :] = np.nan
    expected[FILLED_ONE] = np.nan
    return path, expected, gt


@pytest.fixture(scope="module")
def l1b(tmp_path_factory):
    """(path, expected) of an L1B radiance granule (hydice-162, 30 x 40, rotated the other way)."""
    cube, _ = load_scene("hydice-162")
    swath = emit_swath(cube[20:50, 10:50], "L1B")
    return make_emit(tmp_path_factory.mktemp("emit_l1b"), swath, level="L1B", angle_deg=-40.0), swath


@pytest.fixture(scope="module")
def small():
    """A 12 x 10 swath for the error cases."""
    cube, _ = load_scene("abu-airport-2")
    return emit_swath(cube[40:52, 30:40], "L2A")


def _reader():
    from hadcore.products.emit import READER

    return READER


def _glt(path):
    """The file's GLT, georeference and swath lat/lon read with netCDF4 (independently of the reader)."""
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        loc = nc["location"]
        return (np.asarray(loc["glt_x"][:]), np.asarray(loc["glt_y"][:]), tuple(nc.geotransform), nc.spatial_ref,
                np.asarray(loc["lon"][:]), np.asarray(loc["lat"][:]))


def _apply_glt(swath2d, gx, gy):
    """NASA's emit_tools.apply_glt, for one layer: map[i, j] = swath[glt_y - 1, glt_x - 1], NaN where 0."""
    out = np.full(gx.shape, np.nan, dtype=np.float32)
    ok = (gx != 0) & (gy != 0)
    out[ok] = swath2d[gy[ok] - 1, gx[ok] - 1]
    return out


def _one_line_error(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg and path.name in msg, msg
    return msg


# ---------------------------------------------------------------------------------------------- sniffing


def test_sniff_by_content_not_suffix(l2a, tmp_path):
    from hadcore.products import open_product

    path = l2a[0]
    renamed = tmp_path / "granule.bin"
    shutil.copy(path, renamed)
    assert _reader().sniff(path) and _reader().sniff(renamed)
    prod = open_product(renamed)  # EMIT is the first reader asked
    assert prod.kind == "EMIT L2A reflectance" and prod.shape == (H, W, N_BANDS)


def test_sniff_rejects_other_files(tmp_path):
    import h5py
    import netCDF4
    import rasterio

    reader = _reader()
    tif = tmp_path / "cube.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=8, height=6, count=5, dtype="float32", crs="EPSG:4326",
                       transform=rasterio.transform.Affine(0.001, 0.0, 10.0, 0.0, -0.001, 50.0)) as dst:
        dst.write(np.ones((5, 6, 8), dtype=np.float32))
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["cube"] = np.zeros((6, 8, 5), dtype=np.float32)
        f.create_group("meta").attrs["instrument"] = "not EMIT"
    prisma_like = tmp_path / "PRS_L2D_HCO.he5"
    with h5py.File(prisma_like, "w") as f:
        f.create_dataset("HDFEOS/SWATHS/PRS_L2D_HCO/Data Fields/VNIR_Cube", data=np.zeros((6, 5, 8), np.uint16))
    generic = tmp_path / "generic.nc"  # a 3-D 'reflectance' alone does not make an EMIT granule
    with netCDF4.Dataset(generic, "w") as nc:
        for d, n in (("y", 6), ("x", 8), ("band", 5)):
            nc.createDimension(d, n)
        nc.createVariable("reflectance", "f4", ("y", "x", "band"))[:] = 0.5
        nc.createGroup("location")
    truncated_plain = tmp_path / "truncated_plain.h5"
    data = plain.read_bytes()
    truncated_plain.write_bytes(data[: len(data) // 2])
    text = tmp_path / "EMIT_L2A_RFL_001_fake.nc"
    text.write_text("not a netCDF file\n")
    for p in (tif, plain, prisma_like, generic, truncated_plain, text, tmp_path / "missing.nc", tmp_path):
        assert not reader.sniff(p), p


def test_reader_module_imports_no_file_library():
    code = ("import sys, hadcore.products.emit as m; assert m.READER.name == 'emit'; "
            "print(sorted(k for k in ('h5py', 'netCDF4', 'rasterio', 'h5netcdf', 'xarray') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------- metadata


def test_product_metadata(l2a):
    from hadcore.io import read_ground_truth

    path, _, gt = l2a
    prod = _reader().open(path)
    assert prod.kind == "EMIT L2A reflectance" and prod.path == str(path)
    assert prod.shape == (H, W, N_BANDS)
    np.testing.assert_array_equal(prod.wavelengths, emit_wavelengths().astype(np.float64))
    assert np.all(np.diff(prod.wavelengths) > 0)
    assert 380 < prod.wavelengths[0] < 382 and 2492 < prod.wavelengths[-1] < 2494  # nm, not um
    np.testing.assert_array_equal(prod.fwhm, emit_fwhm().astype(np.float64))
    np.testing.assert_array_equal(prod.good, emit_good().astype(bool))
    wl = prod.wavelengths
    assert not prod.good[(wl > 1330) & (wl < 1430)].any() and not prod.good[(wl > 1780) & (wl < 1950)].any()
    assert prod.good[(wl > 400) & (wl < 1300)].all() and prod.good.sum() == 244
    assert prod.reflective is True
    assert prod.crs is None and prod.transform is None and prod.nodata is None  # swath geometry
    assert prod.output is None and prod.output_factory is not None  # the GLT is read only when asked for
    assert prod.band_names[0] == "381.01 nm" and len(prod.band_names) == N_BANDS
    np.testing.assert_array_equal(read_ground_truth(prod.gt_path, (H, W)), gt)


def test_band_order_follows_wavelength(small, tmp_path):
    """A file whose bands are stored in descending wavelength is presented ascending."""
    path = make_emit(tmp_path, small, wavelengths=emit_wavelengths()[::-1])
    prod = _reader().open(path)
    assert np.all(np.diff(prod.wavelengths) > 0)
    np.testing.assert_array_equal(prod.wavelengths, emit_wavelengths().astype(np.float64))
    np.testing.assert_array_equal(prod.good, emit_good().astype(bool))
    np.testing.assert_array_equal(prod.fwhm, emit_fwhm()[::-1].astype(np.float64))
    x = prod.source([0, 10, 284]).read(0, 12, 0, 10)
    np.testing.assert_array_equal(x, small[:, :, [284, 274, 0]])
    assert any("reordered" in n for n in prod.notes)


# ---------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("which", ["all", "good", "unordered", "one"])
def test_source_windows_equal_the_cube(l2a, which):
    from hadcore.engine import Source

    path, expected, _ = l2a
    prod = _reader().open(path)
    idx = {"all": np.arange(N_BANDS), "good": np.flatnonzero(prod.good), "unordered": [200, 3, 150, 4],
           "one": [17]}[which]
    src = prod.source(idx)
    assert isinstance(src, Source)
    assert src.shape == (H, W, len(idx)) and src.nodata is None and src.read_bytes == 4
    assert src.name == path.name and src.block_shape is None  # EMIT's data variable is contiguous
    for r0, r1, c0, c1 in ((0, H, 0, W), (7, 23, 41, W), (H - 1, H, 0, 1), (30, 31, 10, 70)):
        x = src.read(r0, r1, c0, c1)
        assert x.dtype == np.float32 and x.shape == (r1 - r0, c1 - c0, len(idx))
        np.testing.assert_array_equal(x, expected[r0:r1, c0:c1][:, :, idx])
        raw, valid = src.raw_block(r0, r1, c0, c1)  # the engine's path: into reused buffers
        np.testing.assert_array_equal(raw, x)
        np.testing.assert_array_equal(valid, np.isfinite(x).all(axis=2))


def test_fill_values_read_as_nan(l2a):
    path, _, _ = l2a
    x = _reader().open(path).source(range(N_BANDS)).read(0, H, 0, W)
    for r, c in FILLED:
        assert np.isnan(x[r, c]).all()
    r, c, b = FILLED_ONE
    assert np.isnan(x[r, c, b]) and np.isfinite(np.delete(x[r, c], b)).all()
    assert np.isnan(x).sum() == len(FILLED) * N_BANDS + 1
    assert not (x == FILL).any()


def test_source_pickles_and_reads_after_unpickling(l2a):
    path, expected, _ = l2a
    prod = _reader().open(path)
    idx = np.flatnonzero(prod.good)
    src = prod.source(idx)
    fresh = pickle.loads(pickle.dumps(src))  # before any read
    np.testing.assert_array_equal(fresh.read(10, 20, 5, 15), expected[10:20, 5:15][:, :, idx])
    src.read(0, 2, 0, 2)  # the file is open now: the pickle must drop the handle
    state = src.__getstate__()
    assert state["_file"] is None and state["_ds"] is None
    again = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(again.read(0, H, 0, W), expected[:, :, idx])


def test_source_rejects_bad_band_indexes(l2a):
    from hadcore.errors import InputError

    prod = _reader().open(l2a[0])
    for bad in ([], [N_BANDS], [-1]):
        with pytest.raises(InputError):
            prod.source(bad)


# ---------------------------------------------------------------------------------------------- GLT grid


def test_output_grid_follows_the_glt(l2a):
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    path, expected, _ = l2a
    prod = _reader().open(path)
    grid = prod.grid()
    assert prod.grid() is grid and prod.grid(ortho=False) is None
    gx, gy, geotransform, wkt, lon, lat = _glt(path)
    assert (grid.height, grid.width) == gx.shape == (118, 122)
    ok = (gx > 0) & (gy > 0)
    np.testing.assert_array_equal(grid.rows, np.where(ok, gy - 1, -1))
    np.testing.assert_array_equal(grid.cols, np.where(ok, gx - 1, -1))
    # no-data margins, and a rotation (not a shift): along one map row the swath row changes
    assert not ok[0].any() and not ok[-1].any() and not ok[:, 0].any() and not ok[:, -1].any()
    mid = grid.height // 2
    assert len(np.unique(grid.rows[mid][ok[mid]])) > 10
    assert grid.crs == CRS.from_epsg(4326) == CRS.from_wkt(wkt)
    assert grid.transform == Affine.from_gdal(*geotransform)
    assert grid.transform.a == pytest.approx(RESOLUTION_DEG) and grid.transform.e == pytest.approx(-RESOLUTION_DEG)

    # picked pixels: the first and last map pixel with data, and a few others
    ii, jj = np.nonzero(ok)
    rng = np.random.default_rng(1)
    for k in [0, ii.size - 1, *rng.integers(0, ii.size, 5)]:
        i, j = ii[k], jj[k]
        r, c = grid.rows[i, j], grid.cols[i, j]
        assert (r, c) == (gy[i, j] - 1, gx[i, j] - 1)
        assert grid.remap(expected[:, :, 50])[i, j] == expected[r, c, 50]
    # every mapped swath pixel lies within the nearest-neighbour distance (0.71 pixel) of its map pixel's centre
    x, y = grid.transform @ (jj + 0.5, ii + 0.5)
    d = np.hypot(lon[grid.rows[ok], grid.cols[ok]] - x, lat[grid.rows[ok], grid.cols[ok]] - y) / RESOLUTION_DEG
    assert d.max() < 0.71
    # remap = NASA's apply_glt, by rows too
    band = expected[:, :, 50]
    full = grid.remap(band)
    np.testing.assert_array_equal(full, _apply_glt(band, gx, gy))
    assert np.isnan(full[~ok]).all()
    np.testing.assert_array_equal(grid.remap(band, 40, 60), full[40:60])


def test_rx_streamed_on_the_product_equals_rx_of_the_cube(l2a):
    from hadcore import get_detector
    from hadcore.engine import run
    from hadcore.metrics import roc_auc

    path, expected, gt = l2a
    prod = _reader().open(path)
    good = np.flatnonzero(prod.good)
    sink, info = run(get_detector("rx"), prod.source(good), mem_limit_mb=64)
    scores = sink.array
    assert scores.shape == (H, W) and scores.dtype == np.float32
    ref = get_detector("rx").detect(expected[:, :, good])
    np.testing.assert_allclose(scores, ref, rtol=1e-4)
    for r, c in FILLED + [FILLED_ONE[:2]]:
        assert np.isnan(scores[r, c])  # fill values make the pixel invalid
    assert roc_auc(scores, gt) > 0.75  # the airport's planes stand out
    # on the map grid: the remapped scores are RX of the cube, remapped by the GLT
    gx, gy = _glt(path)[:2]
    np.testing.assert_allclose(prod.grid().remap(scores), _apply_glt(ref, gx, gy), rtol=1e-4)


def test_l1b_radiance(l1b):
    path, expected = l1b
    reader = _reader()
    assert reader.sniff(path)
    prod = reader.open(path)
    assert prod.kind == "EMIT L1B radiance" and prod.shape == (30, 40, N_BANDS)
    assert prod.good.all()  # L1B files carry no good_wavelengths: the lead's band selection decides
    np.testing.assert_array_equal(prod.wavelengths, emit_wavelengths().astype(np.float64))
    idx = [0, 100, 284]
    np.testing.assert_array_equal(prod.source(idx).read(3, 30, 5, 40), expected[3:30, 5:40][:, :, idx])
    grid = prod.grid()
    gx, gy = _glt(path)[:2]
    np.testing.assert_array_equal(grid.rows, np.where((gx > 0) & (gy > 0), gy - 1, -1))
    np.testing.assert_array_equal(grid.remap(expected[:, :, 7]), _apply_glt(expected[:, :, 7], gx, gy))


# ---------------------------------------------------------------------------------------------- bad input


def test_truncated_file_is_one_line_file_error(small, tmp_path):
    from hadcore.errors import FileError
    from hadcore.products import open_product

    path = make_emit(tmp_path, small)
    prod = _reader().open(path)
    src = prod.source(range(N_BANDS))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert _reader().sniff(path)  # still claimed (EMIT's names are in its header): the damage gets reported
    with pytest.raises(FileError) as e:
        _reader().open(path)
    assert "truncated" in _one_line_error(e, path)
    with pytest.raises(FileError) as e:
        open_product(path)
    _one_line_error(e, path)
    with pytest.raises(FileError) as e:  # a source made before the file was cut
        src.read(0, 12, 0, 10)
    _one_line_error(e, path)


@pytest.mark.parametrize("part, word", [("reflectance", "reflectance"), ("wavelengths", "wavelengths"),
                                        ("geotransform", "geotransform")])
def test_missing_variable_is_one_line_file_error(small, tmp_path, part, word):
    from hadcore.errors import FileError

    path = make_emit(tmp_path, small, drop=[part])
    assert _reader().sniff(path)  # an EMIT granule all the same
    with pytest.raises(FileError) as e:
        _reader().open(path)
    assert word in _one_line_error(e, path)


def test_malformed_geotransform_is_one_line_file_error(small, tmp_path):
    from hadcore.errors import FileError

    path = make_emit(tmp_path, small, geotransform=(1.0, 2.0))
    with pytest.raises(FileError) as e:
        _reader().open(path)
    assert "geotransform" in _one_line_error(e, path)


def test_granule_without_glt_stays_in_swath_geometry(small, tmp_path):
    path = make_emit(tmp_path, small, drop=["glt"])
    prod = _reader().open(path)
    assert prod.grid() is None and any("no GLT" in n for n in prod.notes)
    np.testing.assert_array_equal(prod.source([5]).read(0, 12, 0, 10), small[:, :, [5]])


def test_missing_spatial_ref_falls_back_to_wgs84(small, tmp_path):
    from rasterio.crs import CRS

    prod = _reader().open(make_emit(tmp_path, small, drop=["spatial_ref"]))
    assert prod.grid().crs == CRS.from_epsg(4326) and any("spatial_ref" in n for n in prod.notes)


def test_every_band_flagged_still_opens(small, tmp_path):
    path = make_emit(tmp_path, small, good=np.zeros(N_BANDS, dtype=np.uint8))
    prod = _reader().open(path)
    assert prod.good.shape == (N_BANDS,) and not prod.good.any()
    assert prod.wavelengths is not None and prod.shape == (12, 10, N_BANDS)
    np.testing.assert_array_equal(prod.source([0]).read(0, 12, 0, 10), small[:, :, [0]])


def test_other_emit_products_are_claimed_and_refused_in_one_line(small, tmp_path):
    """An EMIT granule of another product (here: the data variable renamed, as in L2A MASK files) is claimed
    by content, and open() says which products the reader reads."""
    import netCDF4

    from hadcore.errors import FileError

    path = make_emit(tmp_path, small, drop=["reflectance"])
    with netCDF4.Dataset(path, "a") as nc:
        nc.createDimension("mask_bands", 8)
        nc.createVariable("mask", "f4", ("downtrack", "crosstrack", "mask_bands"))[:] = 0
    with pytest.raises(FileError) as e:
        _reader().open(path)
    msg = _one_line_error(e, path)
    assert "mask" in msg and "L2A reflectance" in msg


def test_missing_h5py_is_one_line_file_error(small, tmp_path, monkeypatch):
    from hadcore.errors import FileError

    path = make_emit(tmp_path, small)
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    assert _reader().sniff(path)  # claimed from its header bytes, so the user learns what to install
    with pytest.raises(FileError) as e:
        _reader().open(path)
    msg = str(e.value)
    assert "\n" not in msg and "pip install h5py" in msg
