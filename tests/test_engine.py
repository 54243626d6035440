"""The streaming engine: mergeable statistics, bounded samples, plans under a budget, and exactness of the
detectors that declare it (streamed scores equal in-memory scores with tiny blocks that force many seams)."""

import numpy as np
import pytest
from conftest import load_scene

import hadcore
from hadcore import engine
from hadcore.engine import ArraySource, blend_weights, plan_blocks, run
from hadcore.errors import InputError, ParameterError
from hadcore.stats import Moments, PixelSample, merge_all


def budget_for(det, side, B):
    """A budget (MB) that holds one block of ``side`` pixels plus the halo, and not much more."""
    h = det.context().halo
    c = engine.block_cost(det, side + 2 * h, side + 2 * h, B, B) + det.state_bytes(B) + 2 * B * B * 8
    return c / engine.MB * 1.05


# ------------------------------------------------------------------------------------------------ statistics
def test_moments_merge_in_any_order_equals_one_pass():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 7)) * 50 + 1e4  # a large offset: the centred update must not cancel
    parts = np.array_split(X, [13, 800, 801, 3000])
    fwd = merge_all([Moments.of(p) for p in parts])
    rev = Moments.empty(7)
    for p in reversed(parts):
        rev = Moments.of(p).merge(rev)
    for m in (fwd, rev):
        assert m.n == 5000
        np.testing.assert_allclose(m.mean, X.mean(0), rtol=1e-13)
        np.testing.assert_allclose(m.cov(), np.cov(X, rowvar=False), rtol=1e-9)
        np.testing.assert_array_equal(m.minimum, X.min(0))
        np.testing.assert_array_equal(m.maximum, X.max(0))


def test_pixel_sample_does_not_depend_on_the_block_layout():
    rng = np.random.default_rng(1)
    cube = rng.normal(size=(60, 50, 3))
    valid = rng.random((60, 50)) > 0.1
    whole = PixelSample.of_block(cube, valid, 0, 0, 50, 200, seed=5).sorted()
    parts = []
    for r0, r1 in ((0, 7), (7, 33), (33, 60)):
        for c0, c1 in ((0, 21), (21, 50)):
            parts.append(PixelSample.of_block(cube[r0:r1, c0:c1], valid[r0:r1, c0:c1], r0, c0, 50, 200, seed=5))
    tiled = merge_all(parts[::-1]).sorted()
    np.testing.assert_array_equal(whole.index, tiled.index)
    np.testing.assert_array_equal(whole.pixels, tiled.pixels)
    assert len(whole) == 200 and valid.ravel()[whole.index].all()
    other = PixelSample.of_block(cube, valid, 0, 0, 50, 200, seed=6).sorted()
    assert not np.array_equal(other.index, whole.index)
    # a scene smaller than the sample is taken whole, in row-major order
    small = PixelSample.of_block(cube, valid, 0, 0, 50, 10**6, seed=5).sorted()
    np.testing.assert_array_equal(small.pixels, cube[valid])


def test_blend_weights_of_overlapping_tiles_sum_to_one():
    H, W, halo = 50, 37, 4
    acc = np.zeros((H, W))
    for r0, r1 in engine._split(H, 16):
        for c0, c1 in engine._split(W, 16):
            R0, R1, C0, C1 = engine.halo_window((r0, r1, c0, c1), halo, H, W)
            acc[R0:R1, C0:C1] += blend_weights((R0, R1, C0, C1), halo, H, W)
    np.testing.assert_allclose(acc, 1.0)


# ------------------------------------------------------------------------------------------------ plans
def test_plan_respects_the_budget_and_names_the_smallest_one():
    det = hadcore.get_detector("lrx", inner=3, outer=9)
    shape = (400, 300, 50)
    big = plan_blocks(det, shape, 2048 * engine.MB)
    small = plan_blocks(det, shape, 64 * engine.MB)
    assert big.n_blocks < small.n_blocks
    for p in (big, small):
        assert p.block_bytes <= p.budget
        covered = np.zeros(shape[:2], int)
        for r0, r1, c0, c1 in p.score_windows:
            covered[r0:r1, c0:c1] += 1
        assert (covered == 1).all()
    with pytest.raises(InputError, match=r"smallest budget that works is (\d+) MB") as ei:
        plan_blocks(det, shape, 1 * engine.MB)
    need = int(__import__("re").search(r"works is (\d+) MB", str(ei.value)).group(1))
    plan_blocks(det, shape, need * engine.MB)  # and that budget does work


def test_reduce_spec():
    assert engine.parse_reduce("pca:30") == ("pca", 30)
    assert engine.parse_reduce(None) is None
    for bad in ("pca", "pca:0", "ica:3", "pca:x"):
        with pytest.raises(ParameterError):
            engine.parse_reduce(bad)


# ------------------------------------------------------------------------------------------------ exactness
EXACT = [
    ("rx", {}),
    ("lrx", {"inner": 3, "outer": 9, "tile": 16}),
    ("crd", {"inner": 3, "outer": 7}),
    ("glrt2s", {"inner": 3, "outer": 9, "n_components": 10}),
]


@pytest.mark.parametrize("name,params", EXACT)
def test_exact_detectors_streamed_equal_in_memory(name, params):
    cube, gt = load_scene("abu-beach-1")
    cube = np.ascontiguousarray(cube[:, :, ::6])  # 100 x 100 x ~32: quick
    cube[3, 4] = np.nan  # invalid pixels inside blocks and on seams
    cube[40:43, 20] = 0.0
    det = hadcore.get_detector(name, **params)
    ref = det.detect(cube)
    B = cube.shape[2]
    assert det.context().exact
    sink, info = run(hadcore.get_detector(name, **params), ArraySource(cube), mem_limit_mb=budget_for(det, 12, B))
    assert info.plan.n_blocks >= 9, info.plan.n_blocks  # tiny blocks: many seams
    out = sink.array
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6 * np.nanmax(np.abs(ref)), equal_nan=True)
    assert np.isnan(out[3, 4]) and np.isnan(out[40:43, 20]).all()


def test_in_memory_detect_is_fit_then_decision_function(airport):
    cube, gt = airport
    det = hadcore.get_detector("rx").fit(cube[:50])
    s_top = det.decision_function(cube[:50])
    np.testing.assert_allclose(s_top, hadcore.get_detector("rx").detect(cube[:50]), rtol=1e-6)
    s_bottom = det.decision_function(cube[50:])  # scored with the statistics of the top half
    assert s_bottom.shape == (50, 100) and np.isfinite(s_bottom).all()
    with pytest.raises(InputError, match="fitted on 205 bands"):
        det.decision_function(cube[:, :, :10])
    with pytest.raises(InputError, match="call fit"):
        hadcore.get_detector("rx").decision_function(cube)


def test_reduce_pca_is_a_projection_on_the_global_components(airport):
    cube, gt = airport
    k = 20
    sink, info = run(hadcore.get_detector("rx"), ArraySource(cube), reduce="pca:20", mem_limit_mb=64)
    assert info.bands_used == k and info.bands_in == cube.shape[2]
    X = cube.reshape(-1, cube.shape[2]).astype(np.float64)
    w, V = np.linalg.eigh(np.cov(X, rowvar=False))
    P = (X - X.mean(0)) @ V[:, ::-1][:, :k]
    ref = hadcore.get_detector("rx").detect(P.reshape(100, 100, k))
    np.testing.assert_allclose(sink.array, ref, rtol=1e-5)
    with pytest.raises(ParameterError, match="more components"):
        run(hadcore.get_detector("rx"), ArraySource(cube), reduce="pca:500")


def test_detect_memory_is_blockwise_for_exact_detectors(airport):
    """In memory, RX never converts the whole cube to float64: the largest allocation is one block."""
    import tracemalloc

    cube, _ = airport
    big = np.tile(cube[:, :, :100], (6, 6, 1))  # 600 x 600 x 100 float32 = 144 MB
    hadcore.get_detector("rx").detect(big[:8])  # warm imports
    tracemalloc.start()
    s = hadcore.get_detector("rx").detect(big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.isfinite(s).all()
    assert peak < 1.0 * big.nbytes, f"peak {peak / 2**20:.0f} MB for a {big.nbytes / 2**20:.0f} MB cube"


def test_whole_scene_detectors_run_on_blended_tiles():
    """A detector without a fit/score split is run on overlapping scene tiles, blended."""
    from hadcore.base import Context, Detector

    class Brightness(Detector):
        name = "brightness-test"

        def context(self):
            return Context(whole_scene=True, tile=16, halo=4)

        def _detect(self, cube, mask, progress):
            return cube.sum(axis=2)  # per pixel: tiling changes nothing, blending must not either

    rng = np.random.default_rng(0)
    cube = rng.random((45, 38, 3))
    sink, info = run(Brightness(), ArraySource(cube), mem_limit_mb=64)
    assert info.plan.blend and info.plan.n_blocks == 9
    np.testing.assert_allclose(sink.array, cube.sum(axis=2), rtol=1e-6)
