"""The PRISMA reader (hadcore.products.prisma) on small L1 / L2D products built from a shared scene."""

from __future__ import annotations

import importlib
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from conftest import load_scene  # noqa: E402
from product_fixtures.prisma import (  # noqa: E402
    N_REAL, SWIR_SLOTS, VNIR_PLACEHOLDERS, VNIR_SLOTS, SWIR_PLACEHOLDERS, make_prisma, prisma_bands, read_truth,
)

from hadcore.errors import FileError, InputError  # noqa: E402
from hadcore.products.prisma import READER, PrismaReader  # noqa: E402

SCENE = "abu-airport-2"
N_VNIR = VNIR_SLOTS - len(VNIR_PLACEHOLDERS)
N_SWIR = SWIR_SLOTS - len(SWIR_PLACEHOLDERS)
L2D_SWATH = "HDFEOS/SWATHS/PRS_L2D_HCO/Data Fields"


@pytest.fixture(scope="session")
def scene():
    return load_scene(SCENE)


def _gt_if_writable(gt):
    """The ground truth when rasterio can write its sibling GeoTIFF (not in the core-only environment)."""
    try:
        import rasterio  # noqa: F401
    except ImportError:
        return None
    return gt


@pytest.fixture(scope="session")
def l2d(tmp_path_factory, scene):
    cube, gt = scene
    return make_prisma(tmp_path_factory.mktemp("prisma_l2d"), cube, _gt_if_writable(gt), level="L2D")


@pytest.fixture(scope="session")
def l1(tmp_path_factory, scene):
    cube, gt = scene
    return make_prisma(tmp_path_factory.mktemp("prisma_l1"), cube, _gt_if_writable(gt), level="L1")


def small(scene, h=24, w=20):
    cube, _ = scene
    return cube[:h, :w]


def one_line_error(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert str(path) in msg
    return msg


# ------------------------------------------------------------------------------------------------ sniffing
def test_sniff_claims_both_levels_by_content(l2d, l1, tmp_path):
    assert READER.sniff(l2d) and READER.sniff(l1)
    renamed = tmp_path / "scene.dat"  # the suffix plays no part
    shutil.copy(l2d, renamed)
    assert READER.sniff(renamed)
    assert READER.open(renamed).kind == "PRISMA L2D"


def test_sniff_rejects_other_files(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("reflectance", data=np.zeros((4, 4, 3), np.float32))
        f.attrs["List_Cw_Vnir"] = np.arange(3.0)  # a PRISMA-like attribute is not enough
    eos = tmp_path / "omi.he5"  # an HDF-EOS5 swath file of another mission
    with h5py.File(eos, "w") as f:
        f.create_dataset("HDFEOS/SWATHS/OMI Column Amount O3/Data Fields/ColumnAmountO3",
                         data=np.zeros((4, 4), np.float32))
    near = tmp_path / "near.he5"  # a PRISMA panchromatic-only swath is not the hyperspectral cube
    with h5py.File(near, "w") as f:
        f.create_dataset("HDFEOS/SWATHS/PRS_L2D_PCO/Data Fields/Cube", data=np.zeros((4, 4), np.uint16))
    text = tmp_path / "PRS_L2D_HCO.he5"
    text.write_text("PRS_L2D_HCO is not an HDF5 file")
    for p in (other, eos, near, text, tmp_path / "missing.he5", tmp_path):
        assert not READER.sniff(p), p


@pytest.mark.cli
def test_sniff_rejects_a_geotiff(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    p = tmp_path / "scene.tif"
    from rasterio.transform import Affine

    with rasterio.open(p, "w", driver="GTiff", width=8, height=6, count=3, dtype="uint16", crs="EPSG:32632",
                       transform=Affine(30.0, 0.0, 399000.0, 0.0, -30.0, 5000000.0)) as dst:
        dst.write(np.ones((3, 6, 8), np.uint16))
    assert not READER.sniff(p)


def test_sniff_claims_a_truncated_product_and_open_says_so(l2d, tmp_path):
    cut = tmp_path / l2d.name
    data = l2d.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert READER.sniff(cut)  # the swath name is in the file's first MB
    with pytest.raises(FileError) as e:
        READER.open(cut)
    assert "truncated" in one_line_error(e, cut)


def test_reader_module_imports_no_file_library():
    code = ("import sys, hadcore.products.prisma as m; "
            "print(sorted({'h5py', 'rasterio', 'affine'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_open_product_dispatches_to_prisma(l2d, l1, tmp_path):
    from hadcore.products import READER_MODULES, open_product, readers

    for name in READER_MODULES:
        try:
            importlib.import_module(f"hadcore.products.{name}")
        except ImportError:
            pytest.skip(f"reader module {name} not written yet")
    assert open_product(l2d).kind == "PRISMA L2D"
    assert open_product(l1).kind == "PRISMA L1"
    assert [r.name for r in readers() if r.sniff(l2d)] == ["PRISMA"]  # no other reader claims it
    cut = tmp_path / "cut.he5"
    data = l2d.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileError) as e:  # a truncated product is reported, not handed to GDAL
        open_product(cut)
    one_line_error(e, cut)


# ------------------------------------------------------------------------------------------------ band axis
def test_shape_and_band_order(l2d):
    p = READER.open(l2d)
    truth = read_truth(l2d)
    assert p.kind == "PRISMA L2D" and p.reflective
    assert p.shape == (100, 100, N_REAL) == (100, 100, 235)
    wl = p.wavelengths
    # VNIR then SWIR, each ascending (the file stores each descending)
    assert np.all(np.diff(wl[:N_VNIR]) > 0) and np.all(np.diff(wl[N_VNIR:]) > 0)
    assert wl[N_VNIR - 1] > wl[N_VNIR]  # the overlap: SWIR starts below the last VNIR band
    np.testing.assert_allclose(wl, truth["wavelengths"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(p.fwhm, truth["fwhm"], rtol=0, atol=1e-3)
    assert 400 < wl.min() < 410 and 2490 < wl.max() < 2510  # nanometres
    assert len(p.band_names) == N_REAL and p.band_names[0].startswith("VNIR slot 66")


def test_placeholders_are_left_out(l2d):
    p = READER.open(l2d)
    cw_v, _, cw_s, _ = prisma_bands()
    assert (cw_v == 0).sum() == len(VNIR_PLACEHOLDERS) and (cw_s == 0).sum() == len(SWIR_PLACEHOLDERS)
    assert p.shape[2] == VNIR_SLOTS + SWIR_SLOTS - len(VNIR_PLACEHOLDERS) - len(SWIR_PLACEHOLDERS)
    assert np.all(p.wavelengths > 0) and np.all(p.fwhm > 0)
    assert any("4 zero placeholder slots" in n for n in p.notes)


def test_overlap_flags(l2d):
    p = READER.open(l2d)
    wl, good = p.wavelengths, p.good
    top_vnir = wl[:N_VNIR].max()
    # default: VNIR kept, the SWIR bands at or below the longest VNIR band are flagged
    assert good[:N_VNIR].all()
    np.testing.assert_array_equal(good[N_VNIR:], wl[N_VNIR:] > top_vnir)
    assert 5 <= (~good).sum() <= 15  # ~920-1010 nm
    assert np.all(np.diff(wl[good]) > 0)  # the good bands are strictly ascending
    q = PrismaReader(overlap="swir").open(l2d)
    assert q.good[N_VNIR:].all()
    np.testing.assert_array_equal(q.good[:N_VNIR], wl[:N_VNIR] < wl[N_VNIR:].min())
    assert np.all(np.diff(wl[q.good]) > 0)
    assert PrismaReader(overlap="both").open(l2d).good.all()
    with pytest.raises(ValueError):
        PrismaReader(overlap="neither")


def test_band_flags_attribute(scene, tmp_path):
    # List_Cw_Vnir_Flags = 0 for file slot 10: product VNIR index 65 - 10 = 55
    path = make_prisma(tmp_path, small(scene), flags=True, bad_slots=(10,))
    p = READER.open(path)
    assert not p.good[VNIR_SLOTS - 1 - 10]
    assert p.good[:N_VNIR].sum() == N_VNIR - 1


def test_every_band_flagged_opens_with_nothing_good(scene, tmp_path):
    path = make_prisma(tmp_path, small(scene), flags=True)
    with h5py.File(path, "r+") as f:
        f.attrs["List_Cw_Vnir_Flags"] = np.zeros(VNIR_SLOTS, np.int8)
        f.attrs["List_Cw_Swir_Flags"] = np.zeros(SWIR_SLOTS, np.int8)
    p = READER.open(path)
    assert p.shape[2] == N_REAL and not p.good.any()


# ------------------------------------------------------------------------------------------------ values
@pytest.mark.parametrize("window", [(0, 100, 0, 100), (7, 19, 33, 61), (99, 100, 0, 1), (50, 51, 10, 90)])
def test_windows_equal_the_fixture_cube(l2d, window):
    p = READER.open(l2d)
    truth = read_truth(l2d)
    r0, r1, c0, c1 = window
    idx = np.arange(N_REAL)
    got = p.source(idx).read(r0, r1, c0, c1)
    assert got.dtype == np.float32 and got.shape == (r1 - r0, c1 - c0, N_REAL)
    np.testing.assert_allclose(got, truth["cube"][r0:r1, c0:c1], rtol=1e-6, atol=1e-3)
    # ... and the dequantised cube is the resampled scene within half a DN step
    with h5py.File(l2d, "r") as f:
        steps = [(float(f.attrs[f"L2Scale{c}Max"]) - float(f.attrs[f"L2Scale{c}Min"])) / 65535
                 for c in ("Vnir", "Swir")]
    step = np.where(truth["vnir"], steps[0], steps[1])
    err = np.abs(got - truth["resampled"][r0:r1, c0:c1])
    assert np.all(err <= 0.5 * step + 1e-3)


def test_band_subsets_in_the_order_asked(l2d):
    p = READER.open(l2d)
    truth = read_truth(l2d)["cube"]
    for idx in ([5], [N_REAL - 1, 0, N_VNIR, N_VNIR - 1], [200, 3, 150, 60, 61, 62, 63], list(range(N_VNIR))):
        src = p.source(idx)
        assert src.shape == (100, 100, len(idx)) and src.nodata is None and src.read_bytes == 4
        np.testing.assert_allclose(src.read(10, 30, 40, 70), truth[10:30, 40:70][..., idx], rtol=1e-6, atol=1e-3)
    with pytest.raises(InputError):
        p.source([N_REAL])
    with pytest.raises(InputError):
        p.source([])
    with pytest.raises(InputError):
        p.source([0]).read(0, 101, 0, 5)


def test_l2d_scale_rule_from_the_dn(l2d):
    # value = L2ScaleMin + DN * (L2ScaleMax - L2ScaleMin) / 65535, checked against the raw file
    p = READER.open(l2d)
    with h5py.File(l2d, "r") as f:
        dn_v = f[f"{L2D_SWATH}/VNIR_Cube"][12, :, 34].astype(np.float64)  # (rows, bands, columns)
        dn_s = f[f"{L2D_SWATH}/SWIR_Cube"][12, :, 34].astype(np.float64)
        a = {k: float(f.attrs[k]) for k in ("L2ScaleVnirMin", "L2ScaleVnirMax", "L2ScaleSwirMin", "L2ScaleSwirMax")}
        cw_v, cw_s = f.attrs["List_Cw_Vnir"], f.attrs["List_Cw_Swir"]
    ov = np.argsort(np.where(cw_v > 0, cw_v, np.inf))[: N_VNIR]  # slots in ascending wavelength
    os_ = np.argsort(np.where(cw_s > 0, cw_s, np.inf))[: N_SWIR]
    want = np.concatenate([
        a["L2ScaleVnirMin"] + dn_v[ov] * (a["L2ScaleVnirMax"] - a["L2ScaleVnirMin"]) / 65535,
        a["L2ScaleSwirMin"] + dn_s[os_] * (a["L2ScaleSwirMax"] - a["L2ScaleSwirMin"]) / 65535])
    got = p.source(range(N_REAL)).read(12, 13, 34, 35)[0, 0]
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_l1_radiance_rule_and_swath_geometry(l1):
    p = READER.open(l1)
    truth = read_truth(l1)
    assert p.kind == "PRISMA L1" and p.crs is None and p.transform is None
    assert p.shape == (100, 100, N_REAL)
    with h5py.File(l1, "r") as f:
        sf, off = float(f.attrs["ScaleFactor_Swir"]), float(f.attrs["Offset_Swir"])
        sf_v = float(f.attrs["ScaleFactor_Vnir"])
        dn = f["HDFEOS/SWATHS/PRS_L1_HCO/Data Fields/SWIR_Cube"][3, :, 4].astype(np.float64)
    assert off != 0  # the fixture's offset is not zero, so the rule DN / ScaleFactor + Offset is tested
    got = p.source(range(N_VNIR, N_REAL)).read(3, 4, 4, 5)[0, 0]
    np.testing.assert_allclose(got, dn[:N_SWIR][::-1] / sf + off, rtol=2e-6)
    full = p.source(range(N_REAL)).read(0, 100, 0, 100)
    np.testing.assert_allclose(full, truth["cube"], rtol=1e-6, atol=1e-3)
    step = np.where(truth["vnir"], 1.0 / sf_v, 1.0 / sf)  # one DN in radiance
    assert np.all(np.abs(full - truth["resampled"]) <= 0.5 * step + 1e-3)


def test_fill_pixels_read_as_nan(scene, tmp_path):
    path = make_prisma(tmp_path, small(scene))
    with h5py.File(path, "r+") as f:  # pixel (2, 3) outside the swath: DN 0 in every band of both cubes
        for c in ("VNIR", "SWIR"):
            ds = f[f"{L2D_SWATH}/{c}_Cube"]
            ds[2, :, 3] = 0
    got = READER.open(path).source(range(N_REAL)).read(0, 5, 0, 5)
    assert np.isnan(got[2, 3]).all()
    assert np.isfinite(np.delete(got.reshape(25, -1), 2 * 5 + 3, axis=0)).all()


# ------------------------------------------------------------------------------------------------ georeference
@pytest.mark.cli
def test_l2d_georeference(l2d):
    pytest.importorskip("rasterio")
    from rasterio.crs import CRS

    p = READER.open(l2d)
    assert p.crs == CRS.from_epsg(32632)
    t = p.transform
    assert (t.a, t.b, t.c, t.d, t.e, t.f) == (30.0, 0.0, 399000.0, 0.0, -30.0, 5000000.0)
    with h5py.File(l2d, "r") as f:
        ul = (float(f.attrs["Product_ULcorner_easting"]), float(f.attrs["Product_ULcorner_northing"]))
        lr = (float(f.attrs["Product_LRcorner_easting"]), float(f.attrs["Product_LRcorner_northing"]))
    assert t @ (0.5, 0.5) == ul  # the corner attributes are the corner pixels' centres
    assert t @ (99.5, 99.5) == lr
    assert p.gt_path is not None and p.gt_path.endswith("_gt.tif")


def test_l2d_without_georeference_attributes(scene, tmp_path):
    path = make_prisma(tmp_path, small(scene), drop=("Epsg_Code",))
    p = READER.open(path)
    assert p.crs is None and p.transform is None
    assert any("no georeference" in n for n in p.notes)


# ------------------------------------------------------------------------------------------------ sources
def test_source_pickles_and_reads_after_unpickling(l2d):
    src = READER.open(l2d).source([0, 100, 234])
    before = src.read(0, 10, 0, 10)
    assert src._f is not None
    clone = pickle.loads(pickle.dumps(src))
    assert clone._f is None and src._f is not None
    np.testing.assert_array_equal(clone.read(0, 10, 0, 10), before)
    fresh = pickle.loads(pickle.dumps(READER.open(l2d).source([0, 100, 234])))  # pickled before any read
    np.testing.assert_array_equal(fresh.read(0, 10, 0, 10), before)
    factory = pickle.loads(pickle.dumps(READER.open(l2d).source))
    np.testing.assert_array_equal(factory([0, 100, 234]).read(0, 10, 0, 10), before)


def test_chunked_cubes_report_their_blocks(scene, tmp_path):
    path = make_prisma(tmp_path, small(scene), chunks=(8, 239, 10))
    p = READER.open(path)
    src = p.source(range(N_REAL))
    assert src.block_shape == (8, 10)
    np.testing.assert_allclose(src.read(3, 21, 5, 17), read_truth(path)["cube"][3:21, 5:17], rtol=1e-6, atol=1e-3)
    assert READER.open(make_prisma(tmp_path / "c", small(scene))).source([0]).block_shape is None


# ------------------------------------------------------------------------------------------------ bad inputs
def test_truncated_after_opening_fails_on_read(scene, tmp_path):
    path = make_prisma(tmp_path, small(scene))
    src = READER.open(path).source([0, 1])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileError) as e:
        src.read(0, 5, 0, 5)
    assert "truncated" in one_line_error(e, path)


def test_corrupt_chunk_fails_on_read_with_one_line(scene, tmp_path):
    path = make_prisma(tmp_path, small(scene), chunks=(8, 66, 10), compression="gzip")
    p = READER.open(path)
    with h5py.File(path, "r") as f:
        info = f[f"{L2D_SWATH}/VNIR_Cube"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:  # scribble over the first compressed VNIR chunk
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    src = p.source(range(N_VNIR))
    with pytest.raises(FileError) as e:
        src.read(0, 8, 0, 10)
    msg = one_line_error(e, path)
    assert "VNIR_Cube" in msg and "rows 0-7" in msg
    np.testing.assert_allclose(src.read(8, 16, 10, 20), read_truth(path)["cube"][8:16, 10:20, :N_VNIR],
                               rtol=1e-6, atol=1e-3)  # other chunks still read


@pytest.mark.parametrize("drop, what", [
    (("List_Cw_Vnir",), "List_Cw_Vnir"),
    (("List_Cw_Swir",), "List_Cw_Swir"),
    (("L2ScaleSwirMax",), "L2ScaleSwirMax"),
    (("SWIR_Cube",), "SWIR_Cube"),
])
def test_missing_parts_are_one_line_errors(scene, tmp_path, drop, what):
    path = make_prisma(tmp_path, small(scene), drop=drop)
    assert READER.sniff(path)
    with pytest.raises(FileError) as e:
        READER.open(path)
    assert what in one_line_error(e, path)


def test_missing_l1_scale_factor(scene, tmp_path):
    path = make_prisma(tmp_path, small(scene), level="L1", drop=("ScaleFactor_Vnir",))
    with pytest.raises(FileError) as e:
        READER.open(path)
    assert "ScaleFactor_Vnir" in one_line_error(e, path)


def test_every_band_a_placeholder_is_refused(scene, tmp_path):
    path = make_prisma(tmp_path, small(scene), all_placeholders=True)
    with pytest.raises(FileError) as e:
        READER.open(path)
    assert "placeholder" in one_line_error(e, path)


def test_wavelength_list_of_the_wrong_length(scene, tmp_path):
    path = make_prisma(tmp_path, small(scene))
    with h5py.File(path, "r+") as f:
        f.attrs["List_Cw_Swir"] = np.arange(1000.0, 1100.0, dtype=np.float32)
    with pytest.raises(FileError) as e:
        READER.open(path)
    assert "List_Cw_Swir has 100 values for the 173 bands" in one_line_error(e, path)


def test_not_a_prisma_product_is_refused_by_open(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(FileError) as e:
        READER.open(other)
    one_line_error(e, other)
    with pytest.raises(FileError):
        READER.open(tmp_path / "missing.he5")


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("level", ["L2D", "L1"])
def test_rx_on_the_product_equals_rx_on_the_cube(level, l2d, l1):
    from hadcore import get_detector
    from hadcore.engine import run

    path = l2d if level == "L2D" else l1
    p = READER.open(path)
    good_idx = np.flatnonzero(p.good)
    if level == "L1":
        good_idx = good_idx[::3]  # a band subset across both cubes (and a shorter run)
    sink, info = run(get_detector("rx"), p.source(good_idx), mem_limit_mb=64)
    cube_used = read_truth(path)["cube"][..., good_idx]
    want = get_detector("rx").detect(cube_used)
    assert sink.array.shape == (100, 100) and sink.array.dtype == np.float32
    np.testing.assert_allclose(sink.array, want, rtol=1e-4)
    _, gt = load_scene(SCENE)
    # the anomalies of the scene stand out on the product too
    assert np.nanmean(sink.array[gt > 0]) > 2 * np.nanmean(sink.array[gt == 0])
