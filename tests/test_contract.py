"""The detector contract, checked for every registered detector on a small real crop.

- (H, W) float32 out, NaN exactly at invalid pixels, finite elsewhere;
- invalid pixels never enter any statistic: poisoning them changes no valid score;
- a constant band (singular covariance) still gives finite scores;
- the same input and seed give the same output;
- bad input (1 band, no valid pixel) raises a one-line InputError.
"""

import numpy as np
import pytest
from conftest import load_scene

import hadcore
from hadcore.errors import InputError

#: parameters that keep the slow (trained) detectors quick on the 24 x 24 crop; behaviour, not quality
FAST = {"kdad": {"epochs": 5}, "gthad": {"epochs": 3, "embed": 16}, "pdbsnet": {"epochs": 5}}


def crop():
    cube, _ = load_scene("sandiego-lren")
    return cube[30:54, 40:64, ::8].astype(np.float64)  # 24 x 24 x 24


def make(name, **extra):
    return hadcore.get_detector(name, **{**FAST.get(name, {}), **extra})


@pytest.fixture(scope="module", params=hadcore.list_detectors())
def name(request):
    return request.param


def test_scores_mask_and_poisoned_invalid_pixels(name):
    cube = crop()
    mask = np.ones(cube.shape[:2], bool)
    mask[0:2, 0:3] = False
    mask[12, 12] = False
    a = make(name).detect(cube, mask)
    assert a.shape == mask.shape and a.dtype == np.float32
    assert np.isnan(a[~mask]).all() and np.isfinite(a[mask]).all()
    poisoned = cube.copy()
    poisoned[~mask] = 1e7
    poisoned[12, 12, 3] = np.nan
    b = make(name).detect(poisoned, mask)
    np.testing.assert_allclose(a[mask], b[mask], rtol=1e-5, atol=1e-6 * np.nanmax(np.abs(a)))


def test_constant_band_and_determinism(name):
    cube = crop()
    cube[:, :, 2] = 5.0
    a = make(name).detect(cube)
    assert np.isfinite(a).all()
    b = make(name).detect(cube)
    np.testing.assert_array_equal(a, b)


def test_bad_input(name):
    det = make(name)
    with pytest.raises(InputError, match="bands"):
        det.detect(np.ones((10, 10, 1)))
    with pytest.raises(InputError, match="valid pixels"):
        det.detect(np.full((10, 10, 6), np.nan))
