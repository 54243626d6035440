import numpy as np
import pytest

import hadcore
from hadcore.errors import Cancelled, ParameterError
from hadcore.metrics import roc_auc
from hadcore.progress import Progress


def brute_force_lrx(cube, mask, inner, outer, ridge):
    """Per-pixel reference: gather the ring, np.cov, solve. Windows clipped at the border."""
    H, W, B = cube.shape
    ho, hi = outer // 2, inner // 2
    out = np.full((H, W), np.nan)
    for r in range(H):
        for c in range(W):
            if not mask[r, c]:
                continue
            ring = [cube[rr, cc]
                    for rr in range(max(r - ho, 0), min(r + ho + 1, H))
                    for cc in range(max(c - ho, 0), min(c + ho + 1, W))
                    if mask[rr, cc] and not (abs(rr - r) <= hi and abs(cc - c) <= hi)]
            if len(ring) < 2:
                continue
            Z = np.asarray(ring, dtype=np.float64)
            C = np.cov(Z, rowvar=False, ddof=1)
            C = C + ridge * np.trace(C) / B * np.eye(B)
            d = cube[r, c] - Z.mean(0)
            out[r, c] = d @ np.linalg.solve(C, d)
    return out


@pytest.mark.parametrize("inner,outer,tile", [(3, 7, 8), (1, 5, 128), (3, 9, 11), (5, 7, 16)])
def test_lrx_equals_brute_force_reference(small_crop, inner, outer, tile):
    cube, _ = small_crop
    cube = cube[5:25, 3:30, :12].astype(np.float64)
    mask = np.ones(cube.shape[:2], bool)
    mask[3, 4] = False
    mask[10:12, 7] = False
    cube[3, 4] = np.nan  # invalid pixels must not leak into any ring
    det = hadcore.get_detector("lrx", inner=inner, outer=outer, ridge=1e-3, tile=tile)
    s = det.detect(cube, mask)
    ref = brute_force_lrx(np.nan_to_num(cube), mask, inner, outer, 1e-3)
    np.testing.assert_array_equal(np.isnan(s), np.isnan(ref))
    ok = np.isfinite(ref)
    np.testing.assert_allclose(s[ok], ref[ok], rtol=1e-6)


def test_lrx_results_do_not_depend_on_tiling(small_crop):
    cube, _ = small_crop
    a = hadcore.get_detector("lrx", inner=3, outer=9, tile=8).detect(cube)
    b = hadcore.get_detector("lrx", inner=3, outer=9, tile=4096).detect(cube)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_lrx_finds_the_anomalies_of_a_real_crop(small_crop):
    cube, gt = small_crop
    s = hadcore.get_detector("lrx", inner=5, outer=13).detect(cube)
    assert np.isfinite(s).all()
    assert roc_auc(s, gt) > 0.9


def test_lrx_declares_its_halo_and_rejects_bad_windows():
    assert hadcore.get_detector("lrx", inner=3, outer=17).context().halo == 8
    with pytest.raises(ParameterError, match="odd"):
        hadcore.get_detector("lrx", outer=16)
    with pytest.raises(ParameterError, match="inner window must be smaller than the outer"):
        hadcore.get_detector("lrx", inner=7, outer=7)


def test_lrx_can_be_cancelled_and_reports_progress(small_crop):
    cube, _ = small_crop
    seen = []
    hadcore.get_detector("lrx").detect(cube, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen) and len(seen) > 10
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        hadcore.get_detector("lrx").detect(cube, progress=Progress(lambda f, m: None, stop))
