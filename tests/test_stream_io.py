"""Streaming from files: every GDAL layout read by windows gives the in-memory scores; the score layer is
written block by block (georeference, nodata, tags, COG); detections crossing block borders are joined;
progress and cancellation come per block."""

import json

import numpy as np
import pytest
from conftest import load_scene

pytest.importorskip("rasterio")

import rasterio  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402

import hadcore  # noqa: E402
from hadcore.engine import run  # noqa: E402
from hadcore.errors import Cancelled  # noqa: E402
from hadcore.io import read_scores  # noqa: E402
from hadcore.scene import open_scene  # noqa: E402
from hadcore_cli.main import main  # noqa: E402

pytestmark = pytest.mark.cli

CRS = "EPSG:32633"
TRANSFORM = from_origin(500000.0, 4200000.0, 30.0, 30.0)


def write_layout(path, cube, *, interleave, tiled, bigtiff=False, nodata=None):
    H, W, B = cube.shape
    prof = dict(driver="GTiff", height=H, width=W, count=B, dtype="float32", crs=CRS, transform=TRANSFORM,
                interleave=interleave, nodata=nodata)
    if tiled:
        prof.update(tiled=True, blockxsize=32, blockysize=32, compress="deflate")
    else:
        prof.update(tiled=False, blockysize=3)  # strips of 3 rows
    if bigtiff:
        prof["BIGTIFF"] = "YES"
    with rasterio.open(path, "w", **prof) as dst:
        for r0 in range(0, H, 17):  # written by windows, as a big scene would be
            r1 = min(H, r0 + 17)
            dst.write(np.moveaxis(cube[r0:r1], -1, 0), window=rasterio.windows.Window(0, r0, W, r1 - r0))
    return path


@pytest.fixture(scope="module")
def scene():
    cube, gt = load_scene("abu-urban-1")
    cube = np.ascontiguousarray(cube[:, :, ::5])  # 100 x 100 x ~41
    cube[0:3, 0:5] = -9999.0  # nodata in every band
    cube[50, 50, 2] = np.nan
    return cube, gt


@pytest.mark.parametrize("interleave,tiled,bigtiff", [
    ("pixel", True, False), ("band", True, False), ("pixel", False, False), ("band", False, True),
])
def test_every_layout_streams_to_the_in_memory_scores(tmp_path, scene, interleave, tiled, bigtiff):
    cube, _ = scene
    path = write_layout(tmp_path / "s.tif", cube, interleave=interleave, tiled=tiled, bigtiff=bigtiff, nodata=-9999.0)
    out = tmp_path / "rx.tif"
    res = CliRunner().invoke(main, ["detect", "rx", str(path), "-o", str(out), "--mem-limit", "8", "-q"])
    assert res.exit_code == 0, res.output
    s, georef, tags = read_scores(out)
    mask = ~(cube == -9999.0).all(axis=2)
    ref = hadcore.get_detector("rx").detect(cube, mask)
    np.testing.assert_allclose(s, ref, rtol=1e-5, equal_nan=True)
    assert np.isnan(s[0:3, 0:5]).all() and np.isnan(s[50, 50])
    assert georef["nodata"] == -9999.0 and georef["transform"] == TRANSFORM and georef["crs"].to_epsg() == 32633
    assert tags["detector"] == "rx" and tags["bands"] == str(cube.shape[2])
    # the scene did need several blocks under that budget
    sc = open_scene(path)
    _, info = run(hadcore.get_detector("rx"), sc.source, mem_limit_mb=8)
    assert info.plan.n_blocks > 1 and len(info.plan.stat_windows) > 1


def test_local_detector_streamed_from_a_file_equals_in_memory(tmp_path, scene):
    cube, _ = scene
    path = write_layout(tmp_path / "s.tif", cube, interleave="band", tiled=True, nodata=-9999.0)
    out = tmp_path / "lrx.tif"
    args = ["detect", "lrx", str(path), "-o", str(out), "-p", "inner=3", "-p", "outer=9", "--mem-limit", "24", "-q"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    s = read_scores(out)[0]
    mask = ~(cube == -9999.0).all(axis=2)
    ref = hadcore.get_detector("lrx", inner=3, outer=9).detect(cube, mask)
    np.testing.assert_allclose(s, ref, rtol=1e-5, equal_nan=True)


def test_cog_output_has_overviews_and_the_same_scores(tmp_path, scene):
    cube, _ = scene
    path = write_layout(tmp_path / "s.tif", np.tile(cube, (3, 3, 1)), interleave="pixel", tiled=True)
    plain, cog = tmp_path / "plain.tif", tmp_path / "cog.tif"
    for out, extra in ((plain, []), (cog, ["--cog"])):
        res = CliRunner().invoke(main, ["detect", "rx", str(path), "-o", str(out), "-q", *extra])
        assert res.exit_code == 0, res.output
    with rasterio.open(cog) as src:
        assert src.overviews(1), "a COG carries overviews"
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.tags()["detector"] == "rx"
    np.testing.assert_array_equal(read_scores(cog)[0], read_scores(plain)[0])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_detections_crossing_block_borders_are_joined(tmp_path):
    rng = np.random.default_rng(3)
    cube = rng.normal(100.0, 1.0, size=(480, 64, 40)).astype(np.float32)
    path = write_layout(tmp_path / "t.tif", cube, interleave="pixel", tiled=False)
    _, info = run(hadcore.get_detector("rx"), open_scene(path).source, mem_limit_mb=17)
    borders = sorted({w[0] for w in info.plan.score_windows} - {0})
    assert borders, "several row blocks are needed"
    b = borders[0]
    cube[b - 10:b + 10, 30:34] += 25.0  # a 20 x 4 target across the first block border
    path = write_layout(tmp_path / "t.tif", cube, interleave="pixel", tiled=False)
    out, vec = tmp_path / "rx.tif", tmp_path / "rx.geojson"
    res = CliRunner().invoke(main, ["detect", "rx", str(path), "-o", str(out), "--vector", str(vec),
                                    "--threshold", "value:200", "--mem-limit", "17", "-q"])
    assert res.exit_code == 0, res.output
    feats = json.loads(vec.read_text())["features"]
    assert len(feats) == 1 and feats[0]["properties"]["pixels"] == 80


def test_progress_is_reported_per_block_and_cancel_stops_the_run(scene):
    cube, _ = scene
    seen = []
    det = hadcore.get_detector("lrx", inner=3, outer=9)
    sink, info = run(det, hadcore.engine.ArraySource(cube), mem_limit_mb=12,
                     progress=lambda f, m=None: seen.append(f))
    assert info.plan.n_blocks > 1
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= info.plan.n_blocks
    calls = []

    def cancel_after_first_block():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        run(det, hadcore.engine.ArraySource(cube), mem_limit_mb=12,
            progress=hadcore.Progress(None, cancel_after_first_block))
