"""LRASR: dictionary, solver constraint, real-data ranking, bad input, determinism."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hadcore.detectors.lrasr import LRASR, background_dictionary, lrasr_solve
from hadcore.errors import InputError, ParameterError
from hadcore.registry import get_detector


@pytest.fixture(scope="module")
def crop_scores(small_crop):
    cube, gt = small_crop
    return cube, gt, get_detector("lrasr").detect(cube)


def test_dictionary_skips_small_clusters(small_crop):
    cube, _ = small_crop
    P = cube.reshape(-1, cube.shape[2]).astype(np.float64)
    # plant 5 identical exotic pixels: K-means isolates them in a cluster smaller than P = 20
    planted = np.arange(0, 500, 100)
    P[planted] = P.mean(axis=0) * np.linspace(0.2, 3.0, P.shape[1])
    D = background_dictionary(P, 15, 20, seed=0)
    assert D.shape[0] == cube.shape[2] and D.shape[1] % 20 == 0 and D.shape[1] > 0
    atoms = {tuple(a) for a in D.T}
    is_atom = np.array([tuple(p) in atoms for p in P])
    assert is_atom.sum() >= D.shape[1]  # every atom is a scene pixel
    assert not is_atom[planted].any()


def test_solver_satisfies_constraint(small_crop):
    cube, _ = small_crop
    X = cube.reshape(-1, cube.shape[2]).astype(np.float64).T
    X = X / np.abs(X).max()
    D = background_dictionary(X.T, 5, 10, seed=0)
    S, E, it = lrasr_solve(X, D, 0.1, 1.0, tol=1e-7, max_iter=500)
    assert it < 500
    assert np.abs(X - D @ S - E).max() < 1e-6


def test_real_crop_ranks_anomalies(crop_scores):
    cube, gt, s = crop_scores
    assert s.dtype == np.float32 and np.isfinite(s).all() and (s >= 0).all()
    assert roc_auc_score(gt.ravel(), s.ravel()) > 0.9


def test_deterministic(crop_scores):
    cube, _, s = crop_scores
    assert np.array_equal(s, LRASR().detect(cube))


def test_bad_input(small_crop):
    cube, _ = small_crop
    with pytest.raises(ParameterError, match="lam"):
        LRASR(lam=0)
    with pytest.raises(ParameterError):
        LRASR(n_clusters=0)
    with pytest.raises(InputError, match="n_clusters"):
        LRASR(n_clusters=20).detect(cube[:3, :3])
    with pytest.raises(InputError):
        LRASR().detect(np.ones(10))
