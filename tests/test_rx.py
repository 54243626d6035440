import numpy as np
import pytest
from conftest import SCENES, load_scene, manifest

import hadcore
from hadcore.errors import InputError
from hadcore.metrics import roc_auc


@pytest.mark.parametrize("scene", SCENES)
def test_rx_reproduces_manifest_auc(scene):
    expected = {r["scene"]: float(r["our_global_RX_AUC"]) for r in manifest()}[scene]
    cube, gt = load_scene(scene)
    scores = hadcore.get_detector("rx").detect(cube)
    assert scores.shape == gt.shape and scores.dtype == np.float32
    assert round(roc_auc(scores, gt), 3) == round(expected, 3)


def test_rx_matches_formula_and_the_mean_scores_zero():
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(149, 6)) @ rng.normal(size=(6, 6))
    m = rng.normal(size=6) * 10
    pix = np.vstack([m + Y, m - Y, m[None]])  # mean exactly m; the last pixel is the mean itself
    X = pix.reshape(13, 23, 6)
    s = hadcore.get_detector("rx").detect(X).ravel()
    d = pix - m
    ref = np.einsum("ij,jk,ik->i", d, np.linalg.inv(np.cov(pix, rowvar=False)), d)
    np.testing.assert_allclose(s, ref, rtol=1e-5, atol=1e-5)
    assert s[-1] == pytest.approx(0.0, abs=1e-5)
    assert s[:-1].min() > 0


def test_rx_handles_singular_covariance_constant_and_duplicate_bands(airport):
    cube, gt = airport
    cube = cube[:, :, :40].copy()
    base = roc_auc(hadcore.get_detector("rx").detect(cube), gt)
    extra = np.concatenate([cube, np.full(cube.shape[:2] + (1,), 7.0), cube[:, :, :3]], axis=2)
    s = hadcore.get_detector("rx").detect(extra)
    assert np.isfinite(s).all()
    assert roc_auc(s, gt) == pytest.approx(base, abs=1e-3)
    # more bands than pixels
    tiny = cube[:5, :5, :]
    assert np.isfinite(hadcore.get_detector("rx").detect(tiny)).all()
    assert np.isfinite(hadcore.get_detector("rx", ridge=1e-3).detect(extra)).all()


def test_invalid_pixels_are_nan_and_never_enter_statistics(airport):
    cube, _ = airport
    cube = cube[:, :, :30].copy()
    ref = hadcore.get_detector("rx").detect(cube[:50])
    poisoned = cube.copy()
    poisoned[50:] = 1e9  # excluded by the mask below: must not change the statistics
    poisoned[0, 0, 3] = np.nan
    mask = np.zeros(cube.shape[:2], bool)
    mask[:50] = True
    s = hadcore.get_detector("rx").detect(poisoned, mask)
    assert np.isnan(s[50:]).all() and np.isnan(s[0, 0])
    # the statistics changed only by dropping one pixel
    assert np.corrcoef(s[:50].ravel()[1:], ref.ravel()[1:])[0, 1] > 0.999


def test_bad_input_gives_one_line_errors():
    det = hadcore.get_detector("rx")
    with pytest.raises(InputError, match="at least 2 bands, got 1"):
        det.detect(np.ones((5, 5, 1)))
    with pytest.raises(InputError, match=r"shape \(H, W, B\)"):
        det.detect(np.ones((5, 5)))
    with pytest.raises(InputError, match="valid pixels"):
        det.detect(np.full((4, 4, 3), np.nan))
    with pytest.raises(InputError, match="mask shape"):
        det.detect(np.ones((4, 4, 3)), np.ones((3, 3), bool))
    with pytest.raises(InputError, match="real numbers"):
        det.detect(np.ones((4, 4, 3), complex))


def test_constant_image_gives_zero_scores():
    s = hadcore.get_detector("rx").detect(np.full((6, 6, 4), 3.0))
    np.testing.assert_array_equal(s, 0)
