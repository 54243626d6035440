import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hadcore.errors import InputError
from hadcore.metrics import evaluate, normalize_scores, roc_auc, roc_curve


def test_hand_computed_case():
    # anomalies score 4 and 2; background 0, 1, 2, 3
    s = np.array([[4.0, 2.0, 0.0], [1.0, 2.0, 3.0]])
    g = np.array([[1, 1, 0], [0, 0, 0]])
    m = evaluate(s, g)
    # pairs (anomaly > background): 4 beats 4 of 4; 2 beats 0 and 1, ties 2 (half), loses to 3 -> 2.5
    assert m["auc_pd_pf"] == pytest.approx((4 + 2.5) / 8)
    # normalised: anomalies 1.0, 0.5 -> mean 0.75; background 0, .25, .5, .75 -> 0.375
    assert m["auc_pd_tau"] == pytest.approx(0.75)
    assert m["auc_pf_tau"] == pytest.approx(0.375)
    assert m["auc_bs"] == pytest.approx(6.5 / 8 - 0.375)
    assert m["snpr"] == pytest.approx(2.0)
    assert m["snpr_db"] == pytest.approx(10 * np.log10(2.0))


def test_auc_matches_sklearn_with_ties_and_ignores_invalid():
    rng = np.random.default_rng(3)
    s = rng.integers(0, 5, size=(30, 30)).astype(float)
    g = (rng.random((30, 30)) < 0.1).astype(np.uint8)
    assert roc_auc(s, g) == pytest.approx(roc_auc_score(g.ravel(), s.ravel()))
    s2 = s.copy()
    s2[0, :] = np.nan
    mask = np.ones_like(g, bool)
    mask[1, :] = False
    keep = np.isfinite(s2) & mask
    assert roc_auc(s2, g, mask) == pytest.approx(roc_auc_score(g[keep], s2[keep]))


def test_threshold_sweep_limit_equals_closed_form():
    rng = np.random.default_rng(4)
    s = rng.gamma(2.0, size=(40, 40))
    g = (rng.random((40, 40)) < 0.05).astype(int)
    n = normalize_scores(s)
    taus = np.linspace(0, 1, 30001)
    pd_tau = np.array([(n[g == 1] >= t).mean() for t in taus[::100]])
    area = np.mean(pd_tau)  # Riemann sum on a uniform grid over [0, 1]
    assert area == pytest.approx(evaluate(s, g)["auc_pd_tau"], abs=5e-3)


def test_roc_curve_is_monotone_and_its_area_is_the_auc():
    rng = np.random.default_rng(5)
    s = rng.normal(size=500)
    g = (rng.random(500) < 0.2).astype(int)
    s[g == 1] += 1
    pf, pd_, thr = roc_curve(s, g)
    assert pf[0] == 0 and pd_[0] == 0 and pf[-1] == 1 and pd_[-1] == 1
    assert (np.diff(pf) >= 0).all() and (np.diff(pd_) >= 0).all() and (np.diff(thr) < 0).all()
    area = float(np.sum(np.diff(pf) * (pd_[1:] + pd_[:-1]) / 2))
    assert area == pytest.approx(roc_auc(s, g))


def test_metrics_reject_degenerate_ground_truth():
    with pytest.raises(InputError, match="both anomaly and background"):
        evaluate(np.ones((3, 3)), np.zeros((3, 3)))
    with pytest.raises(InputError, match="does not match"):
        evaluate(np.ones((3, 3)), np.zeros((2, 3)))
