"""The benchmark harness and ``hadcore benchmark``: outputs written, values equal to direct evaluation."""

import csv

import numpy as np
import pytest

from hadcore import benchmark as hb
from hadcore.errors import FileError, InputError, ParameterError
from hadcore.metrics import evaluate
from hadcore.registry import get_detector

from conftest import load_scene


def _crop(name, size=40):
    cube, gt = load_scene(name)
    # the size x size window with the most anomaly pixels, every 4th band: small and fast
    best, where = -1, (0, 0)
    for r in range(0, cube.shape[0] - size + 1, 10):
        for c in range(0, cube.shape[1] - size + 1, 10):
            n = int(gt[r:r + size, c:c + size].sum())
            if n > best:
                best, where = n, (r, c)
    r, c = where
    return cube[r:r + size, c:c + size, ::4].copy(), gt[r:r + size, c:c + size].copy()


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    cube, gt = _crop("hydice-162")
    np.savez_compressed(d / "hydice-crop.npz", cube=cube, gt=gt)
    from scipy.io import savemat

    cube, gt = _crop("pavia-100")
    savemat(d / "pavia-crop.mat", {"data": cube, "map": gt})
    (d / "notes.txt").write_text("not a scene")
    return d


def test_find_and_load_scenes(scene_dir):
    paths = hb.find_scenes(scene_dir)
    assert [p.name for p in paths] == ["hydice-crop.npz", "pavia-crop.mat"]
    sc = hb.load_scene(paths[1])
    cube, gt = _crop("pavia-100")
    np.testing.assert_array_equal(sc.cube, cube)
    np.testing.assert_array_equal(sc.gt, gt)


def test_harness_writes_tables_and_figures_equal_to_direct_evaluation(scene_dir, tmp_path):
    dets = ["rx", "aed"]
    res = hb.run_benchmark(dets, hb.find_scenes(scene_dir), {"rx": {"ridge": "0.001"}})
    paths = hb.write_outputs(res, tmp_path)
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["bench_box.png", "bench_maps.png", "bench_roc.png", "bench_roc3d.png"]
    for p in tmp_path.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with open(tmp_path / "benchmark.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["scene"], r["detector"]) for r in rows] == [
        ("hydice-crop", "rx"), ("hydice-crop", "aed"), ("pavia-crop", "rx"), ("pavia-crop", "aed")]
    md = (tmp_path / "benchmark.md").read_text()
    for r in rows:
        sc = hb.load_scene(scene_dir / (r["scene"] + (".npz" if r["scene"].startswith("hydice") else ".mat")))
        params = {"ridge": 0.001} if r["detector"] == "rx" else {}
        direct = evaluate(get_detector(r["detector"], **params).detect(sc.cube), sc.gt)
        for k in ("auc_pd_pf", "auc_pd_tau", "auc_pf_tau", "auc_bs", "snpr"):
            assert float(r[k]) == pytest.approx(direct[k], rel=1e-12)
            assert f"{direct[k]:.4f}" in md
        assert float(r["seconds"]) > 0 and r["error"] == ""
    # the mean row of the headline table
    mean_rx = np.mean([float(r["auc_pd_pf"]) for r in rows if r["detector"] == "rx"])
    assert f"| **mean** | {mean_rx:.4f} |" in md


def test_failures_are_recorded_not_fatal(scene_dir):
    cube, gt = _crop("hydice-162")
    no_anomaly = hb.Scene("empty-gt", cube, np.zeros_like(gt))
    res = hb.run_benchmark(["rx"], [no_anomaly, hb.find_scenes(scene_dir)[0]])
    assert "InputError" in res.rows[0]["error"] and res.rows[0]["auc_pd_pf"] is None
    assert res.rows[1]["error"] == "" and res.rows[1]["auc_pd_pf"] > 0.9


def test_bad_arguments(tmp_path, scene_dir):
    with pytest.raises(ParameterError, match="unknown detector"):
        hb.run_benchmark(["nope"], hb.find_scenes(scene_dir))
    with pytest.raises(ParameterError, match="has no parameter"):
        hb.run_benchmark(["rx"], hb.find_scenes(scene_dir), {"rx": {"bogus": 1}})
    with pytest.raises(ParameterError, match="DETECTOR.PARAM=VALUE"):
        hb.parse_detector_params(["rx=1"], ["rx"])
    with pytest.raises(ParameterError, match="not among"):
        hb.parse_detector_params(["lrx.inner=3"], ["rx"])
    assert hb.parse_detector_params(["rx.ridge=0.1"], ["rx"]) == {"rx": {"ridge": "0.1"}}
    with pytest.raises(FileError, match="no scenes"):
        hb.find_scenes(tmp_path)
    np.savez(tmp_path / "nogt.npz", cube=np.ones((4, 4, 3)))
    with pytest.raises(InputError, match="no ground truth"):
        hb.load_scene(tmp_path / "nogt.npz")


def test_without_matplotlib_the_tables_come_and_the_figures_are_named_as_an_extra(scene_dir, tmp_path, monkeypatch):
    """matplotlib is the optional ``plots`` extra: blocked, the CLI writes the tables and says how to get figures,
    and hadcore.plots.make_figures is a one-line error naming the extra."""
    import sys

    from click.testing import CliRunner

    from hadcore.errors import HadcoreError
    from hadcore.plots import make_figures
    from hadcore_cli.main import main

    res = hb.run_benchmark(["rx"], [scene_dir / "hydice-crop.npz"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setattr("hadcore.plots.have_matplotlib", lambda: False)
    with pytest.raises(HadcoreError, match=r"pip install 'hadcore\[plots\]'"):
        make_figures(res, tmp_path / "figs")
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["benchmark", "--detectors", "rx", "--data", str(scene_dir), "--out", str(out),
                                  "-q"])
    assert r.exit_code == 0, r.output
    assert "hadcore[plots]" in r.output
    assert (out / "benchmark.csv").exists() and (out / "benchmark.md").exists()
    assert not list(out.rglob("*.png"))


@pytest.mark.cli  # needs the CLI extras (click, rasterio)
def test_cli(scene_dir, tmp_path):
    from click.testing import CliRunner

    from hadcore_cli.main import main

    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["benchmark", "--detectors", "rx,lsmad", "--data", str(scene_dir), "--out", str(out),
                                       "-p", "lsmad.rank=2", "--no-figures", "-q"])
    assert r.exit_code == 0, r.output
    with open(out / "benchmark.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and all(0.5 < float(x["auc_pd_pf"]) <= 1 for x in rows)
    sc = hb.load_scene(scene_dir / "hydice-crop.npz")
    direct = evaluate(get_detector("lsmad", rank=2).detect(sc.cube), sc.gt)["auc_pd_pf"]
    assert float(rows[1]["auc_pd_pf"]) == pytest.approx(direct, rel=1e-12)
    assert not list(out.glob("*.png"))

    bad = CliRunner().invoke(main, ["benchmark", "--detectors", "rx", "--data", str(scene_dir), "--out", str(out),
                                         "-p", "lsmad.rank=2"])
    assert bad.exit_code == 2 and "not among" in bad.output
    bad = CliRunner().invoke(main, ["benchmark", "--detectors", "rx", "--data", str(tmp_path / "missing"),
                                         "--out", str(out)])
    assert bad.exit_code == 2 and "not found" in bad.output


@pytest.mark.cli  # needs the CLI extras (click, rasterio)
def test_geotiff_scene_with_sibling_ground_truth(tmp_path):
    from conftest import require

    rasterio = require("rasterio")
    cube, gt = _crop("hydice-162", size=30)
    H, W, B = cube.shape
    prof = dict(driver="GTiff", height=H, width=W, dtype="float32", crs="EPSG:32633",
                transform=rasterio.Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4000000.0))
    with rasterio.open(tmp_path / "scene.tif", "w", count=B, **prof) as dst:
        dst.write(np.moveaxis(cube, -1, 0))
    with rasterio.open(tmp_path / "scene_gt.tif", "w", count=1, **{**prof, "dtype": "uint8"}) as dst:
        dst.write(gt[None])
    paths = hb.find_scenes(tmp_path)
    assert [p.name for p in paths] == ["scene.tif"]  # the _gt file is not a scene
    res = hb.run_benchmark(["rx"], paths)
    direct = evaluate(get_detector("rx").detect(cube), gt)
    assert res.rows[0]["auc_pd_pf"] == pytest.approx(direct["auc_pd_pf"], rel=1e-9)
