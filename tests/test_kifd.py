"""KIFD: real-data ranking, local refinement, bad input, determinism."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hadcore.detectors.kifd import KIFD
from hadcore.errors import InputError, ParameterError
from hadcore.registry import get_detector


@pytest.fixture(scope="module")
def crop_scores(small_crop):
    cube, gt = small_crop
    return cube, gt, get_detector("kifd").detect(cube)


def test_real_crop_ranks_anomalies(crop_scores):
    cube, gt, s = crop_scores
    assert s.dtype == np.float32 and np.isfinite(s).all()
    # isolation-forest scores lie in (0, 1]
    assert s.min() > 0 and s.max() <= 1
    assert roc_auc_score(gt.ravel(), s.ravel()) > 0.93


def test_deterministic_and_seeded(small_crop):
    cube, _ = small_crop
    s = KIFD(n_trees=50, n_fit=300).detect(cube)
    assert np.array_equal(s, KIFD(n_trees=50, n_fit=300).detect(cube))
    assert not np.array_equal(s, KIFD(n_trees=50, n_fit=300, seed=1).detect(cube))


def test_refinement_only_touches_candidates(crop_scores):
    cube, _, s = crop_scores
    g = KIFD(n_refine=0).detect(cube)
    changed = s != g
    # only the top candidate_fraction of pixels (1 % -> 16 of 1600) may be rescored locally
    assert 0 < changed.sum() <= int(0.01 * s.size)
    assert (g[changed] >= np.sort(g.ravel())[-int(0.01 * s.size)]).all()


def test_scale_free(small_crop):
    cube, _ = small_crop
    a = KIFD(n_refine=0, n_trees=50).detect(cube)
    b = KIFD(n_refine=0, n_trees=50).detect(cube * 10.0)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_bad_input():
    with pytest.raises(ParameterError, match="candidate_fraction"):
        KIFD(candidate_fraction=0.9)
    with pytest.raises(ParameterError):
        KIFD(n_components=0)
    with pytest.raises(ParameterError, match="seed"):
        KIFD(seed=-1)
    with pytest.raises(InputError):
        KIFD().detect(np.ones((5, 5, 1)))
