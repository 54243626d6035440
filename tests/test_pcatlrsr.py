"""PCA-TLRSR: the t-SVD building blocks against direct references, AUC on real scenes, masks, bad input,
determinism and a run through the streaming engine."""

import numpy as np
import pytest
from conftest import load_scene

from hadcore.detectors.pcatlrsr import PCATLRSR, tlrsr_solve, tnn_prox, tube_weights
from hadcore.engine import ArraySource, run
from hadcore.errors import InputError, ParameterError
from hadcore.metrics import roc_auc


def _to_f(T):
    return np.ascontiguousarray(np.moveaxis(np.fft.rfft(T, axis=2), 2, 0))


def _from_f(Tf, k):
    return np.fft.irfft(np.moveaxis(Tf, 0, 2), n=k, axis=2)


@pytest.mark.parametrize("shape", [(7, 5, 6), (5, 8, 5), (6, 6, 1), (4, 9, 2)])
@pytest.mark.parametrize("reweight", [0, 2])
def test_tnn_prox_is_the_slice_wise_svd_threshold(shape, reweight):
    # reference: full FFT along the third mode, an SVD per frontal slice, inverse FFT
    T = np.random.default_rng(1).standard_normal(shape)
    k, tau = shape[2], 1.3
    F = np.fft.fft(T, axis=2)
    out = np.empty_like(F)
    for f in range(k):
        U, s, Vh = np.linalg.svd(F[:, :, f], full_matrices=False)
        w = s[min(reweight, s.size) - 1] / s if reweight else 1.0
        out[:, :, f] = (U * np.maximum(s - tau * w, 0.0)) @ Vh
    ref = np.fft.ifft(out, axis=2).real
    got = _from_f(tnn_prox(_to_f(T), tau, reweight), k)
    np.testing.assert_allclose(got, ref, atol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_tube_weights_give_the_tube_norms(k):
    T = np.random.default_rng(2).standard_normal((3, 4, k))
    Tf = _to_f(T)
    np.testing.assert_allclose(np.einsum("f,fij->ij", tube_weights(k), np.abs(Tf) ** 2), (T ** 2).sum(axis=2))


def test_tlrsr_puts_an_outlying_pixel_in_e():
    # a background of tubal rank 2 (t-product of random factors), its own dictionary, one outlying pixel
    rng = np.random.default_rng(3)
    k = 4
    Pf, Qf = _to_f(rng.standard_normal((20, 2, k))), _to_f(rng.standard_normal((2, 15, k)))
    A = _from_f(Pf @ Qf, k)
    X = A.copy()
    X[2, 3] += 3.0
    Xf, Af = _to_f(X), _to_f(A)
    E, it = tlrsr_solve(Xf, Af, tube_weights(k), 0.3, np.zeros((20, 15), bool), max_iter=300, tol=1e-8)
    assert it < 300  # converged
    n = np.sqrt((_from_f(E, k) ** 2).sum(axis=2))
    assert np.unravel_index(np.argmax(n), n.shape) == (2, 3)
    assert np.median(n) < 1e-2 * n.max()


# measured with the defaults: abu-airport-1 0.9309, sandiego-lren 0.9706, pavia-100 0.9921
@pytest.mark.parametrize("scene,floor", [("abu-airport-1", 0.92), ("sandiego-lren", 0.96), ("pavia-100", 0.985)])
def test_auc_floor(scene, floor):
    cube, gt = load_scene(scene)
    s = PCATLRSR().detect(cube)
    assert s.shape == gt.shape and s.dtype == np.float32 and np.isfinite(s).all() and (s >= 0).all()
    assert roc_auc(s, gt) > floor


def test_mask_and_poisoned_invalid_pixels(small_crop):
    cube, gt = small_crop
    mask = np.ones(gt.shape, bool)
    mask[5:9, 5:9] = False
    a = PCATLRSR().detect(cube, mask)
    assert np.isnan(a[~mask]).all() and np.isfinite(a[mask]).all()
    poisoned = cube.astype(np.float64)
    poisoned[~mask] = 1e7
    b = PCATLRSR().detect(poisoned, mask)
    np.testing.assert_allclose(a[mask], b[mask], rtol=1e-5, atol=1e-7)


def test_deterministic_and_options_run(small_crop):
    cube, gt = small_crop
    a = PCATLRSR().detect(cube)
    np.testing.assert_array_equal(a, PCATLRSR().detect(cube))
    for kw in ({"scaling": "minmax"}, {"reweight": 5}, {"n_components": 1000}):  # 1000 clips to 30 bands
        s = PCATLRSR(max_iter=30, **kw).detect(cube)
        assert np.isfinite(s).all() and roc_auc(s, gt) > 0.8


def test_bad_parameters():
    with pytest.raises(ParameterError, match="rho"):
        PCATLRSR(rho=0.5)
    with pytest.raises(ParameterError, match="scaling"):
        PCATLRSR(scaling="zscore")
    with pytest.raises(ParameterError, match="n_components"):
        PCATLRSR(n_components=0)
    with pytest.raises(ParameterError, match="overlap"):
        PCATLRSR(tile=20, overlap=16)
    with pytest.raises(ParameterError, match="no parameter"):
        PCATLRSR(lambda_=1.0)


def test_degenerate_input():
    rng = np.random.default_rng(4)
    with pytest.raises(InputError, match="bands"):
        PCATLRSR().detect(np.ones((10, 10, 1)))
    cube = rng.random((12, 12, 6)) + 1.0
    cube[:, :, 2] = 5.0  # a constant band: no variance along it
    s = PCATLRSR().detect(cube)
    assert np.isfinite(s).all()
    np.testing.assert_array_equal(PCATLRSR().detect(np.full((6, 6, 4), 3.0)), 0.0)  # nothing stands out
    tiny = PCATLRSR().detect(rng.random((3, 3, 5)) + 1.0)
    assert tiny.shape == (3, 3) and np.isfinite(tiny).all()


def test_streaming_engine():
    cube, gt = load_scene("abu-urban-1")
    ref = PCATLRSR().detect(cube)
    # one tile (the scene is smaller than the default tile): the engine gives exactly the in-memory scores
    sink, _ = run(PCATLRSR(), ArraySource(cube, None), mem_limit_mb=256)
    np.testing.assert_allclose(sink.array, ref, rtol=1e-6, atol=1e-9)
    # four blended 64-pixel tiles under 64 MB (measured AUC 0.9955; whole scene 0.9947)
    sink, info = run(PCATLRSR(tile=64, overlap=8), ArraySource(cube, None), mem_limit_mb=64)
    s = sink.array
    assert s.shape == gt.shape and np.isfinite(s).all()
    assert roc_auc(s, gt) > 0.98
