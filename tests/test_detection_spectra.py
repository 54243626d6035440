"""The spectra behind each detection (issue 26): gathered in the score pass, exact against the pixels themselves
(strips, blended scene tiles, a swath product's map grid, a threshold below what the pass kept, Dask);
written with the detections (a GeoPackage table, a CSV beside GeoJSON) and read back; a detection as a target
(``DETECTIONS.gpkg:ID``); library matches as attributes; ``--exclude`` keeps pixels out of the background."""

import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from conftest import load_scene

import hadcore
from hadcore import engine
from hadcore.components import label_detections
from hadcore.io import write_cube
from hadcore.library import SpectralLibrary, write_library
from hadcore.products.base import OutputGrid
from hadcore.spectra import DetectionSpectra, SpectraCollector
from hadcore.vectorize import read_detection_spectra, spectra_csv_path
from hadcore_cli.main import main


def brute(cube, labels, ids, table):
    X = np.asarray(cube, dtype=np.float64)
    mean = np.array([X[labels == i].mean(0) for i in ids])
    std = np.array([X[labels == i].std(0) for i in ids])
    peak = np.array([X[r["peak_row"], r["peak_col"]] for r in table])
    bg = X[(labels == 0) & np.isfinite(X).all(-1)]
    return mean, std, peak, bg


def check(sp, cube, labels, table):
    mean, std, peak, bg = brute(cube, labels, sp.ids, table)
    assert list(sp.ids) == [r["id"] for r in table]
    scale = np.abs(bg.mean(0)).max()
    np.testing.assert_allclose(sp.mean, mean, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(sp.std, std, rtol=0, atol=1e-9 * scale)
    np.testing.assert_array_equal(sp.peak, peak)
    np.testing.assert_allclose(sp.background_mean, bg.mean(0), rtol=1e-10)
    np.testing.assert_allclose(sp.background_std, bg.std(0), rtol=1e-8)
    assert sp.background_pixels == bg.shape[0]
    assert sp.pixels.sum() == int((labels > 0).sum())


@pytest.fixture(scope="module")
def urban():
    cube, gt = load_scene("abu-urban-1")
    return cube, gt


def run_with(det, cube, mem_mb, capacity_mb=64.0, floor=None):
    col = SpectraCollector(cube.shape[2], cube.shape[1], floor=floor, budget_mb=capacity_mb)
    src = engine.ArraySource(cube)
    sink, info = engine.run(det, src, mem_limit_mb=mem_mb, observer=col)
    return sink.array, info, col, src


def test_strips_exact_and_kept_in_the_pass(urban):
    cube, _ = urban
    s, info, col, src = run_with(hadcore.get_detector("rx"), cube, 20)
    assert info.plan.n_blocks > 4 and not info.plan.blend
    labels, table = label_detections(s, "percentile:99.5")
    sp = col.finish(labels, table, src)
    check(sp, cube, labels, table)
    assert sp.reread == 0 and sp.notes == []  # nothing read again


def test_blended_tiles_exact():
    a, _ = load_scene("abu-urban-1")
    cube = np.concatenate([np.concatenate([a, a[:, ::-1]], 1), np.concatenate([a[::-1], a[::-1, ::-1]], 1)], 0)
    det = hadcore.get_detector("aed", tile=96, overlap=16)
    s, info, col, src = run_with(det, cube, 1024)
    assert info.plan.blend and info.plan.n_blocks >= 4
    labels, table = label_detections(s, "percentile:99.7")
    sp = col.finish(labels, table, src)
    check(sp, cube, labels, table)


def test_a_threshold_below_what_the_pass_kept_reads_only_the_rest(urban):
    cube, _ = urban
    s, _, col, src = run_with(hadcore.get_detector("rx"), cube, 20, capacity_mb=0.01)
    labels, table = label_detections(s, "percentile:90")
    sp = col.finish(labels, table, src)
    check(sp, cube, labels, table)
    assert 0 < sp.reread < (labels > 0).sum() and "read again" in sp.notes[0]


def test_a_run_elsewhere_reads_the_scene_again(urban):
    cube, _ = urban
    s = hadcore.get_detector("rx").detect(cube)
    labels, table = label_detections(s, "top:30")
    src = engine.ArraySource(cube)
    sp = SpectraCollector.empty(cube.shape[2], cube.shape[1]).finish(labels, table, src)
    check(sp, cube, labels, table)


def test_swath_pixels_through_the_lookup_table(urban):
    cube, _ = urban
    H, W, _ = cube.shape
    rng = np.random.default_rng(3)
    # a map grid 1.5 times larger showing every swath pixel, some twice, and a border of no data
    Hm, Wm = H + 20, W + 20
    rows = np.full((Hm, Wm), -1)
    cols = np.full((Hm, Wm), -1)
    rows[10:10 + H, 10:10 + W], cols[10:10 + H, 10:10 + W] = np.mgrid[0:H, 0:W]
    rows[10:10 + H, 12:10 + W] = rows[10:10 + H, 11:9 + W]  # duplicated columns, as nearest-neighbour maps do
    cols[10:10 + H, 12:10 + W] = cols[10:10 + H, 11:9 + W]
    out = OutputGrid(Hm, Wm, None, None, rows, cols)
    s, _, col, src = run_with(hadcore.get_detector("rx"), cube, 20)
    smap = out.remap(s)
    labels, table = label_detections(smap, "percentile:99.5")
    sp = col.finish(labels, table, src, output=out)
    # the truth: every map pixel of a detection takes its swath pixel's spectrum
    mapped = np.full((Hm, Wm, cube.shape[2]), np.nan)
    ok = rows >= 0
    mapped[ok] = cube[rows[ok], cols[ok]]
    mean, _, peak, _ = brute(mapped, labels, sp.ids, table)
    np.testing.assert_allclose(sp.mean, mean, rtol=1e-12)
    np.testing.assert_array_equal(sp.peak, peak)
    # the background: the swath pixels not shown in a detection, once each
    det_px = np.zeros((H, W), bool)
    det_px[rows[labels > 0], cols[labels > 0]] = True
    np.testing.assert_allclose(sp.background_mean, cube[~det_px].astype(np.float64).mean(0), rtol=1e-10)
    assert rng is not None


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    """abu-urban-1 as a GeoTIFF with wavelengths, RX detections in a GeoPackage and a GeoJSON."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import sensors

    d = tmp_path_factory.mktemp("spectra")
    cube, _ = load_scene("abu-urban-1")
    wl = sensors.scene_wavelengths("abu-urban-1", cube.shape[2])
    write_cube(d / "scene.tif", cube, wavelengths=wl, wavelength_units="nanometers")
    for ext in ("gpkg", "geojson"):
        r = CliRunner().invoke(main, ["detect", "rx", str(d / "scene.tif"), "-o", str(d / f"rx_{ext}.tif"),
                                      "--vector", str(d / f"rx.{ext}"), "--threshold", "percentile:99.5", "-q"])
        assert r.exit_code == 0, r.output
    return d, cube, wl


def test_written_with_the_detections_and_read_back(scene_files):
    d, cube, wl = scene_files
    assert [n for n, _ in pyogrio.list_layers(d / "rx.gpkg")] == ["detections", "detection_spectra"]
    assert spectra_csv_path(d / "rx.geojson").exists()
    with rasterio.open(d / "rx_gpkg.tif") as ds:
        s = ds.read(1)
    labels, table = label_detections(s, "percentile:99.5")
    for name in ("rx.gpkg", "rx.geojson", "rx_spectra.csv"):
        sp = read_detection_spectra(d / name)
        check(sp, cube, labels, table)
        np.testing.assert_allclose(sp.wavelengths, wl, atol=0.01)  # as the GeoTIFF stores them
        np.testing.assert_array_equal(sp.bands, np.arange(1, cube.shape[2] + 1))
    # the table is keyed by the polygons' id
    import geopandas as gpd

    polys = gpd.read_file(d / "rx.gpkg", layer="detections")
    assert sorted(polys["id"]) == sorted(read_detection_spectra(d / "rx.gpkg").ids)
    # the long table round-trips through its columns
    again = DetectionSpectra.from_columns(sp.to_columns())
    np.testing.assert_array_equal(again.mean, sp.mean)


def test_no_spectra_and_an_existing_csv(scene_files):
    d, _, _ = scene_files
    r = CliRunner().invoke(main, ["detect", "rx", str(d / "scene.tif"), "-o", str(d / "n.tif"), "--vector",
                                  str(d / "n.geojson"), "--no-spectra", "-q"])
    assert r.exit_code == 0 and not spectra_csv_path(d / "n.geojson").exists()
    # the CSV beside is an output like the others: refused before anything is computed
    (d / "m_spectra.csv").write_text("keep me")
    r = CliRunner().invoke(main, ["detect", "rx", str(d / "scene.tif"), "-o", str(d / "m.tif"), "--vector",
                                  str(d / "m.geojson"), "-q"])
    assert r.exit_code == 2 and "m_spectra.csv" in r.output and not (d / "m.tif").exists()
    assert (d / "m_spectra.csv").read_text() == "keep me"


def test_a_detection_as_the_target_and_library_matches(scene_files):
    d, cube, wl = scene_files
    sp = read_detection_spectra(d / "rx.gpkg")
    k = int(np.argmax(sp.pixels))
    det_id = int(sp.ids[k])
    r = CliRunner().invoke(main, ["detect", "ace", str(d / "scene.tif"), "-p", f"target={d / 'rx.gpkg'}:{det_id}",
                                  "-o", str(d / "ace.tif"), "-q"])
    assert r.exit_code == 0, r.output
    with rasterio.open(d / "ace.tif") as ds:
        s = ds.read(1)
    with rasterio.open(d / "rx_gpkg.tif") as ds:
        labels, _ = label_detections(ds.read(1), "percentile:99.5")
    # the detection's own pixels are the scene's most like it
    assert np.nanmean(s[labels == det_id]) > np.nanpercentile(s, 99)
    # the same through Python, from the same scene file
    np.testing.assert_allclose(hadcore.detect("ace", str(d / "scene.tif"), target=f"{d / 'rx.gpkg'}:{det_id}"),
                               s, rtol=1e-5, atol=1e-7)
    # a library holding that mean spectrum (on a 1 nm grid) and a flat one: each detection's best match
    lib_wl = np.arange(350.0, 2520.0)
    lib = SpectralLibrary(names=["flat", "found"], wavelengths=lib_wl,
                          spectra=[np.full(lib_wl.size, 1000.0), np.interp(lib_wl, wl, sp.mean[k])])
    write_library(lib, d / "lib.csv")
    r = CliRunner().invoke(main, ["detect", "rx", str(d / "scene.tif"), "-o", str(d / "m2.tif"), "--vector",
                                  str(d / "m2.gpkg"), "--threshold", "percentile:99.5", "--library",
                                  str(d / "lib.csv"), "--matches", "2", "-q"])
    assert r.exit_code == 0, r.output
    import geopandas as gpd

    polys = gpd.read_file(d / "m2.gpkg", layer="detections").set_index("id")
    assert polys.loc[det_id, "match_1"] == "found" and polys.loc[det_id, "angle_1"] < 1.0
    assert {"match_2", "angle_2", "sid_1", "sid_2"} <= set(polys.columns)
    assert (polys["angle_1"] <= polys["angle_2"]).all()


@pytest.mark.parametrize("spec, message", [
    ("rx.gpkg:99", "no detection with id 99"),
    ("rx.gpkg", "name a detection by its id"),
    ("rx.gpkg:0", "id 0 is the background"),
    ("n.geojson:1", "no detection spectra beside it"),
])
def test_bad_detection_targets_are_one_line(scene_files, spec, message):
    d, _, _ = scene_files
    out = d / "bad.tif"
    r = CliRunner().invoke(main, ["detect", "mf", str(d / "scene.tif"), "-p", f"target={d / spec}", "-o",
                                  str(out), "-q"])
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not out.exists()


def test_exclude_keeps_pixels_out_of_the_background(scene_files):
    d, cube, _ = scene_files
    X = cube.astype(np.float64)
    with rasterio.open(d / "rx_gpkg.tif") as ds:
        labels, _ = label_detections(ds.read(1), "percentile:99.5")
    ex = labels > 0
    target = ",".join(f"{v:.6g}" for v in X[ex].mean(0))
    det = hadcore.get_detector("mf", target=target, scale="zscore")
    det.set_exclude(ex)
    s_ex, info = engine.run(det, engine.ArraySource(cube), mem_limit_mb=20)
    assert info.plan.n_blocks > 1
    np.testing.assert_allclose(det.whitener_.mean, X[~ex].mean(0), rtol=1e-10)
    plain = hadcore.get_detector("mf", target=target, scale="zscore")
    s_in = plain.detect(cube)
    np.testing.assert_allclose(plain.whitener_.mean, X.reshape(-1, X.shape[2]).mean(0), rtol=1e-10)
    # the targets out of their own background: they stand out more against it (in background SDs)
    assert np.nanmean(s_ex.array[ex]) > np.nanmean(s_in[ex])
    # from the CLI: the polygons of a vector file, and a first pass
    for spec in (str(d / "rx.gpkg"), "first-pass"):
        r = CliRunner().invoke(main, ["detect", "mf", str(d / "scene.tif"), "-p", f"target={d / 'rx.gpkg'}:1",
                                      "--exclude", spec, "-o", str(d / "ex.tif"), "--overwrite"])
        assert r.exit_code == 0 and "left out of the background" in r.output, r.output
    r = CliRunner().invoke(main, ["detect", "rx", str(d / "scene.tif"), "--exclude", str(d / "rx.gpkg"), "-o",
                                  str(d / "ex2.tif"), "-q"])
    assert r.exit_code == 2 and "target detector" in r.output and not (d / "ex2.tif").exists()


def test_on_a_sensor_product_library_target_spectra_and_more_like_it(tmp_path):
    """An EMIT L2A granule (swath scored, written on its GLT map grid): ace with a library target, detections with
    their spectra on the product's wavelengths (its bad bands dropped), then "find more like detection 1"."""
    from conftest import require
    from product_fixtures.emit import emit_swath, emit_wavelengths, make_emit

    for m in ("h5py", "netCDF4"):
        require(m)
    cube, gt = load_scene("abu-airport-2")
    swath = emit_swath(cube[:48, :60], "L2A")
    wl = emit_wavelengths()
    rng = np.random.default_rng(5)
    paint = 0.05 + 0.3 * np.exp(-0.5 * ((wl - 650) / 60) ** 2)
    idx = rng.choice(48 * 60, 25, replace=False)
    r, c = np.divmod(idx, 60)
    swath[r, c] = 0.6 * swath[r, c] + 0.4 * paint
    path = make_emit(tmp_path, swath)
    write_library(SpectralLibrary(names=["paint"], spectra=[paint], wavelengths=wl), tmp_path / "lib.sli")
    r1 = CliRunner().invoke(main, ["detect", "ace", str(path), "-p", f"target={tmp_path / 'lib.sli'}:paint", "-o",
                                   str(tmp_path / "ace.tif"), "--vector", str(tmp_path / "ace.gpkg"), "--threshold",
                                   "top:25", "-q"])
    assert r1.exit_code == 0, r1.output
    sp = read_detection_spectra(tmp_path / "ace.gpkg")
    assert sp.ids.size >= 5 and sp.wavelengths is not None and np.all(np.diff(sp.wavelengths) > 0)
    assert sp.wavelengths.size < wl.size  # the product's bad bands (water vapour) are not in the table
    paint_here = np.interp(sp.wavelengths, wl, paint)
    # the detections are the implanted pixels: their mean spectrum leans towards the paint, away from the background
    from hadcore.targets import spectral_angle

    assert spectral_angle(sp.mean[:1], paint_here)[0] < spectral_angle(sp.background_mean[None], paint_here)[0]
    r2 = CliRunner().invoke(main, ["detect", "ace", str(path), "-p", f"target={tmp_path / 'ace.gpkg'}:1", "-o",
                                   str(tmp_path / "more.tif"), "-q"])
    assert r2.exit_code == 0, r2.output
    with rasterio.open(tmp_path / "more.tif") as ds:
        more = ds.read(1, masked=True).filled(np.nan)
    with rasterio.open(tmp_path / "ace.tif") as ds:
        first = ds.read(1, masked=True).filled(np.nan)
    ok = np.isfinite(more) & np.isfinite(first)
    assert np.corrcoef(more[ok], first[ok])[0, 1] > 0.5  # the detection's own spectrum finds the same material
