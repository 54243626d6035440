"""PDBSNet (hadcore.detectors.pdbsnet): blind spot, receptive field, determinism, streaming, real-scene AUC."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from conftest import load_scene, require
from hadcore.detectors.pdbsnet import PDBSNet
from hadcore.errors import ParameterError
from hadcore.metrics import roc_auc
from hadcore.progress import Progress

#: a small, quickly trained network for the mechanics (not the quality of the defaults)
FAST = dict(epochs=4, width=8, blocks=1)


@pytest.fixture(scope="module")
def crop():
    """A 41 x 37 crop of abu-urban-1 (every 6th band): odd sides, not multiples of the PD factor."""
    cube, gt = load_scene("abu-urban-1")
    return cube[:41, :37, ::6].astype(np.float64), gt[:41, :37]


# ------------------------------------------------------------------------------------------ declarations
def test_declared():
    det = PDBSNet()
    assert det.name == "pdbsnet" and det.family == "deep" and det.trains
    ctx = det.context()
    assert ctx.global_stats and ctx.scaling == "sample" and not ctx.exact and not ctx.whole_scene
    assert (ctx.crops, ctx.crop_size, ctx.seed) == (det.crops, det.crop_size, 0)
    # the halo is the receptive field of the s = 3 branch, in PD units of `factor` pixels
    assert ctx.halo == det.receptive_radius() == det.factor * (2 + 3 * det.blocks)
    assert PDBSNet(factor=2, blocks=3).receptive_radius() == 22
    assert PDBSNet(factor=1, blocks=1).receptive_radius() == 5
    names = {p["name"] for p in PDBSNet.describe()["params"]}
    assert {"factor", "width", "blocks", "epochs", "lr", "scaling", "device", "threads", "seed"} <= names
    assert "Scaling:" in PDBSNet.__doc__


@pytest.mark.parametrize("kw, msg", [
    ({"factor": 0}, "factor"),
    ({"width": 1}, "width"),
    ({"epochs": 0}, "epochs"),
    ({"scaling": "robust"}, "scaling"),
    ({"device": "tpu"}, "device"),
    ({"factor": 8, "crop_size": 16}, "crop_size"),
    ({"bogus": 1}, "no parameter"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(ParameterError, match=msg) as info:
        PDBSNet(**kw)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------ mechanics
@pytest.mark.torch
def test_blind_spot_and_receptive_field(crop):
    """No reconstructed pixel depends on its own input; a changed pixel changes the reconstruction up to the
    receptive radius (Chebyshev distance) and not beyond."""
    require("torch")
    X = np.ascontiguousarray(crop[0])
    valid = np.ones(X.shape[:2], bool)
    det = PDBSNet(**FAST).fit(X)
    R = det.receptive_radius()
    assert R == 15
    base = det.reconstruct(X, valid)
    X2 = X.copy()
    X2[20, 18] *= 1.5
    d = np.abs(det.reconstruct(X2, valid) - base).max(axis=2)
    yy, xx = np.mgrid[:X.shape[0], :X.shape[1]]
    dist = np.maximum(np.abs(yy - 20), np.abs(xx - 18))
    assert d[20, 18] == 0.0  # the blind spot
    assert d[dist > R].max() == 0.0
    assert d[dist == R].max() > 0.0
    # PD: only pixels of the changed pixel's phase sub-image (offsets multiples of `factor` = 3) see it
    assert d[((yy - 20) % 3 != 0) | ((xx - 18) % 3 != 0)].max() == 0.0


@pytest.mark.torch
def test_tiles_and_block_origin_do_not_show(crop):
    """Scored on 7-pixel network tiles, or as a block of another origin with the halo, a fitted model
    gives the whole-image scores up to float rounding (the batch PD is translation-equivariant)."""
    require("torch")
    X = np.ascontiguousarray(crop[0])
    valid = np.ones(X.shape[:2], bool)
    det = PDBSNet(**FAST).fit(X)
    ref = det._score(X, valid, Progress())
    det.NET_TILE = 7
    np.testing.assert_allclose(det._score(X, valid, Progress()), ref, rtol=1e-5, atol=1e-6 * ref.max())
    R = det.receptive_radius()
    sub = det._score(np.ascontiguousarray(X[2:, 4:]), valid[2:, 4:], Progress())
    np.testing.assert_allclose(sub[R:, R:], ref[2 + R:, 4 + R:], rtol=1e-5, atol=1e-6 * ref.max())


@pytest.mark.torch
def test_shape_dtype_and_invalid_pixels(crop):
    require("torch")
    cube = crop[0].copy()
    mask = np.ones(cube.shape[:2], bool)
    mask[:3, :] = False
    mask[10, 10] = False
    poisoned = cube.copy()
    poisoned[~mask] = 1e9  # values under the mask must not matter
    a = PDBSNet(**FAST).detect(cube, mask)
    b = PDBSNet(**FAST).detect(poisoned, mask)
    assert a.shape == mask.shape and a.dtype == np.float32
    assert np.isnan(a[~mask]).all() and np.isfinite(a[mask]).all()
    np.testing.assert_array_equal(a, b)


@pytest.mark.torch
def test_deterministic_for_a_seed(crop):
    require("torch")
    a = PDBSNet(**FAST).detect(crop[0])
    np.testing.assert_array_equal(PDBSNet(**FAST).detect(crop[0]), a)
    assert not np.array_equal(PDBSNet(seed=1, **FAST).detect(crop[0]), a)


@pytest.mark.torch
def test_tiny_image():
    require("torch")
    rng = np.random.default_rng(0)
    cube = rng.uniform(1.0, 2.0, size=(5, 4, 6))
    s = PDBSNet(**FAST).detect(cube)
    assert s.shape == (5, 4) and np.isfinite(s).all()


@pytest.mark.torch
def test_pickles_and_cuda_request(crop):
    torch = require("torch")
    det = PDBSNet(**FAST).fit(crop[0])
    ref = det.decision_function(crop[0])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(det)).decision_function(crop[0]), ref)
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="cuda"):
            PDBSNet(device="cuda", **FAST).detect(crop[0])


# ------------------------------------------------------------------------------------------ real scenes
@pytest.mark.torch
def test_streaming_engine_run():
    """The engine under a 64 MB budget (several blocks, each with the receptive-field halo): the same crops
    and nearly the same statistics as in memory, a sane AUC."""
    require("torch")
    from hadcore.engine import ArraySource, run

    cube, gt = load_scene("sandiego-lren")
    kw = dict(epochs=60, width=16, blocks=2, lr=3e-3)
    sink, info = run(PDBSNet(**kw), ArraySource(cube, None), mem_limit_mb=64)
    got = sink.array
    assert info.plan.n_blocks > 1 and got.shape == gt.shape and np.isfinite(got).all()
    auc = roc_auc(got, gt)
    assert auc > 0.93
    ref = PDBSNet(**kw).detect(cube)
    assert abs(auc - roc_auc(ref, gt)) < 0.01


#: default parameters, seed 0: measured AUC abu-airport-1 0.8916 (global RX 0.8221), hydice-162 0.9986
#: (global RX 0.9932); the floors lie a little below (seeds 1 and 2 gave 0.894 / 0.911 and 0.998 / 0.999)
@pytest.mark.torch
@pytest.mark.parametrize("scene, floor", [("abu-airport-1", 0.87), ("hydice-162", 0.995)])
def test_default_auc_floor(scene, floor):
    require("torch")
    cube, gt = load_scene(scene)
    assert roc_auc(PDBSNet().detect(cube), gt) > floor
