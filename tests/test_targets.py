"""Target detection statistics (hadcore.targets, issue 26): the published formulas, checked against SPy on the
same background statistics (rtol 1e-6) and on targets implanted in a real scene."""

import numpy as np
import pytest
from conftest import load_scene

from hadcore.errors import ParameterError
from hadcore.metrics import roc_auc
from hadcore.targets import ace, cem, matched_filter, mf_zscore, sid, spectral_angle

spectral = pytest.importorskip("spectral")


@pytest.fixture(scope="module")
def scene():
    cube, gt = load_scene("abu-urban-1")
    X = cube[:, :, ::4].astype(np.float64)  # 51 bands: quick, and a well-conditioned covariance
    return X, gt


def test_ace_and_mf_equal_spy_on_the_same_statistics(scene):
    X, gt = scene
    stats = spectral.calc_stats(X)
    t = X[gt.astype(bool)].mean(axis=0)  # the anomalies' mean spectrum as the target
    P = X.reshape(-1, X.shape[2])
    ours = ace(P, t, stats.mean, stats.cov).reshape(gt.shape)
    np.testing.assert_allclose(ours, spectral.ace(X, t, background=stats), rtol=1e-6, atol=1e-12)
    ours = matched_filter(P, t, stats.mean, stats.cov).reshape(gt.shape)
    np.testing.assert_allclose(ours, spectral.matched_filter(X, t, background=stats), rtol=1e-6, atol=1e-9)
    # subspace ACE: two targets
    T = np.stack([t, X[gt.astype(bool)][0]])
    np.testing.assert_allclose(ace(P, T, stats.mean, stats.cov).reshape(gt.shape),
                               spectral.ace(X, T, background=stats), rtol=1e-6, atol=1e-12)


def test_mf_scores_the_target_one_and_its_zscore_is_standard_normal_on_gaussian_data():
    rng = np.random.default_rng(0)
    B = 20
    A = rng.normal(size=(B, B))
    cov = A @ A.T + B * np.eye(B)
    mean = rng.normal(size=B) * 10
    X = rng.multivariate_normal(mean, cov, size=20000)
    t = mean + 5 * rng.normal(size=B)
    assert matched_filter(t[None], t, mean, cov)[0] == pytest.approx(1.0)
    z = mf_zscore(X, t, mean, cov)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_implanted_subpixel_targets_are_found(scene):
    X, gt = scene
    rng = np.random.default_rng(1)
    H, W, B = X.shape
    other, ogt = load_scene("abu-beach-1")  # another scene's anomaly spectrum, on this scene's band count
    src = other[ogt.astype(bool)].mean(0).astype(np.float64)
    t = np.interp(np.linspace(0, 1, B), np.linspace(0, 1, src.size), src)
    truth = np.zeros((H, W), bool)
    idx = rng.choice(np.flatnonzero(~gt.astype(bool).ravel()), 30, replace=False)
    truth.ravel()[idx] = True
    Y = X.copy().reshape(-1, B)
    Y[idx] = 0.7 * Y[idx] + 0.3 * t  # 30 % fill
    mean, cov = Y.mean(0), np.cov(Y, rowvar=False)
    R = Y.T @ Y / Y.shape[0]
    for name, s in [("ace", ace(Y, t, mean, cov)), ("mf", matched_filter(Y, t, mean, cov)), ("cem", cem(Y, t, R)),
                    ("sam", -spectral_angle(Y, t))]:
        auc = roc_auc(s.reshape(H, W), truth)
        assert auc > (0.9 if name == "sam" else 0.99), (name, auc)


def test_cem_sam_sid_follow_their_formulas(scene):
    X, _ = scene
    P = X.reshape(-1, X.shape[2])[:500]
    t = P[17]
    R = P.T @ P / P.shape[0]
    Ri = np.linalg.inv(R)
    np.testing.assert_allclose(cem(P, t, R), P @ Ri @ t / (t @ Ri @ t), rtol=1e-6)
    cos = P @ t / (np.linalg.norm(P, axis=1) * np.linalg.norm(t))
    np.testing.assert_allclose(spectral_angle(P, t), np.arccos(np.clip(cos, -1, 1)), atol=1e-7)
    np.testing.assert_allclose(spectral_angle(P[:5], t),
                               spectral.spectral_angles(P[:5][None], t[None])[0, :, 0], atol=1e-7)
    Q = P + 1.0 - P.min()
    tq = Q[17]
    p, q = Q / Q.sum(1, keepdims=True), tq / tq.sum()
    np.testing.assert_allclose(sid(Q, tq), (p * np.log(p / q)).sum(1) + (q * np.log(q / p)).sum(1), rtol=1e-9)
    assert sid(Q, tq)[17] == pytest.approx(0.0, abs=1e-12)


def test_bad_targets_are_one_line(scene):
    X, _ = scene
    P = X.reshape(-1, X.shape[2])
    mean, cov = P.mean(0), np.cov(P, rowvar=False)
    with pytest.raises(ParameterError, match="equals the background mean") as e:
        ace(P, mean, mean, cov)
    assert "\n" not in str(e.value)
    with pytest.raises(ParameterError, match="positive spectra"):
        sid(P - mean, P[0])
    with pytest.raises(ParameterError, match="disagree"):
        matched_filter(P, P[0], mean[:-1], cov)
