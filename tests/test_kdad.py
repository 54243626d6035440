"""KDAD: each stage's shapes and contract, the ablation switches, determinism, a small end-to-end scene."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import hadcore
from conftest import require, streamed_in_blocks
from hadcore.detectors.kdad import (KDAD, adm_scores, cluster_classes, pca_reduce, spatial_information_map,
                                    weight_matrix)
from hadcore.errors import Cancelled, ParameterError
from hadcore.progress import Progress
from hadcore.registry import get_detector

FAST = dict(epochs=6, width=8, latent=4, p=8, q=4)


# ------------------------------------------------------------------------------------------ numpy stages
def _spam_brute(cube, mask, r, c, inner, outer, dual):
    mu = cube[mask].mean(axis=0)
    x = cube[r, c] - mu
    ro, ri = outer // 2, (inner // 2 if dual else 0)
    sims = []
    for i in range(r - ro, r + ro + 1):
        for j in range(c - ro, c + ro + 1):
            if max(abs(i - r), abs(j - c)) <= ri:
                continue
            if 0 <= i < cube.shape[0] and 0 <= j < cube.shape[1] and mask[i, j]:
                y = cube[i, j] - mu
                sims.append(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
    return 1.0 - np.mean(sims)


def test_spam_matches_brute_force_including_borders_and_mask(small_crop):
    cube = small_crop[0].astype(np.float64)
    mask = np.ones(cube.shape[:2], bool)
    mask[10, 12] = False
    cube[10, 12] = 0.0
    for dual, inner in ((True, 5), (False, 5), (True, 3)):
        spam = spatial_information_map(cube, mask, inner, 7, dual=dual)
        assert spam.shape == mask.shape and np.isfinite(spam).all()
        for r, c in ((0, 0), (1, 39), (11, 12), (20, 20), (39, 5)):
            assert spam[r, c] == pytest.approx(_spam_brute(cube, mask, r, c, inner, 7, dual), abs=1e-10)
        assert spam[10, 12] == 0.0


def test_spam_singles_out_an_isolated_pixel(small_crop):
    # two real background spectra (left / right half) and one pixel of a third, target spectrum
    spectra = small_crop[0].reshape(-1, small_crop[0].shape[2]).astype(np.float64)
    s1, s2, s3 = spectra[0], spectra[-1], spectra[np.argmax(small_crop[1].ravel())]
    cube = np.where(np.arange(40)[None, :, None] < 20, s1, s2) * np.ones((40, 40, 1))
    cube = cube * (1 + 1e-3 * np.random.default_rng(0).standard_normal(cube.shape))
    cube[20, 8] = s3
    spam = spatial_information_map(cube, np.ones((40, 40), bool))
    left = spam[:, :16]  # pixels whose window stays in the left half
    assert np.unravel_index(np.argmax(left), left.shape) == (20, 8)
    assert spam[20, 8] > 10 * np.median(left)


def test_pca_reduce_keeps_the_variance_and_whitens(airport):
    X = airport[0].reshape(-1, airport[0].shape[2]).astype(np.float64)
    Z, d = pca_reduce(X, 0.95, 1)
    Z99, d99 = pca_reduce(X, 0.999, 1)
    assert 1 <= d < d99 <= X.shape[1]
    assert Z.shape == (X.shape[0], d)
    np.testing.assert_allclose(Z.std(axis=0, ddof=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-8)
    assert pca_reduce(X, 0.95, 25)[1] == max(d, 25)


def test_cluster_classes_by_size():
    labels = np.repeat([0, 1, 2, 3], [60, 20, 15, 5])  # fractions .6 .2 .15 .05
    assert list(cluster_classes(labels, 4, 0.25, 0.15)) == [2, 1, 1, 0]
    # no cluster reaches a: the largest is background
    labels = np.repeat([0, 1, 2, 3, 4], 20)
    assert cluster_classes(labels, 5, 0.25, 0.15)[0] == 2


def test_weight_matrix_ranges():
    rng = np.random.default_rng(1)
    F = np.vstack([rng.normal(0, 1, (900, 3)), rng.normal(12, 1, (30, 3))])
    w = weight_matrix(F, k=2, a=0.25, b=0.15, seed=0)
    assert w.shape == (930,) and np.all((w >= 0) & (w <= 1))
    assert np.all(w[:900] >= 0.5)  # background candidates: [0.5, 1]
    assert np.all(w[900:] <= 0.5)  # the small cluster: anomaly candidates, [0, 0.5]
    assert w[:900].max() == pytest.approx(1.0) and w[:900].min() == pytest.approx(0.5)


@pytest.mark.parametrize("degree", ["mahal", "cos", "maxcos"])
def test_adm_ranks_the_anomalies_of_a_real_crop(small_crop, degree):
    cube, gt = small_crop
    Z, _ = pca_reduce(cube.reshape(-1, cube.shape[2]).astype(np.float64), 0.999, 10)
    s = adm_scores(Z, k=5, seed=0, degree=degree)
    assert s.shape == (Z.shape[0],) and np.isfinite(s).all()
    assert roc_auc_score(gt.ravel(), s) > 0.8


# ------------------------------------------------------------------------------------------ declarations
def test_registered_and_declared():
    det = get_detector("kdad", epochs=3)
    assert isinstance(det, KDAD) and det.epochs == 3 and det.family == "deep" and det.trains
    ctx = det.context()
    assert not ctx.whole_scene and ctx.global_stats and ctx.scaling == "sample" and not ctx.exact
    assert (ctx.crops, ctx.crop_size, ctx.seed) == (64, 32, 0) and get_detector("kdad", seed=3).context().seed == 3
    # the halo is the receptive field: SPAM 3 + SSFM encoder 4 + student 3 conv + 5 x 5 pooling 2
    assert ctx.halo == det.receptive_radius() == 12
    assert KDAD(distill=False).receptive_radius() == 14 and KDAD(ssfm=False).receptive_radius() == 5
    assert KDAD(outer=9, inner=3, patch=7).receptive_radius() == 4 + 4 + 3 + 3
    d = KDAD.describe()
    names = {p["name"] for p in d["params"]}
    assert {"ssfm", "window", "branches", "distill", "weights", "apn", "final", "device", "seed"} <= names


@pytest.mark.parametrize("kw, msg", [
    ({"inner": 7, "outer": 7}, "inner"),
    ({"a": 0.1, "b": 0.2}, "'b'"),
    ({"outer": 8}, "outer"),
    ({"device": "tpu"}, "device"),
    ({"weights": "learned"}, "weights"),
    ({"bogus": 1}, "no parameter"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(ParameterError, match=msg):
        KDAD(**kw)


# ------------------------------------------------------------------------------------------ torch pipeline
@pytest.fixture(scope="module")
def crop_stages(small_crop):
    require("torch")
    return KDAD(**FAST).stages(small_crop[0])


def test_stage_shapes(crop_stages, small_crop):
    H, W = small_crop[1].shape
    st = crop_stages
    d = st["pca"].shape[2]
    assert d == 20  # min_components (95 % of the variance needs fewer here)
    assert st["spam"].shape == (H, W)
    # keep_spectral: X_fusion = [PCA image, 2 x latent SSFM maps]
    assert st["fusion"].shape == (H, W, d + 2 * FAST["latent"])
    assert st["residual"].shape == st["fusion"].shape
    assert st["E"].shape == (H, W, 2 * st["fusion"].shape[2])  # eq. 27
    np.testing.assert_array_equal(st["E"][..., : st["fusion"].shape[2]], st["fusion"])
    assert st["weights"].min() >= 0 and st["weights"].max() <= 1
    assert st["scores"].shape == (H, W) and np.isfinite(st["scores"]).all()


def test_deterministic_for_a_seed(small_crop, crop_stages):
    require("torch")
    again = KDAD(**FAST).stages(small_crop[0])
    np.testing.assert_array_equal(again["scores"], crop_stages["scores"])
    other = KDAD(seed=1, **FAST).stages(small_crop[0])
    assert not np.array_equal(other["fusion"], crop_stages["fusion"])


def test_invalid_pixels_are_nan_and_never_used(small_crop):
    require("torch")
    cube = small_crop[0].copy()
    mask = np.ones(cube.shape[:2], bool)
    mask[:3, :] = False
    poisoned = cube.copy()
    poisoned[:3, :] = 1e9  # values under the mask must not matter
    a = KDAD(**FAST).detect(cube, mask)
    b = KDAD(**FAST).detect(poisoned, mask)
    assert np.isnan(a[:3]).all() and np.isfinite(a[3:]).all()
    np.testing.assert_array_equal(a, b)


ABLATIONS = [
    {"ssfm": False},
    {"window": "single"},
    {"branches": "single"},
    {"distill": False},
    {"weights": "none"},
    {"weights": "recon"},
    {"apn": False},
    {"final": "rx"},
    {"degree": "cos"},
]


@pytest.mark.parametrize("switch", ABLATIONS, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_ablation_switches_change_the_pipeline(small_crop, crop_stages, switch):
    require("torch")
    st = KDAD(**FAST, **switch).stages(small_crop[0])
    assert st["scores"].shape == crop_stages["scores"].shape and np.isfinite(st["scores"]).all()
    assert not np.allclose(st["scores"], crop_stages["scores"])
    if switch == {"ssfm": False}:
        np.testing.assert_array_equal(st["fusion"], st["pca"])
    if switch == {"weights": "none"}:
        assert np.all(st["weights"] == 1.0)


def test_cancellation_is_honoured(small_crop):
    require("torch")
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        KDAD(**FAST).detect(small_crop[0], progress=Progress(is_cancelled=cancelled))


def test_cuda_request_without_a_gpu_is_a_parameter_error(small_crop):
    torch = require("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ParameterError, match="cuda"):
        KDAD(device="cuda", **FAST).detect(small_crop[0])


# ------------------------------------------------------------------------------------------ end to end
def test_end_to_end_airport_beats_global_rx(airport):
    """The whole scene with the default parameters: KDAD ranks the planes better than global RX."""
    require("torch")
    from hadcore.detectors.rx import RX
    from hadcore.metrics import evaluate

    cube, gt = airport
    m_kdad = evaluate(KDAD().detect(cube), gt)
    m_rx = evaluate(RX().detect(cube), gt)
    assert m_kdad["auc_pd_pf"] > m_rx["auc_pd_pf"] + 0.03
    assert m_kdad["auc_bs"] > m_rx["auc_bs"]


def test_end_to_end_synthetic_thermal_scene():
    """A small thermal-infrared scene (110 bands, 8.06-11.22 um): KDAD finds the targets at least as well
    as global RX, whose whitening hides the temperature targets."""
    require("torch")
    from hadcore.detectors.rx import RX
    from hadcore.synthetic import thermal_scene

    s = thermal_scene(height=64, width=64, n_targets=10, target_kind="mixed", delta_t=5.0, seed=7)
    a_kdad = roc_auc_score(s.gt.ravel(), KDAD().detect(s.cube).ravel())
    a_rx = roc_auc_score(s.gt.ravel(), RX().detect(s.cube).ravel())
    assert a_kdad > 0.85
    assert a_kdad > a_rx


def test_flat_scene_gives_flat_finite_scores():
    require("torch")
    cube = np.ones((6, 6, 4)) * np.arange(1, 5)
    s = KDAD(**FAST).detect(cube)
    assert np.isfinite(s).all() and np.ptp(s) == 0


# ------------------------------------------------------------------------------------------ fit / score, streaming
def _blockwise(det, cube, block):
    """Scores of a fitted detector assembled from ``block`` x ``block`` windows, each read with the
    detector's halo (engine.score_window, as the engine's score pass does)."""
    from hadcore import engine

    src = engine.ArraySource(cube)
    out = np.full(cube.shape[:2], np.nan, dtype=np.float32)
    H, W = cube.shape[:2]
    for r in range(0, H, block):
        for c in range(0, W, block):
            (r0, _, c0, _), s = engine.score_window(det, src, (r, min(r + block, H), c, min(c + block, W)),
                                                    det.context().halo)
            out[r0:r0 + s.shape[0], c0:c0 + s.shape[1]] = s
    return out


@pytest.mark.parametrize("switch", [{}, {"distill": False}, {"ssfm": False}, {"window": "single", "patch": 3}],
                         ids=["default", "wae", "no_ssfm", "single_window"])
def test_block_seams_do_not_show(small_crop, switch):
    """A fitted model scored on 7 x 7 blocks with the receptive-field halo equals the whole-image scores up to
    float rounding (the halo covers SPAM, the SSFM encoder, the student or teacher and the pooling)."""
    require("torch")
    cube = small_crop[0].astype(np.float64)
    det = KDAD(**FAST, **switch).fit(cube)
    ref = det.decision_function(cube)
    got = _blockwise(det, cube, 7)
    scale = float(np.nanmax(np.abs(ref)))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * scale)
    # the halo is the receptive field, no more and no less: one changed pixel changes the scores up to
    # that (Chebyshev) distance and not beyond
    from hadcore.progress import Progress

    X = np.ascontiguousarray(cube)
    valid = np.ones(X.shape[:2], bool)
    base = det._score(X, valid, Progress())
    X2 = X.copy()
    X2[20, 20] *= 1.5
    d = np.abs(det._score(X2, valid, Progress()) - base) / np.abs(base).max()
    yy, xx = np.mgrid[:40, :40]
    dist = np.maximum(np.abs(yy - 20), np.abs(xx - 20))
    R = det.receptive_radius()
    assert d[dist > R].max() <= 1e-12  # beyond it, bitwise the same scores
    assert d[dist == R].max() > 1e-12  # the outermost ring weighs little (1e-8 of the range), but counts


def test_sampled_crops_fit_and_score_any_block(airport):
    """A scene larger than crops x crop_size^2: the networks, z-scores and K-means are fitted on the crops
    and applied to every block, seamlessly."""
    require("torch")
    from hadcore.engine import crop_windows

    cube, gt = airport
    kw = dict(FAST, crops=3, crop_size=32)
    assert len(crop_windows(cube.shape, 3, 32, 0)) == 3
    det = KDAD(**kw)
    ref = det.detect(cube)
    assert len(det.crop_weights_) == 3 and det.crop_weights_[0].shape == (32, 32)
    scale = float(np.nanmax(np.abs(ref)))
    np.testing.assert_allclose(_blockwise(det, cube, 30), ref, rtol=1e-4, atol=1e-5 * scale)
    assert roc_auc_score(gt.ravel(), ref.ravel()) > 0.8
    # streamed: the same crops; the statistics merged from other blocks round differently, which the
    # training may amplify, so the scores agree closely but not to float rounding
    got, info = streamed_in_blocks(KDAD(**kw), cube, max_blocks=64)
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.95
    assert abs(roc_auc_score(gt.ravel(), got.ravel()) - roc_auc_score(gt.ravel(), ref.ravel())) < 0.02
    # another seed draws other crops
    assert crop_windows(cube.shape, 3, 32, 1) != crop_windows(cube.shape, 3, 32, 0)


def test_fitted_detector_pickles_and_scores_blocks(small_crop):
    require("torch")
    import pickle

    cube = small_crop[0]
    det = KDAD(**FAST).fit(cube)
    ref = det.decision_function(cube)
    again = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(again.decision_function(cube), ref)
    np.testing.assert_array_equal(KDAD(**FAST).detect(cube), ref)


#: the nine-scene check runs 18 fits: fewer epochs and narrower networks than the defaults keep it near a
#: minute on 2 cores; it checks the streaming, not the quality of the defaults
NINE = dict(epochs=10, width=8, latent=4)


def test_nine_scenes_streamed_mean_auc_within_0_01_of_in_memory():
    require("torch")
    from conftest import SCENES, load_scene

    a_mem, a_str = [], []
    for name in SCENES:
        cube, gt = load_scene(name)
        a_mem.append(roc_auc_score(gt.ravel(), KDAD(**NINE).detect(cube).ravel()))
        got, _ = streamed_in_blocks(KDAD(**NINE), cube, max_blocks=16)
        a_str.append(roc_auc_score(gt.ravel(), got.ravel()))
    assert abs(np.mean(a_str) - np.mean(a_mem)) < 0.01
    assert np.mean(a_mem) > 0.94
