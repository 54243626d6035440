"""Sample-fitted and tiled detectors (LSMAD, KIFD, LRASR, PTA, AED) streamed block by block.

Streamed under a small memory budget (several blocks) or on small scene tiles, each detector's mean
AUC(PD,PF) over the nine shared scenes stays within 0.01 of the in-memory run; with a sample smaller than
the scene the scores stay sane and are deterministic for a seed.

To keep the module within a few minutes on two cores, the costly detectors run on every 4th band of the
scenes and with fewer trees / atoms: what is compared is streamed against in-memory under the same
settings, not the AUC level (docs/benchmark.md has that, with the default settings).
"""

import numpy as np
import pytest
from conftest import SCENES, load_scene

import hadcore
from hadcore import engine
from hadcore.metrics import roc_auc

#: detector -> (parameters, band step); the tiled detectors get tiles far smaller than the scenes
SETTINGS = {
    "lsmad": ({"max_iter": 10}, 2),
    "aed": ({"tile": 32, "overlap": 8}, 1),
    "pta": ({"tile": 50, "overlap": 8}, 4),
    "kifd": ({"n_trees": 50, "local_trees": 10, "n_fit": 500, "n_components": 50}, 4),
    "lrasr": ({"n_clusters": 10, "per_cluster": 10}, 4),
}


def scene(name, step=1):
    cube, gt = load_scene(name)
    return np.ascontiguousarray(cube[:, :, ::step]), gt


def small_budget_mb(det, shape, side=64):
    """A budget that holds one block of ``side`` x ``side`` pixels with its halo, so the engine cuts the scene
    into several blocks (``side`` is halved until it does: a block's halo may cover a small scene)."""
    H, W, B = shape
    halo = det.context().halo
    fixed = det.state_bytes(B) + 2 * B * B * 8
    while True:
        mb = (fixed + engine.block_cost(det, side + 2 * halo, side + 2 * halo, B, B, read_bytes=0)) / engine.MB + 0.01
        if side <= 8 or engine.plan_blocks(det, shape, int(mb * engine.MB), needs_stats=True,
                                           read_bytes=0).n_blocks > 1:
            return mb
        side //= 2


def streamed(det, cube, mem_limit_mb=None):
    """Scores of ``det`` run by the engine over ``cube``: the tiled detectors on their (small) tiles, the others
    in blocks under a small budget."""
    if mem_limit_mb is None and not det.context().whole_scene:
        mem_limit_mb = small_budget_mb(det, cube.shape)
    sink, info = engine.run(det, engine.ArraySource(cube), mem_limit_mb=mem_limit_mb or 2048)
    return sink.array, info


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("kifd", "lrasr", "pta") else n
                                  for n in SETTINGS])
def test_streamed_auc_matches_in_memory(name):
    params, step = SETTINGS[name]
    mem, st = [], []
    for sc in SCENES:
        cube, gt = scene(sc, step)
        a = hadcore.get_detector(name, **params).detect(cube)
        b, info = streamed(hadcore.get_detector(name, **params), cube)
        assert info.plan.n_blocks > 1, (sc, info.plan.notes)
        assert b.shape == gt.shape and np.isfinite(b).all()
        if name == "lsmad":  # the sample is the whole scene and block scores are exact given the fit
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * float(a.max()))
        mem.append(roc_auc(a, gt))
        st.append(roc_auc(b, gt))
    assert abs(np.mean(st) - np.mean(mem)) < 0.01, (np.mean(st), np.mean(mem))
    assert np.mean(st) > 0.9


def mosaic(name, step):
    """A 2 x 2 mosaic of a scene (four times its pixels) and its ground truth."""
    cube, gt = scene(name, step)
    flipped = cube[:, ::-1]
    return (np.concatenate([np.concatenate([cube, flipped], 1), np.concatenate([flipped, cube], 1)], 0),
            np.block([[gt, gt[:, ::-1]], [gt[:, ::-1], gt]]))


def test_lsmad_sample_smaller_than_the_scene_is_independent_of_the_blocks():
    cube, gt = mosaic("abu-urban-1", 4)  # 40000 pixels, a 30000-pixel sample
    det = hadcore.get_detector("lsmad")
    assert det.sample_size < gt.size
    a, ia = streamed(det, cube)
    b, ib = streamed(hadcore.get_detector("lsmad"), cube, mem_limit_mb=2048)
    assert ia.plan.n_blocks > 1 and ib.plan.n_blocks == 1
    # the sample depends on the scene and the seed only, and scoring is exact given the fit
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9 * float(b.max()))
    assert roc_auc(a, gt) > 0.9
    mem = hadcore.get_detector("lsmad").detect(cube)
    np.testing.assert_allclose(a, mem, rtol=1e-6, atol=1e-9 * float(b.max()))


@pytest.mark.parametrize("name, params", [
    ("kifd", {"sample_size": 2000, **SETTINGS["kifd"][0]}),
    ("lrasr", {"sample_size": 2000, **SETTINGS["lrasr"][0]}),
    ("aed", {"sample_size": 300, "tile": 32, "overlap": 8}),
])
def test_small_sample_is_sane_and_deterministic(name, params):
    cube, gt = scene("abu-urban-1", 4)
    a, info = streamed(hadcore.get_detector(name, **params), cube)
    assert info.plan.n_blocks > 1 and np.isfinite(a).all()
    assert roc_auc(a, gt) > 0.9
    b, _ = streamed(hadcore.get_detector(name, **params), cube)
    np.testing.assert_array_equal(a, b)
    if "seed" in hadcore.get_detector(name).get_params():
        c, _ = streamed(hadcore.get_detector(name, seed=1, **params), cube)
        assert not np.array_equal(a, c)


def test_declared_context_and_memory():
    for name, tiled in (("lsmad", False), ("kifd", False), ("lrasr", False), ("pta", True), ("aed", True)):
        det = hadcore.get_detector(name)
        ctx = det.context()
        assert ctx.scaling == ("tiles" if tiled else "sample") and not ctx.exact
        assert "Scaling:" in type(det).__doc__
        if tiled:
            assert ctx.tile > 2 * ctx.halo > 0 and ctx.global_stats
        else:
            assert 20000 <= ctx.sample <= 50000
        assert det.working_bytes(100, 100, 224) > 100 * 100 * 224 * 8
    # one default PTA tile with its overlap at 224 bands fits in about 1 GB
    pta = hadcore.get_detector("pta")
    side = pta.tile + 2 * pta.overlap
    assert engine.block_cost(pta, side, side, 224, 224) < 1.1 * 2**30
    # LRASR's block memory grows with its atoms
    assert hadcore.get_detector("lrasr", per_cluster=40).working_bytes(50, 50, 100) > \
        hadcore.get_detector("lrasr").working_bytes(50, 50, 100)
