"""2S-GLRT: brute-force agreement, invariances, real-data ranking, bad input, determinism."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hadcore.detectors.glrt2s import GLRT2S
from hadcore.errors import InputError, ParameterError
from hadcore.linalg import mean_cov
from hadcore.registry import get_detector


def _brute(cube, r, c, inner, outer, q):
    """lambda_max(Z^T S^-1 Z) for one pixel, written directly (no Woodbury, no batching)."""
    H, W, B = cube.shape
    P = cube.reshape(-1, B)
    mu, cov = mean_cov(P)
    V = np.linalg.eigh(cov)[1][:, ::-1][:, :q]
    red = ((P - mu) @ V).reshape(H, W, q)
    h, hi = outer // 2, inner // 2
    Z, Y = [], []
    for i in range(max(r - h, 0), min(r + h + 1, H)):
        for j in range(max(c - h, 0), min(c + h + 1, W)):
            (Z if abs(i - r) <= hi and abs(j - c) <= hi else Y).append(red[i, j])
    Z, Y = np.array(Z).T, np.array(Y).T
    m = Y.mean(axis=1, keepdims=True)
    S = (Y - m) @ (Y - m).T / Y.shape[1]
    return np.linalg.eigvalsh((Z - m).T @ np.linalg.solve(S, Z - m)).max()


def test_matches_brute_force(small_crop):
    cube, _ = small_crop
    cube = cube.astype(np.float64)
    s = GLRT2S(inner=3, outer=11, n_components=8).detect(cube)
    for r, c in [(0, 0), (20, 20), (39, 5), (12, 33)]:
        assert s[r, c] == pytest.approx(_brute(cube, r, c, 3, 11, 8), rel=1e-3)


def test_uncentred_is_the_raw_zero_mean_statistic(small_crop):
    """centre=False with all components: lambda_max(Z^T (Y Y^T / L)^-1 Z) on the raw spectra (authors' code)."""
    cube, _ = small_crop
    cube = cube[:, :, ::20].astype(np.float64)  # 8-ish bands: the 112-pixel ring has full rank
    B = cube.shape[2]
    s = GLRT2S(inner=3, outer=11, n_components=B, centre=False, ridge=1e-12).detect(cube)
    centred = GLRT2S(inner=3, outer=11, n_components=B, ridge=1e-12).detect(cube)
    for r, c in [(20, 20), (12, 33), (0, 0)]:
        Z = cube[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].reshape(-1, B).T
        win = np.zeros(cube.shape[:2], bool)
        win[max(r - 5, 0):r + 6, max(c - 5, 0):c + 6] = True
        win[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2] = False
        Y = cube[win].T
        ref = np.linalg.eigvalsh(Z.T @ np.linalg.solve(Y @ Y.T / Y.shape[1], Z)).max()
        assert s[r, c] == pytest.approx(ref, rel=1e-6)
        assert s[r, c] != pytest.approx(centred[r, c], rel=1e-3)


def test_real_crop_ranks_anomalies(small_crop):
    cube, gt = small_crop
    s = get_detector("glrt2s").detect(cube)
    assert s.dtype == np.float32 and np.isfinite(s).all()
    assert roc_auc_score(gt.ravel(), s.ravel()) > 0.92


def test_affine_invariance_and_determinism(small_crop):
    cube, _ = small_crop
    det = GLRT2S(inner=3, outer=11, n_components=10)
    a = det.detect(cube)
    assert np.array_equal(a, det.detect(cube))
    # CFAR-type invariance: the statistic does not see gain and offset
    np.testing.assert_allclose(det.detect(cube * 3.0 + 50.0), a, rtol=1e-3, atol=1e-3 * np.nanmax(a))


def test_nodata_is_nan_and_ignored(small_crop):
    cube, _ = small_crop
    cube = cube.copy()
    cube[0:3, 0:3] = np.nan
    s = GLRT2S(inner=3, outer=11, n_components=10).detect(cube)
    assert np.isnan(s[0:3, 0:3]).all() and np.isfinite(s[3:, 3:]).all()


def test_bad_input():
    with pytest.raises(ParameterError, match="inner"):
        GLRT2S(inner=15, outer=9)
    with pytest.raises(ParameterError, match="odd"):
        GLRT2S(inner=2)
    with pytest.raises(ParameterError):
        GLRT2S(n_components=0)
    with pytest.raises(InputError):
        GLRT2S().detect(np.zeros((2, 2, 5)))


def test_ring_sums_skip_nodata_inside_the_windows(small_crop):
    """The ring statistics come from box sums (integral images): a nodata pixel inside a ring must leave it,
    exactly as if the ring were gathered pixel by pixel without it."""
    cube, _ = small_crop
    cube = cube.astype(np.float64).copy()
    holes = [(18, 22), (19, 22), (25, 17), (11, 30)]
    for r, c in holes:
        cube[r, c] = np.nan
    det = GLRT2S(inner=3, outer=11, n_components=6)
    s = det.detect(cube)
    H, W, B = cube.shape
    valid = np.isfinite(cube).all(axis=2)
    P = cube[valid]
    mu, cov = mean_cov(P)
    V = np.linalg.eigh(cov)[1][:, ::-1][:, :6]
    red = np.zeros((H, W, 6))
    red[valid] = (P - mu) @ V
    for r, c in [(20, 20), (24, 18), (12, 33), (0, 0)]:
        Z, Y = [], []
        for i in range(max(r - 5, 0), min(r + 6, H)):
            for j in range(max(c - 5, 0), min(c + 6, W)):
                if not valid[i, j]:
                    continue
                (Z if abs(i - r) <= 1 and abs(j - c) <= 1 else Y).append(red[i, j])
        Z, Y = np.array(Z).T, np.array(Y).T
        m = Y.mean(axis=1, keepdims=True)
        S = (Y - m) @ (Y - m).T / Y.shape[1]
        S += np.eye(6) * det.ridge * np.trace(S) / 6
        ref = np.linalg.eigvalsh((Z - m).T @ np.linalg.solve(S, Z - m)).max()
        assert s[r, c] == pytest.approx(ref, rel=1e-6), (r, c)
