"""The sensor-shift benchmark (issue 25): variants are deterministic and physically sensible, and the score-map
cache resumes instead of recomputing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_scene

import hadcore
from hadcore.metrics import roc_auc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import sensors  # noqa: E402


def test_variants_are_deterministic_and_keep_the_scene():
    cube, gt = load_scene("abu-urban-1")
    for v in ("snr25", "hyperion"):
        a, ga, wa = sensors.make_variant(cube, gt, "abu-urban-1", v)
        b, gb, wb = sensors.make_variant(cube, gt, "abu-urban-1", v)
        assert np.array_equal(a, b) and np.array_equal(ga, gt)
    v64, g64, wl = sensors.make_variant(cube, gt, "abu-urban-1", "vnir64")
    assert v64.shape == (100, 100, 64) and wl.min() >= 375 and wl.max() <= 1050 and np.isfinite(v64).all()
    # a Gaussian band over the scene's own bands stays within the range of the bands it averages
    src_wl = sensors.scene_wavelengths("abu-urban-1", cube.shape[2])
    k = int(np.argmin(np.abs(src_wl - wl[30])))
    near = cube[:, :, max(k - 3, 0):k + 4]
    assert (v64[:, :, 30] >= near.min(axis=2) - 1e-3).all() and (v64[:, :, 30] <= near.max(axis=2) + 1e-3).all()
    c2, g2, _ = sensors.make_variant(cube, gt, "abu-urban-1", "coarse2")
    assert c2.shape == (50, 50, cube.shape[2])
    np.testing.assert_allclose(c2[3, 4], cube[6:8, 8:10].mean(axis=(0, 1)), rtol=1e-5)
    assert g2[3, 4] == gt[6:8, 8:10].max()
    # Pavia's ROSIS range (430-860 nm) keeps only the covered bands of a wider sensor: none invented
    pv, pg = load_scene("pavia-100")
    e, _, ewl = sensors.make_variant(pv, pg, "pavia-100", "enmap")
    assert 0 < e.shape[2] < 91 and ewl.min() >= 430 and ewl.max() <= 860


def test_the_cache_holds_each_map_and_a_second_run_skips_it(tmp_path):
    env = dict(os.environ, HADCORE_BENCH_CACHE=str(tmp_path))
    cmd = [sys.executable, str(REPO / "bench" / "bench_sensors.py"), "run", "--detectors", "rx",
           "--variants", "orig,vnir64", "--scenes", "hydice-162"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 2
    cube, gt = load_scene("hydice-162")
    s = np.load(tmp_path / "orig" / "hydice-162" / "rx-s0.npy")
    np.testing.assert_allclose(s, hadcore.get_detector("rx").detect(cube), rtol=1e-6)
    row = json.loads((tmp_path / "vnir64" / "hydice-162" / "rx-s0.json").read_text())
    v, vg, _ = sensors.make_variant(cube, gt, "hydice-162", "vnir64")
    assert row["bands"] == v.shape[2] and row["auc"] == pytest.approx(roc_auc(hadcore.get_detector("rx").detect(v), vg))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == ""  # everything cached: nothing recomputed
