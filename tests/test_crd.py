"""CRD: brute-force agreement, border rule, real-data ranking, bad input, determinism."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hadcore.detectors.crd import CRD
from hadcore.errors import InputError, ParameterError
from hadcore.registry import get_detector
from hadcore.detectors.windows import ring_index, ring_offsets


def _brute_crd(cube, mask, r, c, inner, outer, lam, row=None):
    """Direct per-pixel CRD (Li & Du 2015, eq. 6-7) with the clipped ring; ``row``: the sum-to-one row value."""
    H, W, _ = cube.shape
    h, hi = outer // 2, inner // 2
    ring = [cube[i, j] for i in range(r - h, r + h + 1) for j in range(c - h, c + h + 1)
            if 0 <= i < H and 0 <= j < W and mask[i, j] and (abs(i - r) > hi or abs(j - c) > hi)]
    y = cube[r, c]
    X = np.array(ring).T
    G = np.diag(np.linalg.norm(X - y[:, None], axis=0))
    Xs, ys = (X, y) if row is None else (np.vstack([X, np.full((1, X.shape[1]), row)]), np.append(y, row))
    a = np.linalg.solve(Xs.T @ Xs + lam * G.T @ G, Xs.T @ ys)
    return np.linalg.norm(y - X @ a)


def test_ring_border_rule():
    mask = np.ones((20, 20), bool)
    idx, ok = ring_index(mask, 3, 11, np.array([0, 10 * 20 + 10]))
    assert ok.shape == (2, len(ring_offsets(3, 11)[0])) == (2, 112)
    assert ok[0].sum() == 6 * 6 - 2 * 2  # corner: clipped window
    assert ok[1].sum() == 112
    mask[9, 9] = False  # an invalid pixel never enters a ring
    idx, ok = ring_index(mask, 1, 5, np.array([10 * 20 + 10]))
    assert 9 * 20 + 9 not in set(idx[0][ok[0]])
    assert ok.sum() == 23


def test_matches_brute_force(small_crop):
    cube, _ = small_crop
    cube = cube[:14, :14].astype(np.float64)
    mask = np.ones(cube.shape[:2], bool)
    mask[5, 6] = False
    det = CRD(inner=3, outer=7, lam=0.01)
    s = det.detect(cube, mask=mask)
    assert np.isnan(s[5, 6])
    for r, c in [(0, 0), (3, 13), (7, 7), (13, 2), (5, 5)]:
        ref = _brute_crd(cube, mask, r, c, 3, 7, 0.01)
        assert s[r, c] == pytest.approx(ref, rel=1e-4)


def test_sum_to_one_matches_brute_force_with_appended_row(small_crop):
    """sum_to_one appends a constant row equal to the value range of the valid pixels (authors' code)."""
    cube, _ = small_crop
    cube = cube[:14, :14].astype(np.float64)
    mask = np.ones(cube.shape[:2], bool)
    mask[5, 6] = False
    row = cube[mask].max() - cube[mask].min()
    s = CRD(inner=3, outer=7, lam=1e-3, sum_to_one=True).detect(cube, mask=mask)
    plain = CRD(inner=3, outer=7, lam=1e-3).detect(cube, mask=mask)
    assert not np.allclose(s[mask], plain[mask], rtol=1e-3)
    for r, c in [(0, 0), (7, 7), (13, 2)]:
        assert s[r, c] == pytest.approx(_brute_crd(cube, mask, r, c, 3, 7, 1e-3, row=row), rel=1e-4)


def test_real_crop_ranks_anomalies(small_crop):
    cube, gt = small_crop
    s = get_detector("crd").detect(cube)
    assert s.dtype == np.float32 and np.isfinite(s).all()
    assert roc_auc_score(gt.ravel(), s.ravel()) > 0.95


def test_scale_invariance_and_determinism(small_crop):
    cube, _ = small_crop
    det = CRD(inner=3, outer=9)
    a = det.detect(cube)
    assert np.array_equal(a, det.detect(cube))
    np.testing.assert_allclose(det.detect(cube * 7.0), 7.0 * a, rtol=1e-4)


def test_invalid_pixels_do_not_leak(small_crop):
    cube, _ = small_crop
    mask = np.ones(cube.shape[:2], bool)
    mask[20, 20] = False
    a = CRD(inner=3, outer=9).detect(cube, mask=mask)
    cube2 = cube.copy()
    cube2[20, 20] = 1e6
    b = CRD(inner=3, outer=9).detect(cube2, mask=mask)
    np.testing.assert_array_equal(a, b)


def test_bad_input():
    with pytest.raises(ParameterError, match="inner"):
        CRD(inner=11, outer=11)
    with pytest.raises(ParameterError, match="odd"):
        CRD(outer=10)
    with pytest.raises(ParameterError):
        CRD(lam=-1)
    with pytest.raises(InputError):
        CRD().detect(np.ones((10, 10)))


@pytest.mark.parametrize("inner,outer,sum_to_one", [(3, 11, False), (1, 5, True), (5, 9, False)])
def test_lag_products_equal_gathered_spectra(small_crop, inner, outer, sum_to_one):
    """The Gram matrices gathered from lag products (the default) equal those of gathered ring spectra,
    with invalid pixels, borders and both window shapes."""
    from hadcore.base import prepare_cube
    from hadcore.progress import Progress

    cube, _ = small_crop
    cube = cube[:23, :31]
    mask = np.ones(cube.shape[:2], bool)
    mask[4, 7] = mask[10, 0] = mask[22, 30] = False
    X, valid = prepare_cube(cube, mask)
    det = CRD(inner=inner, outer=outer, sum_to_one=sum_to_one)
    lags = det._detect(X, valid, Progress())
    det.MAX_LAGS = 0  # force the gathered-spectra path
    gathered = det._detect(X, valid, Progress())
    np.testing.assert_allclose(lags[valid], gathered[valid], rtol=1e-8)
    assert (lags[~valid] == 0).all()
