"""AED on real data: a small crop, the morphology against a brute-force reference, bad input, determinism."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from hadcore.detectors.aed import AED, area_closing, area_opening, recursive_filter
from hadcore.errors import InputError, ParameterError
from hadcore.metrics import roc_auc


def _brute_area_opening(f, area):
    """Definition: the highest level at which the pixel lies in a 4-connected component of >= area pixels."""
    out = np.full(f.shape, f.min())
    for t in np.unique(f):
        lab, _ = ndi.label(f >= t)
        sizes = np.bincount(lab.ravel())
        keep = (lab > 0) & (sizes[lab] >= area)
        out[keep] = np.maximum(out[keep], t)
    return out


def test_area_opening_matches_definition(small_crop):
    cube, _ = small_crop
    # quantised real band (plateaus included) and a random image
    band = np.round(cube[:20, :20, 5] / 200.0)
    rng = np.random.default_rng(1)
    for f, area in ((band, 9), (band, 25), (rng.integers(0, 5, (15, 17)).astype(float), 6)):
        np.testing.assert_array_equal(area_opening(f, area), _brute_area_opening(f, area))
        np.testing.assert_array_equal(area_closing(f, area), -_brute_area_opening(-f, area))
    # opening is anti-extensive, closing extensive
    assert (area_opening(band, 9) <= band).all() and (area_closing(band, 9) >= band).all()


def test_recursive_filter_invariants():
    rng = np.random.default_rng(2)
    const = np.full((20, 30), 3.5)
    np.testing.assert_allclose(recursive_filter(const, rng.random((20, 30, 2)), 5.0, 0.5), 3.5)
    # a strong guide edge blocks smoothing across it
    img = np.zeros((20, 30))
    img[:, 15:] = 1.0
    guide = img[:, :, None].copy()
    out = recursive_filter(img, guide, 5.0, 0.01)
    assert out[:, :15].max() < 0.05 and out[:, 15:].min() > 0.95
    blurred = recursive_filter(img, np.zeros((20, 30, 1)), 5.0, 0.01)
    assert blurred[:, 14].mean() > 0.2


def test_small_crop_ranks_anomalies_high(small_crop):
    cube, gt = small_crop
    s = AED().detect(cube)
    assert s.shape == gt.shape and np.isfinite(s).all()
    assert roc_auc(s, gt) > 0.95  # global RX on this crop: 0.938
    assert s[gt > 0].mean() > 2 * s[gt == 0].mean()


def test_mask(small_crop):
    cube, gt = small_crop
    mask = np.ones(gt.shape, bool)
    mask[:, :4] = False
    s = AED().detect(cube, mask)
    assert np.isnan(s[:, :4]).all() and np.isfinite(s[:, 4:]).all()
    cube2 = cube.copy()
    cube2[:, :4] = 1e6
    np.testing.assert_allclose(AED().detect(cube2, mask)[:, 4:], s[:, 4:], rtol=1e-6)


def test_bad_input():
    with pytest.raises(InputError):
        AED().detect(np.ones((4, 4, 3, 2)))
    with pytest.raises(ParameterError, match="area"):
        AED(area=1)
    with pytest.raises(ParameterError, match="sigma_r"):
        AED(sigma_r=0)


def test_deterministic(small_crop):
    cube, _ = small_crop
    np.testing.assert_array_equal(AED().detect(cube), AED().detect(cube))
