"""The detector contract, checked for every registered detector on a small real crop.

- (H, W) float32 out, NaN exactly at invalid pixels, finite elsewhere;
- invalid pixels never enter any statistic: poisoning them changes no valid score;
- a constant band (singular covariance) still gives finite scores;
- the same input and seed give the same output;
- bad input (1 band, no valid pixel) raises a one-line InputError;
- and the whole of :func:`hadcore.testing.check_detector` (the checks a third-party detector gets too: fit then
  score equals detect, streamed equals in-memory for the exact detectors, tiny inputs, ...).

Each detector runs with its ``test_params`` (declared on the class: quick on the 24 x 24 crop; behaviour, not
quality).
"""

import numpy as np
import pytest
from conftest import load_scene

import hadcore
from hadcore.errors import InputError
from hadcore.testing import CHECKS, check_detector


def crop():
    cube, _ = load_scene("sandiego-lren")
    return cube[30:54, 40:64, ::8].astype(np.float64)  # 24 x 24 x 24


def make(name, **extra):
    cls = hadcore.get_detector_class(name)
    return cls(**{**cls.test_params, **extra})


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


def test_test_params_are_declared_parameters(name):
    cls = hadcore.get_detector_class(name)
    assert isinstance(cls.test_params, dict)
    assert set(cls.test_params) <= {p.name for p in cls.params}, cls.test_params


def test_check_detector_on_the_real_crop(name):
    """Every check of hadcore.testing runs on every registered detector (streamed only for the exact ones)."""
    ran = check_detector(name, crop())
    expected = [c for c in CHECKS if c != "streamed" or make(name).context().exact]
    assert ran == expected
