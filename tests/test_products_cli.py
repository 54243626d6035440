"""Sensor products end to end through the command line: ``hadcore detect`` and ``hadcore inspect`` on EMIT L2A,
EnMAP L2A (from its METADATA.XML and from its SPECTRAL_IMAGE) and L1B, PRISMA L2D, AVIRIS-NG (from its header
and from its image), DESIS L2A, HyTES L1 and HyTES L2 products written by ``product_fixtures`` around one real
benchmark crop.

Every expectation is computed from what the fixture wrote (its cube, its band flags, its georeference, read
back with netCDF4 / h5py / GDAL or taken from the fixture's constants), never from hadcore's readers: the score
layer must lie on the product's own grid (EMIT: the GLT grid) and hold RX of the good bands of the cube
(EMIT: mapped through the GLT, out[y, x] = swath[glt_y - 1, glt_x - 1], NaN where the GLT is 0).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from conftest import load_scene, require
from rasterio.crs import CRS

import hadcore
from hadcore_cli.main import main

from product_fixtures.emit import N_BANDS as EMIT_BANDS
from product_fixtures.emit import RESOLUTION_DEG, emit_good, emit_swath, emit_wavelengths, make_emit
from product_fixtures.enmap import GSD, ORIGIN, UTM_CRS, build_enmap
from product_fixtures.envi import ANG_MAP, build_aviris, build_desis, build_hytes_l1
from product_fixtures.hytes import build_hytes_l2
from product_fixtures.prisma import PIXEL, make_prisma, read_truth

#: abu-airport-2 rows 40-69, columns 24-59: all 87 anomaly pixels of the scene, 1080 pixels (more than the 371
#: good bands of AVIRIS-NG), H != W so that swapped axes show
SCENE, ROWS, COLS = "abu-airport-2", slice(40, 70), slice(24, 60)
H, W = 30, 36
EMIT_FILLED = (3, 4)           # a whole EMIT pixel at the fill value
EMIT_FILLED_ONE = (10, 20, 100)  # one good band (1122 nm) of one pixel at the fill value
AVIRIS_ROTATION = -66.0
#: the water-vapour rule of ``--bad-bands auto`` (hadcore/bands.py WATER_VAPOUR_NM), in nm, [lo, hi)
WATER_VAPOUR = ((1350.0, 1450.0), (1800.0, 1950.0), (2450.0, math.inf))
HADCORE = Path(sys.executable).parent / "hadcore"  # the console script installed beside this interpreter


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def console(*args):
    """The installed console script in a real process: its true stderr (C libraries write there too)."""
    exe = str(HADCORE) if HADCORE.exists() else shutil.which("hadcore")
    assert exe, "the hadcore console script is not installed"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # see _one_blas_thread
    return subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True, timeout=120, env=env)


def read_layer(path):
    """(scores float64 with NaN at nodata, crs, transform, tags, (height, width)) of a score GeoTIFF."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            assert src.count == 1 and src.dtypes[0] == "float32"
            s = src.read(1).astype(np.float64)
            if src.nodata is not None and not np.isnan(src.nodata):
                s[s == src.nodata] = np.nan
            return s, src.crs, src.transform, src.tags(), (src.height, src.width)


def apply_glt(swath2d, glt_x, glt_y):
    """NASA's emit_tools.apply_glt for one layer: out[y, x] = swath[glt_y - 1, glt_x - 1], NaN where 0."""
    out = np.full(glt_x.shape, np.nan, dtype=np.float64)
    hit = (glt_x != 0) & (glt_y != 0)
    out[hit] = swath2d[glt_y[hit] - 1, glt_x[hit] - 1]
    return out


def in_water_vapour(wl):
    wl = np.asarray(wl, dtype=float)
    return np.any([(wl >= lo) & (wl < hi) for lo, hi in WATER_VAPOUR], axis=0)


# ============================================================================================== fixtures
@pytest.fixture(scope="module", autouse=True)
def _libraries():
    for m in ("h5py", "netCDF4"):  # the readers' (and fixtures') file libraries: skip locally, fail on CI
        require(m)


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """One BLAS thread for this module's runs (restored after it): on 2 cores shared with other work, OpenBLAS's
    threads made the eigendecomposition of a 371-band covariance 15 x slower (1.4 s against 0.09 s, measured)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@dataclass
class Case:
    """One product as the CLI is given it, and what a run on it must give, from the fixture."""

    path: Path                       # the file given to the CLI
    files: Tuple[Path, ...]          # every file of the product (to copy it elsewhere)
    cube: np.ndarray                 # (H, W, B) float32 physical values the fixture wrote, NaN at fills, ascending wl
    good: np.ndarray                 # (B,) bool: the product's default band selection
    wavelengths: np.ndarray          # (B,) nm
    product: str                     # the product type hadcore must report
    reflective: bool
    crs: Optional[CRS]               # of the score layer
    transform: Affine                # of the score layer (identity: no georeference)
    shape: Tuple[int, int]           # of the score layer
    glt: Optional[Tuple[np.ndarray, np.ndarray]] = None  # EMIT: (glt_x, glt_y) as stored (1-based, 0 = none)
    cache: dict = field(default_factory=dict)  # references already computed (shared by copies of a case)

    @property
    def n_bands(self):
        return int(self.cube.shape[2])

    def reference(self, band_mask=None):
        """RX computed directly on the fixture's cube over the good bands (or ``band_mask``), on the output grid."""
        m = np.asarray(self.good if band_mask is None else band_mask, dtype=bool)
        if m.tobytes() not in self.cache:
            ref = hadcore.get_detector("rx").detect(np.ascontiguousarray(self.cube[:, :, m])).astype(np.float64)
            self.cache[m.tobytes()] = apply_glt(ref, *self.glt) if self.glt is not None else ref
        return self.cache[m.tobytes()]


@pytest.fixture(scope="module")
def crop():
    cube, gt = load_scene(SCENE)
    cube, gt = cube[ROWS, COLS].copy(), gt[ROWS, COLS].copy()
    assert cube.shape[:2] == (H, W) and gt.sum() == 87
    return cube, gt


def _emit_case(folder, cube, gt):
    import netCDF4

    swath = emit_swath(cube, "L2A")
    path = make_emit(folder, swath, gt, fill=[EMIT_FILLED, EMIT_FILLED_ONE])
    expected = swath.copy()
    expected[EMIT_FILLED] = np.nan
    expected[EMIT_FILLED_ONE] = np.nan
    wl = emit_wavelengths().astype(np.float64)
    good = emit_good(wl) != 0
    with netCDF4.Dataset(path) as nc:  # the georeference as stored, independently of hadcore's reader
        nc.set_auto_mask(False)
        glt_x = np.asarray(nc["location/glt_x"][:]).astype(np.int64)
        glt_y = np.asarray(nc["location/glt_y"][:]).astype(np.int64)
        crs = CRS.from_wkt(nc.spatial_ref)
        transform = Affine.from_gdal(*[float(v) for v in nc.geotransform])
    # and as the fixture documents it: a north-up EPSG:4326 grid of EMIT's 60 m pixel from (-118.43, 33.96)
    assert crs == CRS.from_epsg(4326)
    assert transform == Affine(RESOLUTION_DEG, 0.0, -118.43, 0.0, -RESOLUTION_DEG, 33.96)
    assert glt_x.shape != (H, W) and (glt_x == 0).any()  # a rotated footprint: the map grid is not the swath
    return Case(path=path, files=(path,), cube=expected, good=good, wavelengths=wl, product="EMIT L2A reflectance",
                reflective=True, crs=crs, transform=transform, shape=glt_x.shape, glt=(glt_x, glt_y))


def _enmap_case(folder, cube, gt, level, from_image=False):
    f = build_enmap(folder, cube, gt, level=level)
    Hm, Wm = f.expected.shape[:2]
    if level == "L2A":
        crs, transform = CRS.from_string(UTM_CRS), Affine(GSD, 0.0, ORIGIN[0], 0.0, -GSD, ORIGIN[1])
        with rasterio.open(f.images[0]) as src:  # GDAL's reading of the delivered image
            assert src.crs == crs and src.transform == transform and (src.height, src.width) == (Hm, Wm)
        assert f.margin > 0 and (Hm, Wm) == (H + 2 * f.margin, W + 2 * f.margin)
    else:  # sensor geometry: no map grid
        crs, transform = None, Affine.identity()
    return Case(path=f.images[0] if from_image else f.xml, files=(f.xml, *f.images), cube=f.expected,
                good=np.asarray(f.good, bool), wavelengths=np.asarray(f.wavelengths, float),
                product=f"EnMAP {level}", reflective=True, crs=crs, transform=transform, shape=(Hm, Wm))


def _prisma_case(folder, cube, gt):
    import h5py

    path = make_prisma(folder, cube, gt, level="L2D")
    truth = read_truth(path)
    wl, vnir = truth["wavelengths"], truth["vnir"]
    # VNIR and SWIR overlap at 920-1010 nm: the SWIR bands at or below the longest VNIR band are the duplicates a
    # run leaves out (the VNIR ones are kept)
    good = ~(~vnir & (wl <= wl[vnir].max()))
    assert 0 < (~good).sum() < 20
    with h5py.File(path, "r") as f:  # corner attributes = centres of the corner pixels of a 30 m north-up grid
        epsg = int(f.attrs["Epsg_Code"])
        e0, n0 = float(f.attrs["Product_ULcorner_easting"]), float(f.attrs["Product_ULcorner_northing"])
    transform = Affine(PIXEL, 0.0, e0 - PIXEL / 2, 0.0, -PIXEL, n0 + PIXEL / 2)
    return Case(path=path, files=(path,), cube=truth["cube"], good=good, wavelengths=wl, product="PRISMA L2D",
                reflective=True, crs=CRS.from_epsg(epsg), transform=transform, shape=(H, W))


def _gdal_transform_of_rotated_map_info(east, north, px, py, rotation_deg):
    """GDAL's ENVI driver (ProcessMapinfo) for a tie point at pixel (1, 1): ``rotation=`` is the angle of the grid,
    counter-clockwise positive, so the geotransform rotates by -rotation."""
    r = math.radians(-rotation_deg)
    return Affine(math.cos(r) * px, -math.sin(r) * px, east, -math.sin(r) * py, -math.cos(r) * py, north)


def _aviris_case(folder, cube, gt, from_image):
    f = build_aviris(folder, cube, gt, rotation=AVIRIS_ROTATION)
    E, N, px, zone = ANG_MAP
    transform = _gdal_transform_of_rotated_map_info(E, N, px, px, AVIRIS_ROTATION)
    assert transform.b != 0 and transform.d != 0  # rotation terms
    with rasterio.open(f.path) as src:  # GDAL reads the same header the same way
        assert src.transform.almost_equals(transform, precision=1e-9) and src.crs.to_epsg() == 32600 + zone
    return Case(path=f.path if from_image else f.header, files=tuple(f.files), cube=f.expected, good=f.good,
                wavelengths=f.wavelengths, product="AVIRIS-NG", reflective=True, crs=CRS.from_epsg(32600 + zone),
                transform=transform, shape=(H, W))


def _desis_case(folder, cube, gt):
    f = build_desis(folder, cube, gt, level="L2A")
    with rasterio.open(f.path) as src:
        crs, transform = src.crs, src.transform
    assert crs == CRS.from_string(f.crs) and transform == f.transform and crs.to_epsg() == 32618
    return Case(path=f.path, files=tuple(f.files), cube=f.expected, good=np.ones(235, bool),
                wavelengths=f.wavelengths, product="DESIS L2A", reflective=True, crs=crs, transform=transform,
                shape=(H, W))


def _hytes_case(folder, cube, gt, level):
    f = build_hytes_l1(folder, cube, gt) if level == 1 else build_hytes_l2(folder, cube, gt)
    files = tuple(f.files) if level == 1 else (f.path,)
    B = f.expected.shape[2]
    return Case(path=f.path, files=files, cube=f.expected, good=np.ones(B, bool),
                wavelengths=np.asarray(f.wavelengths, float), product=f"HyTES L{level}", reflective=False, crs=None,
                transform=Affine.identity(), shape=(H, W))


CASE_NAMES = ["emit", "enmap_xml", "enmap_image", "enmap_l1b", "prisma", "aviris_hdr", "aviris_image", "desis",
              "hytes_l1", "hytes_l2"]


@pytest.fixture(scope="module")
def cases(crop, tmp_path_factory) -> Dict[str, Case]:
    cube, gt = crop
    root = tmp_path_factory.mktemp("products")
    enmap = _enmap_case(root / "enmap", cube, gt, "L2A")
    aviris = _aviris_case(root / "aviris", cube, gt, from_image=False)
    out = {
        "emit": _emit_case(root / "emit", cube, gt),
        "enmap_xml": enmap,
        "enmap_l1b": _enmap_case(root / "enmap_l1b", cube, gt, "L1B"),
        "prisma": _prisma_case(root / "prisma", cube, gt),
        "aviris_hdr": aviris,
        "desis": _desis_case(root / "desis", cube, gt),
        "hytes_l1": _hytes_case(root / "hytes_l1", cube, gt, 1),
        "hytes_l2": _hytes_case(root / "hytes_l2", cube, gt, 2),
    }
    out["enmap_image"] = Case(**{**enmap.__dict__, "path": enmap.files[1]})
    out["aviris_image"] = Case(**{**aviris.__dict__, "path": aviris.files[0]})
    assert out["enmap_image"].path.name.endswith("-SPECTRAL_IMAGE.TIF")
    assert out["aviris_image"].path.suffix == "" and out["aviris_hdr"].path.suffix == ".hdr"
    return out


@pytest.fixture(scope="module")
def detected(cases, tmp_path_factory):
    """``hadcore detect rx PRODUCT -o OUT`` once per product: {name: (CliRunner result, output path)}."""
    outdir = tmp_path_factory.mktemp("scores")
    res = {}
    for name in CASE_NAMES:
        out = outdir / f"{name}.tif"
        res[name] = (run("detect", "rx", cases[name].path, "-o", out, "-q"), out)
    return res


def assert_scores(got, want):
    """The same nodata pattern, and equal within rtol 1e-4 where valid."""
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    valid = np.isfinite(want)
    assert valid.any()
    np.testing.assert_allclose(got[valid], want[valid], rtol=1e-4)


# ====================================================================================== detect, product by product
@pytest.mark.parametrize("name", CASE_NAMES)
def test_detect_writes_rx_of_the_good_bands_on_the_product_grid(cases, detected, name):
    case = cases[name]
    result, out = detected[name]
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    scores, crs, transform, tags, shape = read_layer(out)
    # the product's own grid
    assert shape == tuple(case.shape)
    if case.crs is None:
        assert crs is None
    else:
        assert crs == case.crs
    assert transform.almost_equals(case.transform, precision=1e-9), (transform, case.transform)
    # the scores: RX of the good bands of the cube the fixture wrote (EMIT: through the GLT)
    want = case.reference()
    assert_scores(scores, want)
    footprint = H * W if case.glt is None else int(((case.glt[0] > 0) & (case.glt[1] > 0)).sum())
    assert np.isfinite(want).sum() > 0.9 * footprint  # (the few fill pixels aside, the footprint is scored)
    # what was used is recorded
    n_good = int(case.good.sum())
    assert tags["bands_used"] == str(n_good) and tags["bands"] == str(n_good)
    assert tags["product"] == case.product and tags["detector"] == "rx"
    assert tags["source"] == case.path.name
    wl = case.wavelengths[case.good]
    lo, hi = (float(v) for v in tags["wavelength_range_nm"].split("-"))
    assert lo == pytest.approx(wl.min(), abs=0.01) and hi == pytest.approx(wl.max(), abs=0.01)
    # the product's sibling ground truth (swath geometry for EMIT, remapped) is evaluated
    assert "AUC(PD,PF) =" in result.stdout


def test_the_product_type_is_recognised_whichever_file_is_given(detected):
    """EnMAP from METADATA.XML or SPECTRAL_IMAGE, AVIRIS-NG from the header or the image: the same layer."""
    for a, b in (("enmap_xml", "enmap_image"), ("aviris_hdr", "aviris_image")):
        sa, ca, ta, _, _ = read_layer(detected[a][1])
        sb, cb, tb, _, _ = read_layer(detected[b][1])
        np.testing.assert_array_equal(sa, sb)
        assert ca == cb and ta == tb


def test_emit_swath_values_land_where_the_glt_points(cases, detected):
    """Scores on the map grid are the swath scores at the GLT's pixels: the fill pixel is NaN wherever it lands,
    map pixels outside the footprint are NaN, and a swath pixel taken twice gives the same score twice."""
    case = cases["emit"]
    scores = read_layer(detected["emit"][1])[0]
    gx, gy = case.glt
    outside = (gx == 0) | (gy == 0)
    assert np.isnan(scores[outside]).all() and outside.sum() > 0
    r, c = EMIT_FILLED
    at_fill = (gy == r + 1) & (gx == c + 1)
    assert at_fill.any() and np.isnan(scores[at_fill]).all()
    # nearest neighbour, no resampling: map pixels taking the same swath pixel hold the same score
    key = (gy * (W + 1) + gx)[~outside]
    vals = scores[~outside]
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    assert len(first) < len(key)  # the rotated footprint repeats some swath pixels
    np.testing.assert_array_equal(vals, vals[first][inverse])


def test_emit_no_ortho_keeps_the_swath(cases, tmp_path):
    case = cases["emit"]
    out = tmp_path / "swath.tif"
    ok(run("detect", "rx", case.path, "-o", out, "--no-ortho", "-q"))
    scores, crs, transform, tags, shape = read_layer(out)
    assert shape == (H, W) and crs is None and transform == Affine.identity()
    assert "geometry" not in tags and tags["bands_used"] == str(int(case.good.sum()))
    want = hadcore.get_detector("rx").detect(case.cube[:, :, case.good])
    assert_scores(scores, want)
    assert np.isnan(scores[EMIT_FILLED]) and np.isnan(scores[EMIT_FILLED_ONE[:2]])
    # inspect agrees: swath size, no map grid, no CRS
    d = json.loads(ok(run("inspect", case.path, "--no-ortho", "--json")).stdout)
    assert d["size"] == [H, W] and d["output_grid"] is None and d["crs"] is None


# ============================================================================================ --out-dir, mixed
def test_out_dir_over_a_folder_of_mixed_products(cases, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    names = ["emit", "prisma", "enmap_xml", "aviris_hdr"]
    for n in names:
        for f in cases[n].files:
            if not f.name.endswith("_gt.tif"):
                shutil.copy(f, mixed / f.name)
    inputs = [mixed / cases[n].path.name for n in names]
    assert [p.suffix for p in inputs] == [".nc", ".he5", ".XML", ".hdr"]
    out = tmp_path / "out"
    ok(run("detect", "rx", *inputs, "--out-dir", out, "-q"))
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{p.stem}_rx.tif" for p in inputs)  # one layer per input, nothing else
    for n, p in zip(names, inputs):
        scores, crs, transform, tags, shape = read_layer(out / f"{p.stem}_rx.tif")
        case = cases[n]
        assert shape == tuple(case.shape) and crs == case.crs, n
        assert transform.almost_equals(case.transform, precision=1e-9), n
        assert tags["product"] == case.product and tags["bands_used"] == str(int(case.good.sum()))
        assert_scores(scores, case.reference())


# ================================================================================================== inspect
@pytest.mark.parametrize("name", ["emit", "enmap_xml", "enmap_l1b", "prisma", "aviris_hdr", "desis", "hytes_l2"])
def test_inspect_reports_product_bands_wavelengths_and_crs(cases, name):
    case = cases[name]
    d = json.loads(ok(run("inspect", case.path, "--json")).stdout)
    n_good = int(case.good.sum())
    wl = case.wavelengths[case.good]
    assert d["product"] == case.product
    assert d["bands_in_file"] == case.n_bands and d["bands_used"] == n_good
    assert d["good_bands_flagged_by_product"] == n_good
    assert d["wavelength_range_nm"] == pytest.approx([wl.min(), wl.max()], abs=1e-3)
    assert d["size"] == list(case.cube.shape[:2])
    if case.crs is None:
        assert d["crs"] is None
    else:
        assert CRS.from_user_input(d["crs"]) == case.crs
    if case.crs is None:
        assert d["transform"] is None or Affine(*d["transform"]) == Affine.identity()
    else:
        assert Affine(*d["transform"]).almost_equals(case.transform, precision=1e-9)
    if case.glt is not None:
        assert d["output_grid"]["size"] == list(case.shape)
    else:
        assert d["output_grid"] is None
    text = ok(run("inspect", case.path)).stdout
    assert f"{case.path.name}: {case.product}, {case.cube.shape[0]} x {case.cube.shape[1]} pixels" in text
    assert f"bands: {n_good} used of {case.n_bands}" in text
    assert f"wavelengths: {round(float(wl.min()), 3):g}-{round(float(wl.max()), 3):g} nm" in text
    assert f"CRS: {d['crs'] or 'none'}" in text
    if case.glt is not None:
        assert f"{case.shape[0]} x {case.shape[1]} map grid" in text


# ========================================================================================= --bad-bands auto
@pytest.mark.parametrize("name", ["emit", "enmap_xml", "enmap_l1b", "prisma", "aviris_hdr", "desis", "hytes_l2"])
def test_bad_bands_auto_also_drops_water_vapour_windows(cases, tmp_path, name):
    import hadcore.bands

    assert tuple(hadcore.bands.WATER_VAPOUR_NM) == WATER_VAPOUR  # the rule this test counts with
    case = cases[name]
    B = case.n_bands
    window = in_water_vapour(case.wavelengths) if case.reflective else np.zeros(B, bool)
    auto = case.good & ~window
    n_win = int((case.good & window).sum())
    out = tmp_path / "auto.tif"
    r = ok(run("detect", "rx", case.path, "-o", out, "--bad-bands", "auto"))
    scores, _, _, tags, _ = read_layer(out)
    assert tags["bands_used"] == str(int(auto.sum()))
    if case.reflective and case.wavelengths.max() > 1350:
        assert n_win > 0 and auto.sum() < case.good.sum()  # more than the default drops
        assert f"dropped {B - int(auto.sum())} of {B} bands" in r.stderr
        assert f"{n_win} in water-vapour windows" in r.stderr
    else:  # thermal (HyTES) or VNIR-only (DESIS): nothing in the windows
        assert auto.sum() == case.good.sum() and "water-vapour" not in r.stderr
    assert_scores(scores, case.reference(auto))
    d = json.loads(ok(run("inspect", case.path, "--bad-bands", "auto", "--json")).stdout)
    assert d["bands_used"] == int(auto.sum())
    if n_win:
        assert any(f"{n_win} in water-vapour windows" in n for n in d["notes"])
    # and 'none' keeps even the bands the product flags
    d = json.loads(ok(run("inspect", case.path, "--bad-bands", "none", "--json")).stdout)
    assert d["bands_used"] == B


# ================================================================================================ bad input
@pytest.fixture(scope="module")
def bad_inputs(cases, crop, tmp_path_factory):
    """{name: (path, words the one-line message must hold)} of broken products."""
    cube, _ = crop
    root = tmp_path_factory.mktemp("bad")
    out = {}
    for name in ("emit", "prisma", "hytes_l2"):
        src = cases[name].path
        p = root / "truncated" / src.name
        p.parent.mkdir(exist_ok=True)
        data = src.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        out[f"truncated_{name}"] = (p, [p.name, "truncated"])
    # an EnMAP product whose METADATA.XML has no wavelengthCenterOfBand elements
    d = root / "enmap_no_wl"
    d.mkdir()
    for f in cases["enmap_xml"].files:
        shutil.copy(f, d / f.name)
    xml = d / cases["enmap_xml"].path.name
    tree = ET.parse(xml)
    removed = 0
    for band in tree.getroot().iter("bandID"):
        for e in band.findall("wavelengthCenterOfBand"):
            band.remove(e)
            removed += 1
    assert removed == 224
    tree.write(xml, encoding="UTF-8", xml_declaration=True)
    out["enmap_without_wavelengths"] = (xml, [xml.name, "wavelength"])
    # an EMIT granule whose good_wavelengths are all 0
    p = make_emit(root / "emit_all_bad", emit_swath(cube, "L2A"), good=np.zeros(EMIT_BANDS, np.uint8))
    out["emit_every_band_bad"] = (p, ["no band", f"{EMIT_BANDS} flagged bad"])
    return out


BAD = ["truncated_emit", "truncated_prisma", "truncated_hytes_l2", "enmap_without_wavelengths", "emit_every_band_bad"]


@pytest.mark.parametrize("name", BAD)
def test_bad_product_is_one_line_exit_2_and_no_output(bad_inputs, tmp_path, name):
    path, words = bad_inputs[name]
    outdir = tmp_path / "out"
    outdir.mkdir()
    # the console script in its own process: what reaches the real stderr (HDF5 / GDAL print there too)
    p = console("detect", "rx", path, "-o", outdir / "scores.tif")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    results = [(p.stderr, p.stdout)]
    # in process: --out-dir and inspect
    for args in (["detect", "rx", path, "--out-dir", outdir], ["inspect", path], ["inspect", path, "--json"]):
        r = run(*args)
        assert r.exit_code == 2, (args, r.exit_code, r.output)
        results.append((r.stderr, r.stdout))
    for stderr, stdout in results:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert lines[0].startswith("hadcore: error: "), stderr
        assert "Traceback" not in stderr + stdout and stdout == ""
        for w in words:
            assert w in lines[0], (w, lines[0])
    assert sorted(os.listdir(outdir)) == [], "no output (nor a temporary) is left"


@pytest.mark.parametrize("name", ["aviris_hdr", "enmap_xml", "desis", "hytes_l1"])
def test_truncated_image_data_is_one_line_exit_2_and_no_output(cases, tmp_path, name):
    """Products whose metadata is whole but whose image file is cut to half: the run stops with one line (-q:
    without the notes printed before the run) and leaves nothing behind."""
    case = cases[name]
    d = tmp_path / "product"
    d.mkdir()
    for f in case.files:
        shutil.copy(f, d / f.name)
    image = {"aviris_hdr": case.files[0], "enmap_xml": case.files[1], "desis": case.path,
             "hytes_l1": case.path}[name]
    data = (d / image.name).read_bytes()
    (d / image.name).write_bytes(data[: len(data) // 2])
    outdir = tmp_path / "out"
    outdir.mkdir()
    p = console("detect", "rx", d / case.path.name, "-o", outdir / "scores.tif", "-q")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hadcore: error: "), p.stderr
    assert image.name in lines[0] and "truncated" in lines[0], lines[0]
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert sorted(os.listdir(outdir)) == []


def test_bad_bands_auto_drops_constant_bands(crop, tmp_path):
    """A VNIR product (DESIS: no water-vapour window) whose bands 116-126 hold one value: 'auto' drops exactly
    those, and says so."""
    cube, _ = crop
    cube = cube.copy()
    cube[:, :, 100:110] = 500.0  # source bands -> DESIS bands 116-126 (1-based) constant after resampling
    f = build_desis(tmp_path / "desis", cube, level="L2A")
    valid = np.isfinite(f.expected).all(axis=2)
    constant = np.array([np.ptp(f.expected[:, :, k][valid]) == 0 for k in range(235)])
    assert 0 < constant.sum() < 20
    out = tmp_path / "auto.tif"
    r = ok(run("detect", "rx", f.path, "-o", out, "--bad-bands", "auto"))
    assert f"dropped {int(constant.sum())} of 235 bands: {int(constant.sum())} constant or without data" in r.stderr
    scores, _, _, tags, _ = read_layer(out)
    assert tags["bands_used"] == str(235 - int(constant.sum()))
    ref = hadcore.get_detector("rx").detect(np.ascontiguousarray(f.expected[:, :, ~constant]))
    assert_scores(scores, ref)
    d = json.loads(ok(run("inspect", f.path, "--json")).stdout)
    assert d["bands_used"] == 235  # by default a constant band is kept (RX's pseudo-inverse copes)
