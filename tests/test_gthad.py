"""GT-HAD: the spectral input, the block geometry, the gated attention, determinism, tiling, a real scene."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import hadcore
from conftest import load_scene, require
from hadcore.detectors.gthad_nets import BLOCK, STRIDE, block_geometry
from hadcore.detectors.gthad import GTHAD, SpectralBasis
from hadcore.errors import Cancelled, ParameterError
from hadcore.progress import Progress
from hadcore.registry import get_detector

#: quick settings: behaviour, not quality
FAST = dict(epochs=4, search_every=2, embed=16)


# ------------------------------------------------------------------------------------------ numpy parts
def _moments(X):
    P = X.reshape(-1, X.shape[2])
    return P.mean(axis=0), np.cov(P, rowvar=False), float(P.min()), float(P.max())


def test_spectral_basis_is_a_rotation_plus_the_energy_outside(small_crop):
    X = small_crop[0].astype(np.float64)
    mask = np.ones(X.shape[:2], bool)
    mean, cov, lo, hi = _moments(X)
    basis = SpectralBasis(mean, cov, lo, hi, 8)
    Y, outside = basis(X, mask)
    assert Y.shape == X.shape[:2] + (8,) and Y.dtype == np.float32 and outside.shape == X.shape[:2]
    D = (X - lo) / (hi - lo) - (mean - lo) / (hi - lo)
    energy = (D ** 2).sum(axis=2)
    # squared distances of the scaled spectra = inside (the network's input) + outside
    np.testing.assert_allclose((Y.astype(np.float64) ** 2).sum(axis=2) + outside, energy, rtol=2e-5, atol=1e-9)
    assert np.all(outside >= 0)
    # the leading components hold most of the energy
    assert outside.sum() < 0.2 * energy.sum()
    # every component kept: the scaled bands themselves (the paper's input), nothing outside
    full = SpectralBasis(mean, cov, lo, hi, 0)
    Yf, out_f = full(X, mask)
    assert out_f is None and Yf.shape == X.shape
    np.testing.assert_allclose(Yf, (X - lo) / (hi - lo), rtol=1e-6, atol=1e-6)
    assert Yf.min() >= 0 and Yf.max() <= 1 + 1e-6


def test_spectral_basis_zeroes_invalid_pixels(small_crop):
    X = small_crop[0].astype(np.float64)
    mask = np.ones(X.shape[:2], bool)
    mask[3, 4] = False
    X[3, 4] = 0.0
    basis = SpectralBasis(*_moments(X), 6)
    Y, outside = basis(X, mask)
    assert np.all(Y[3, 4] == 0) and outside[3, 4] == 0


@pytest.mark.parametrize("H, W", [(100, 100), (80, 100), (24, 24), (10, 13), (1, 5)])
def test_block_geometry_covers_the_image(H, W):
    (left, right, top, bottom), nr, nc = block_geometry(H, W)
    assert (nr, nc) == (-(-H // STRIDE), -(-W // STRIDE))
    # the padded image holds exactly the block grid: (n - 1) * stride + block
    assert top + H + bottom == (nr - 1) * STRIDE + BLOCK and left + W + right == (nc - 1) * STRIDE + BLOCK
    assert 0 <= top <= bottom <= top + 1 and 0 <= left <= right <= left + 1
    # 100 x 100: 34 x 34 = 1156 blocks, 8 pixels of padding (the public code's same_padding)
    if (H, W) == (100, 100):
        assert nr * nc == 1156 and top + bottom == 8


# ------------------------------------------------------------------------------------------ declarations
def test_registered_and_declared():
    det = get_detector("gthad", epochs=3)
    assert isinstance(det, GTHAD) and det.epochs == 3 and det.family == "deep" and det.trains
    ctx = det.context()
    assert ctx.global_stats and ctx.scaling == "sample" and not ctx.exact
    assert (ctx.crops, ctx.crop_size, ctx.halo, ctx.seed) == (4, 128, 16, 0)
    assert get_detector("gthad", halo=24, seed=3).context().halo == 24
    names = {p["name"] for p in GTHAD.describe()["params"]}
    assert {"components", "embed", "heads", "head_on", "tail_kernel", "epochs", "pixel_epochs", "search_every",
            "gating", "lr",
            "batch", "pool", "device", "crops", "crop_size", "halo", "seed"} <= names
    assert "Lian" in GTHAD.reference and "TNNLS" in GTHAD.describe()["doc"]


@pytest.mark.parametrize("kw, msg", [
    ({"embed": 33}, "embed"),
    ({"halo": 4}, "halo"),
    ({"tail_kernel": 2}, "tail_kernel"),
    ({"heads": "3,2"}, "heads"),
    ({"heads": "3,3"}, "heads"),
    ({"heads": "x"}, "heads"),
    ({"heads": ""}, "heads"),
    ({"head_on": "pixel"}, "head_on"),
    ({"pool": "yes"}, "pool"),
    ({"combine": "max"}, "combine"),
    ({"device": "tpu"}, "device"),
    ({"epochs": 0}, "epochs"),
    ({"pixel_epochs": -1}, "pixel_epochs"),
    ({"bogus": 1}, "no parameter"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(ParameterError, match=msg):
        GTHAD(**kw)


# ------------------------------------------------------------------------------------------ torch
@pytest.mark.torch
def test_the_anomaly_focus_branch_never_attends_to_itself():
    torch = require("torch")
    from hadcore.detectors.gthad_nets import build

    ns = build()
    torch.manual_seed(0)
    net = ns.GatedTransformer(5, 16)
    img = torch.randn(1, 5, 9, 9)
    V, Q = net.cells(img)
    assert V.shape == (9, 9 * 16) and Q.shape == (9, 9 * 8)
    V, Q = V[None], Q[None]  # one block of 9 cells
    V2 = V.clone()
    V2[0, 4] += 100.0  # the centre patch's own values
    for gate, moved in ((0.0, False), (1.0, True)):
        g = torch.tensor([gate])
        with torch.no_grad():
            a, b = net.attend(V, Q, g), net.attend(V2, Q, g)
        change = float((a[0, 4] - b[0, 4]).abs().max())
        # AFB (gate 0): the centre patch is rebuilt from the other 8 only; BFB (gate 1): itself too
        assert (change > 1e-3) == moved, (gate, change)
    out = net.blocks(V, Q, torch.tensor([0.0]))
    assert out.shape == (1, 5, BLOCK, BLOCK)
    # about 0.26 M parameters at the paper's sizes (205 bands, embedding 64)
    n = sum(p.numel() for p in ns.GatedTransformer(205, 64).parameters())
    assert 0.24e6 < n < 0.27e6


@pytest.mark.torch
def test_the_head_on_blocks_sees_only_its_block():
    """head_on='block' (the public code): the head convolution runs on each 9 x 9 block with zero padding at
    its edges. A 1 x 1 head is the same map either way; a 3 x 3 head agrees with the image head inside the
    block and differs on its border, where the image head sees the neighbouring pixels."""
    torch = require("torch")
    from hadcore.detectors.gthad_nets import build

    ns = build()
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(21, 24, 5)).astype(np.float32)
    im = ns.Image(Y, np.ones((21, 24), bool), None, torch.device("cpu"))
    b = torch.arange(im.N)
    with pytest.raises(ValueError, match="head_on"):
        ns.GatedTransformer(5, 16, head_on="pixel")
    for k in (1, 3):
        torch.manual_seed(0)
        on_image = ns.GatedTransformer(5, 16, head_kernel=k, head_on="image")
        on_block = ns.GatedTransformer(5, 16, head_kernel=k, head_on="block")
        on_block.load_state_dict(on_image.state_dict())
        with torch.no_grad():
            Vi, Qi = on_image.tokens(im, b)
            Vb, Qb = on_block.tokens(im, b)
        assert Vb.shape == Vi.shape == (im.N, 9, 9 * 16) and Qb.shape == Qi.shape
        # pixel (y, x) of patch p: token features [p, (3 y + x) e : (3 y + x + 1) e]
        px = lambda V: V.reshape(im.N, 3, 3, 3, 3, 16).permute(0, 1, 3, 2, 4, 5).reshape(im.N, 9, 9, 16)
        diff = (px(Vi) - px(Vb)).abs().amax(dim=(0, 3))
        if k == 1:
            assert float(diff.max()) < 1e-5
        else:
            assert float(diff[1:-1, 1:-1].max()) < 1e-5 and float(diff[0].min()) > 1e-3
            assert float(diff[:, 0].min()) > 1e-3 and float(diff[-1].min()) > 1e-3


@pytest.fixture(scope="module")
def crop_scores(small_crop):
    require("torch")
    return GTHAD(**FAST).detect(small_crop[0])


@pytest.mark.torch
def test_scores_shape_and_determinism(crop_scores, small_crop):
    s = crop_scores
    assert s.shape == small_crop[1].shape and s.dtype == np.float32 and np.isfinite(s).all()
    assert np.all(s >= 0)
    np.testing.assert_array_equal(GTHAD(**FAST).detect(small_crop[0]), s)
    assert not np.array_equal(GTHAD(seed=1, **FAST).detect(small_crop[0]), s)


@pytest.mark.torch
def test_invalid_pixels_never_enter(small_crop):
    require("torch")
    cube = small_crop[0].astype(np.float64)
    mask = np.ones(cube.shape[:2], bool)
    mask[5:8, 10:13] = False
    mask[0, 0] = False
    a = GTHAD(**FAST).detect(cube, mask)
    poisoned = cube.copy()
    poisoned[~mask] = 1e6
    b = GTHAD(**FAST).detect(poisoned, mask)
    assert np.isnan(a[~mask]).all() and np.isfinite(a[mask]).all()
    np.testing.assert_array_equal(a, b)


@pytest.mark.torch
def test_content_matching_routes_blocks(small_crop):
    require("torch")
    off = GTHAD(gating=False, **FAST)
    off.detect(small_crop[0])
    assert off.bfb_blocks_ == [0, 0]  # one count per network (heads 3 and 1)
    on = GTHAD(**{**FAST, "epochs": 6, "search_every": 2})
    s_on = on.detect(small_crop[0])
    n_blocks = np.prod(block_geometry(40, 40)[1:])
    assert all(0 <= n <= n_blocks for n in on.bfb_blocks_)
    no_search = GTHAD(**{**FAST, "search_every": 0})
    np.testing.assert_array_equal(no_search.detect(small_crop[0]), off.detect(small_crop[0]))
    assert np.isfinite(s_on).all()


@pytest.mark.torch
def test_two_heads_average_two_networks(small_crop):
    """heads='3,1' (the default): the score is the geometric mean of the scores of one network per head
    side, each trained from the same seed as it would be alone; pool='wide' pools the 3 x 3 one only."""
    require("torch")
    cube = small_crop[0]
    both = GTHAD(**FAST).detect(cube).astype(np.float64)
    three = GTHAD(heads="3", **FAST).detect(cube).astype(np.float64)  # pooled (pool='wide')
    one = GTHAD(heads="1", **FAST).detect(cube).astype(np.float64)  # not pooled
    np.testing.assert_allclose(both, np.sqrt(three * one), rtol=1e-5, atol=1e-9)
    mean = GTHAD(combine="mean", **FAST).detect(cube).astype(np.float64)
    np.testing.assert_allclose(mean, (three + one) / 2, rtol=1e-5, atol=1e-7)
    assert not np.allclose(three, one)
    assert not np.allclose(GTHAD(heads="3", pool="none", **FAST).detect(cube), three)
    np.testing.assert_array_equal(GTHAD(heads="1", pool="wide", **FAST).detect(cube),
                                  GTHAD(heads="1", pool="none", **FAST).detect(cube))
    # a 1 x 1 head is the same map on blocks and on the image
    np.testing.assert_allclose(GTHAD(heads="1", head_on="image", **FAST).detect(cube), one, rtol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("stop", [4, 5])
def test_a_snapshot_during_training_is_a_shorter_run(small_crop, stop):
    """What bench/gthad_epochs.py relies on: the network after E of a longer run's epochs, scored with the
    gates a run of E epochs ends with (it skips the content matching of its last epoch), is that run."""
    require("torch")
    cube = small_crop[0]
    kw = dict(FAST, epochs=6, search_every=2, heads="3")
    det = GTHAD(**kw)
    ns, _ = det._nets()
    train, snap = ns.train, {}

    def snapshot_train(net, images, **k):
        prev = [None]

        def hook(ep, gates):
            g = prev[0] if ep % det.search_every == 0 and prev[0] is not None else gates[0]
            prev[0] = gates[0]
            if ep == stop:
                snap["S"] = ns.score(net, images[0], g, det._pools(net))[0]
                net.train()
        return train(net, images, on_epoch=hook, **k)

    ns.train = snapshot_train
    try:
        longer = det.detect(cube)
    finally:
        ns.train = train
    shorter = GTHAD(**{**kw, "epochs": stop}).detect(cube)
    np.testing.assert_allclose(snap["S"].astype(np.float32), shorter, rtol=1e-6, atol=0)
    assert not np.allclose(longer, shorter)


@pytest.mark.torch
def test_the_per_pixel_network_trains_at_most_pixel_epochs(small_crop):
    """pixel_epochs caps the training of the 1 x 1 network only; the 3 x 3 one trains ``epochs``."""
    require("torch")
    cube = small_crop[0]
    kw = dict(FAST, epochs=6)
    assert GTHAD(**kw, pixel_epochs=4).net_epochs(1) == 4 and GTHAD(**kw, pixel_epochs=4).net_epochs(3) == 6
    assert GTHAD(**kw, pixel_epochs=0).net_epochs(1) == 6 and GTHAD(**kw, pixel_epochs=9).net_epochs(1) == 6
    one = GTHAD(**{**kw, "heads": "1"}, pixel_epochs=4).detect(cube)
    np.testing.assert_array_equal(one, GTHAD(**{**kw, "heads": "1", "epochs": 4}, pixel_epochs=0).detect(cube))
    assert not np.array_equal(one, GTHAD(**{**kw, "heads": "1"}, pixel_epochs=0).detect(cube))
    np.testing.assert_array_equal(GTHAD(**{**kw, "heads": "3"}, pixel_epochs=4).detect(cube),
                                  GTHAD(**{**kw, "heads": "3"}, pixel_epochs=0).detect(cube))


@pytest.mark.torch
def test_every_band_as_the_paper(small_crop):
    require("torch")
    s = GTHAD(components=0, **FAST).detect(small_crop[0])
    assert np.isfinite(s).all() and s.shape == small_crop[1].shape


@pytest.mark.torch
def test_cancel_and_missing_cuda(small_crop):
    torch = require("torch")
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        GTHAD(**FAST).detect(small_crop[0], progress=Progress(is_cancelled=cancelled))
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="cuda"):
            GTHAD(device="cuda", **FAST).detect(small_crop[0])


@pytest.mark.torch
def test_a_small_scene_is_trained_whole_and_streams_as_in_memory(small_crop):
    require("torch")
    from hadcore.engine import ArraySource, run

    cube = small_crop[0].astype(np.float64)
    det = GTHAD(**FAST)
    a = det.detect(cube)
    assert det.whole_ is not None  # 40 x 40 <= 4 crops of 128: the scene itself is the training image
    sink, _ = run(GTHAD(**FAST), ArraySource(cube), mem_limit_mb=256)
    np.testing.assert_allclose(a, sink.array, rtol=1e-4, atol=1e-6)


@pytest.mark.torch
def test_a_large_scene_is_fitted_on_crops_and_scored_by_tiles(small_crop):
    """Crops smaller than the scene: the network trains on them only, and every tile of a block is routed
    by its own content matching; streamed with small blocks it detects as in memory."""
    require("torch")
    from hadcore.engine import ArraySource, run

    cube, gt = small_crop[0].astype(np.float64), small_crop[1]
    kw = dict(FAST, epochs=8, crops=2, crop_size=20, halo=9)
    det = GTHAD(**kw)
    det.NET_TILE = 16  # several tiles inside the 40 x 40 crop
    a = det.detect(cube)
    assert det.whole_ is None and np.isfinite(a).all() and np.all(a >= 0)
    streamed = GTHAD(**kw)
    streamed.NET_TILE = 16
    from hadcore import engine

    B = cube.shape[2]
    side = 12 + 2 * streamed.halo
    mb = (engine.block_cost(streamed, side, side, B, B) + streamed.state_bytes(B) + 2 * B * B * 8) / engine.MB
    sink, info = run(streamed, ArraySource(cube), mem_limit_mb=mb * 1.05)
    assert info.plan.n_blocks > 1
    b = sink.array
    assert np.isfinite(b).all()
    # the same fitted model (same crops, seed); tiles differ only where block and tile borders differ
    assert roc_auc_score(gt.ravel(), a.ravel()) > 0.7
    assert abs(roc_auc_score(gt.ravel(), a.ravel()) - roc_auc_score(gt.ravel(), b.ravel())) < 0.05
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


@pytest.mark.torch
@pytest.mark.slow
def test_a_real_scene_beats_rx():
    """abu-airport-1 (global RX 0.8221), 30 epochs at embedding 32 (about 15 s on 2 CPU cores)."""
    require("torch")
    cube, gt = load_scene("abu-airport-1")
    s = hadcore.get_detector("gthad", epochs=30, embed=32).detect(cube)
    assert roc_auc_score(gt.ravel(), s.ravel()) > 0.9
