"""The CLI end to end: in process (CliRunner) and as the installed console script."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import SAMPLE_DIR, load_scene, user_error
from conftest import run_cli as run

import hadcore
from hadcore.io import write_cube
from hadcore_cli.main import main

SAMPLE = SAMPLE_DIR / "abu-airport-1.tif"
GT = SAMPLE_DIR / "abu-airport-1_gt.tif"


@pytest.fixture
def crop_tif(tmp_path):
    """A 40 x 40 x 50 georeferenced crop of the sample scene with its ground truth."""
    with rasterio.open(SAMPLE) as src:
        win = rasterio.windows.Window(30, 30, 40, 40)
        data = src.read(indexes=list(range(1, 51)), window=win)
        transform = src.window_transform(win)
        crs = src.crs
    with rasterio.open(GT) as src:
        gt = src.read(1, window=win)
    p = tmp_path / "crop.tif"
    write_cube(p, np.moveaxis(data, 0, -1), crs=crs, transform=transform, nodata=0)
    write_cube(tmp_path / "crop_gt.tif", gt, crs=crs, transform=transform)
    return p


def test_list_and_info_are_generated_from_declarations():
    r = run("list", "--json")
    assert r.exit_code == 0
    names = [d["name"] for d in json.loads(r.output)]
    assert names == hadcore.list_detectors()
    r = run("info", "lrx", "--json")
    info = json.loads(r.output)
    assert [p["name"] for p in info["params"]] == [p.name for p in hadcore.get_detector_class("lrx").params]
    assert info["context"]["halo"] == 15  # outer 31
    r = run("info", "lrx")
    assert "odd integer in [3, 201]" in r.output and "Reference:" in r.output
    user_error(run("info", "nope"), "unknown detector 'nope'")


def test_detect_writes_georeferenced_layer_polygons_and_prints_auc(tmp_path, crop_tif):
    out, vec = tmp_path / "rx.tif", tmp_path / "rx.gpkg"
    r = run("detect", "rx", crop_tif, "-o", out, "--vector", vec, "--threshold", "fpr:1e-3", "-q")
    assert r.exit_code == 0, r.output
    assert "AUC(PD,PF) =" in r.stdout
    with rasterio.open(crop_tif) as a, rasterio.open(out) as b:
        assert b.crs == a.crs and b.transform == a.transform and b.nodata == a.nodata
        assert b.count == 1 and b.dtypes[0] == "float32" and b.tags()["detector"] == "rx"
        scores = b.read(1)
    cube = np.moveaxis(rasterio.open(crop_tif).read(), 0, -1)
    np.testing.assert_allclose(scores, hadcore.get_detector("rx").detect(cube), rtol=1e-6)
    import geopandas as gpd

    polys = gpd.read_file(vec)
    assert len(polys) > 0 and polys.crs.to_epsg() == 32611
    assert {"id", "pixels", "area", "peak", "mean", "peak_x", "peak_y"} <= set(polys.columns)
    from scipy.stats import chi2

    assert polys["peak"].min() >= chi2.isf(1e-3, 50)
    # the polygons lie inside the raster's footprint
    with rasterio.open(out) as b:
        left, bottom, right, top = b.bounds
    x0, y0, x1, y1 = polys.total_bounds
    assert left <= x0 and x1 <= right and bottom <= y0 and y1 <= top


def test_parameters_reach_the_detector_and_batch_mode(tmp_path, crop_tif):
    other = tmp_path / "second.tif"
    shutil.copy(crop_tif, other)
    outdir = tmp_path / "out"
    r = run("detect", "lrx", crop_tif, other, "--out-dir", outdir, "-p", "inner=3", "-p", "outer=9",
            "--vector-format", "geojson", "--bands", "1-20", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in outdir.iterdir()) == [
        "crop_lrx.geojson", "crop_lrx.tif", "crop_lrx_spectra.csv", "second_lrx.geojson", "second_lrx.tif",
        "second_lrx_spectra.csv"]
    with rasterio.open(outdir / "crop_lrx.tif") as src:
        tags = src.tags()
        a = src.read(1)
    assert json.loads(tags["parameters"])["outer"] == 9 and tags["bands"] == "20"
    run("detect", "lrx", crop_tif, "-o", tmp_path / "b.tif", "-p", "inner=3", "-p", "outer=11", "--bands", "1-20", "-q")
    with rasterio.open(tmp_path / "b.tif") as src:
        assert not np.allclose(a, src.read(1))


def test_evaluate_and_vectorize_commands(tmp_path, crop_tif):
    run("detect", "rx", crop_tif, "-o", tmp_path / "s.tif", "-q")
    r = run("evaluate", tmp_path / "s.tif", tmp_path / "crop_gt.tif", "--json")
    m = json.loads(r.output)
    assert 0.5 < m["auc_pd_pf"] <= 1 and m["auc_bs"] == pytest.approx(m["auc_pd_pf"] - m["auc_pf_tau"])
    r = run("vectorize", tmp_path / "s.tif", "-o", tmp_path / "v.shp", "--threshold", "top:10", "--min-size", "1")
    assert r.exit_code == 0 and "detection(s)" in r.stderr
    r = run("vectorize", tmp_path / "s.tif", "-o", tmp_path / "e.gpkg", "--threshold", "value:1e20")
    assert r.exit_code == 0 and "0 detection(s) - no pixel reached" in r.stderr
    assert (tmp_path / "e.gpkg").exists()
    r = run("detect", "rx", crop_tif, "-o", tmp_path / "n.tif", "--normalize", "-q")
    user_error(run("vectorize", tmp_path / "n.tif", "-o", tmp_path / "f.gpkg", "--threshold", "fpr:1e-3"),
               "needs raw scores; this layer was scaled to 0-1")


def test_user_errors_are_one_line_exit_2_and_keep_outputs(tmp_path, crop_tif):
    out = tmp_path / "s.tif"
    out.write_bytes(b"keep me")
    user_error(run("detect", "rx", crop_tif, "-o", out), "exists; use --overwrite")
    assert out.read_bytes() == b"keep me"
    assert run("detect", "rx", crop_tif, "-o", out, "--overwrite", "-q").exit_code == 0
    with rasterio.open(out) as src:
        assert src.count == 1
    new = tmp_path / "new.tif"
    user_error(run("detect", "rx", tmp_path / "missing.tif", "-o", new), "input not found")
    user_error(run("detect", "rx", crop_tif, "-o", new, "-p", "window=3"), "has no parameter 'window'")
    user_error(run("detect", "lrx", crop_tif, "-o", new, "-p", "outer=8"), "odd integer")
    user_error(run("detect", "nope", crop_tif, "-o", new), "unknown detector")
    user_error(run("detect", "rx", crop_tif, "-o", new, "--threshold", "median"), "bad threshold")
    user_error(run("detect", "rx", crop_tif, "-o", new, "--bands", "1-500"), "outside 1-50")
    user_error(run("detect", "rx", crop_tif, "-o", new, "--seed", "3"), "takes no seed")
    user_error(run("detect", "rx", crop_tif, "-o", new, "--vector", tmp_path / "v.kml"), "unknown vector format")
    user_error(run("detect", "lrx", tmp_path / "crop_gt.tif", "-o", new), "needs at least 2 bands, got 1")
    user_error(run("evaluate", crop_tif, tmp_path / "crop_gt.tif"), "a score layer has 1 band")
    assert not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crop.tif", "crop_gt.tif", "s.tif"]


def test_nan_nodata_and_constant_band_inputs(tmp_path):
    cube, gt = load_scene("sandiego-lren")
    cube = cube[:40, :40, :30].copy()
    cube[:, :, 5] = 100.0           # constant band: singular covariance
    cube[0:3, 0:3] = np.nan         # NaN pixels
    cube[5, 5] = -1                 # nodata pixel
    p = tmp_path / "odd.tif"
    write_cube(p, cube, nodata=-1)
    r = run("detect", "rx", p, "-o", tmp_path / "o.tif", "-q")
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "o.tif") as src:
        s = src.read(1, masked=True)
    assert s.mask[0:3, 0:3].all() and s.mask[5, 5] and s.mask.sum() == 10
    assert np.isfinite(s.compressed()).all()


def test_detection_is_deterministic(tmp_path, crop_tif):
    for name in ("a.tif", "b.tif"):
        run("detect", "lrx", crop_tif, "-o", tmp_path / name, "-p", "inner=3", "-p", "outer=9", "-q")
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_installed_console_script(tmp_path, crop_tif):
    exe = Path(sys.executable).with_name("hadcore")  # the script installed beside this interpreter
    exe = str(exe) if exe.exists() else shutil.which("hadcore")
    out = tmp_path / "c.tif"
    p = subprocess.run([exe, "detect", "rx", str(crop_tif), "-o", str(out), "--vector", str(tmp_path / "c.gpkg")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "AUC(PD,PF)" in p.stdout and out.exists() and (tmp_path / "c.gpkg").exists()
    p = subprocess.run([exe, "detect", "rx", str(crop_tif), "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    p = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert hadcore.__version__ in p.stdout


def test_two_inputs_that_would_write_one_output_are_refused_before_any_work(tmp_path):
    src = str(SAMPLE_DIR / "abu-airport-1.tif")
    r = CliRunner().invoke(main, ["detect", "rx", src, src, "--out-dir", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 2 and "two inputs would write the same output" in r.output
    assert not list((tmp_path / "o").glob("*.tif"))
