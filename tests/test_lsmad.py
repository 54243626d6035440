"""LSMAD on real data: a small crop, GoDec invariants, bad input, determinism."""

import numpy as np
import pytest

from hadcore.detectors.lsmad import LSMAD, godec
from hadcore.errors import InputError, ParameterError
from hadcore.metrics import roc_auc
from hadcore.registry import get_detector


def test_small_crop_ranks_anomalies_high(small_crop):
    cube, gt = small_crop
    s = LSMAD().detect(cube)
    assert s.shape == gt.shape and s.dtype == np.float32
    assert np.isfinite(s).all()
    assert (s >= 0).all()  # squared Mahalanobis distance
    assert roc_auc(s, gt) > 0.95  # global RX on this crop: 0.938
    assert s[gt > 0].mean() > 3 * s[gt == 0].mean()


def test_godec_invariants(small_crop):
    cube, _ = small_crop
    X = cube.reshape(-1, cube.shape[2]).astype(np.float64) / cube.max()
    card = 200
    L, S = godec(X, 2, card, max_iter=20)
    assert np.linalg.matrix_rank(L, tol=1e-8 * np.abs(L).max()) == 2
    assert np.count_nonzero(S) <= card
    # S holds exactly the entries of X - L where it is non-zero
    nz = S != 0
    assert np.allclose(S[nz], (X - L)[nz])
    # without a sparse part, L is the best rank-2 approximation (Eckart-Young)
    L0, S0 = godec(X, 2, 0, max_iter=3)
    U, sv, Vt = np.linalg.svd(X, full_matrices=False)
    assert not S0.any()
    assert np.allclose(L0, (U[:, :2] * sv[:2]) @ Vt[:2], atol=1e-9)


def test_mask_and_invalid_pixels(small_crop):
    cube, gt = small_crop
    mask = np.ones(gt.shape, bool)
    mask[:5] = False
    cube = cube.copy()
    cube[6, 6, 3] = np.nan
    s = LSMAD().detect(cube, mask)
    assert np.isnan(s[:5]).all() and np.isnan(s[6, 6])
    assert np.isfinite(s[5:][~np.isnan(cube[5:]).any(axis=2)]).all()
    # invalid pixels never enter a statistic: garbage there changes nothing
    cube2 = cube.copy()
    cube2[:5] = 1e6
    s2 = LSMAD().detect(cube2, mask)
    np.testing.assert_array_equal(np.isnan(s), np.isnan(s2))
    np.testing.assert_allclose(s[~np.isnan(s)], s2[~np.isnan(s2)], rtol=1e-5)


def test_bad_input():
    with pytest.raises(InputError, match="shape"):
        LSMAD().detect(np.ones((10, 10)))
    with pytest.raises(ParameterError, match="rank"):
        LSMAD(rank=0)
    with pytest.raises(ParameterError, match="sparse_fraction"):
        get_detector("lsmad", sparse_fraction="lots")
    rng = np.random.default_rng(0)
    with pytest.raises(ParameterError, match="band count 5"):
        LSMAD(rank=5).detect(rng.random((8, 8, 5)) + 1)


def test_deterministic(small_crop):
    cube, _ = small_crop
    np.testing.assert_array_equal(LSMAD().detect(cube), LSMAD().detect(cube))
