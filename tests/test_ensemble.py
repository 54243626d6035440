"""Ensemble: the fused scores of its members, real-data AUC, bad parameters, determinism, streaming."""

import numpy as np
import pytest

import hadcore
from conftest import load_scene
from hadcore.detectors.ensemble import Ensemble, combine_scores, range_normalise, rank_normalise
from hadcore.errors import ParameterError
from hadcore.metrics import evaluate, roc_auc


@pytest.mark.parametrize("how", ["mean-range", "geo-range"])
def test_range_combinations_of_min_max_scaled_member_scores(how):
    cube, _ = load_scene("hydice-162")
    mask = np.ones(cube.shape[:2], bool)
    mask[3, 4] = False
    det = Ensemble(members="rx,glrt2s", combine=how, floor=0.05)
    s = det.detect(cube, mask)
    parts = []
    for name in ("rx", "glrt2s"):
        m = hadcore.get_detector(name).detect(cube, mask).astype(np.float64)
        v = m[mask]
        parts.append((v - v.min()) / (v.max() - v.min()))
    want = np.mean(parts, axis=0) if how == "mean-range" else np.sqrt((parts[0] + 0.05) * (parts[1] + 0.05)) - 0.05
    np.testing.assert_allclose(s[mask], want, rtol=1e-5, atol=1e-7)
    assert np.isnan(s[3, 4]) and s.dtype == np.float32
    assert 0.0 <= np.nanmin(s) and np.nanmax(s) <= 1.0 + 1e-6


def test_geo_range_lets_one_member_veto_the_background():
    """A pixel one member scores 0 stays near 0 under the geometric mean, not at half range as under the mean."""
    a = np.array([[0.0, 1.0, 1.0, 0.5]])
    b = np.array([[1.0, 1.0, 0.0, 0.5]])
    mask = np.ones(a.shape, bool)
    g = combine_scores([a, b], mask, "geo-range", floor=0.01)
    m = combine_scores([a, b], mask, "mean-range")
    np.testing.assert_allclose(m, [[0.5, 1.0, 0.5, 0.5]])
    assert g[0, 1] == pytest.approx(1.0) and g[0, 0] < 0.1 and g[0, 2] < 0.1 and g[0, 3] == pytest.approx(0.5)


def test_rank_combinations():
    rng = np.random.default_rng(0)
    a, b = rng.random((6, 5)), rng.random((6, 5))
    mask = np.ones((6, 5), bool)
    mask[0, 0] = False
    ra, rb = rank_normalise(a, mask), rank_normalise(b, mask)
    assert ra[mask].max() == 1.0 and np.isclose(ra[mask].min(), 1 / 29) and ra[0, 0] == 0
    np.testing.assert_allclose(combine_scores([a, b], mask, "mean-rank"), (ra + rb) / 2)
    np.testing.assert_allclose(combine_scores([a, b], mask, "median-rank"), np.median([ra, rb], axis=0))
    fisher = combine_scores([a, b], mask, "fisher")
    np.testing.assert_allclose(fisher, (-np.log(1 - ra + 0.5 / 29) - np.log(1 - rb + 0.5 / 29)) / 2)
    np.testing.assert_allclose(range_normalise(a, mask)[mask].max(), 1.0)


def test_default_ensemble_beats_rx_and_every_member_on_a_real_scene():
    # abu-airport-2: the members disagree (aed 0.971, glrt2s 0.881, msrfqft 0.971; RX 0.840)
    cube, gt = load_scene("abu-airport-2")
    members = {m: hadcore.get_detector(m).detect(cube) for m in ("aed", "glrt2s", "msrfqft")}
    s = hadcore.get_detector("ensemble").detect(cube)
    np.testing.assert_allclose(s, combine_scores(list(members.values()), np.ones(gt.shape, bool)), rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_array_equal(s, hadcore.get_detector("auto").detect(cube))  # auto: the same configuration
    m = evaluate(s, gt)
    rx = evaluate(hadcore.get_detector("rx").detect(cube), gt)
    assert m["auc_pd_pf"] >= 0.975 and m["auc_pd_pf"] > rx["auc_pd_pf"] + 0.1 and m["auc_bs"] > rx["auc_bs"] + 0.1
    for name, sc in members.items():  # better than each member
        assert m["auc_pd_pf"] > roc_auc(sc, gt), name


def test_bad_parameters_one_line():
    for kw, msg in [({"members": "rx,nope"}, "unknown member 'nope'"), ({"members": ""}, "names no detector"),
                    ({"members": "rx,ensemble"}, "own member"), ({"members": "rx,rx"}, "twice"),
                    ({"combine": "vote"}, "combine"), ({"tile": 64, "overlap": 40}, "twice 'overlap'")]:
        with pytest.raises(ParameterError, match=msg) as e:
            Ensemble(**kw)
        assert "\n" not in str(e.value)


def test_deterministic_and_streamed_on_scene_tiles():
    cube, gt = load_scene("abu-urban-1")
    det = Ensemble(members="rx,aed", tile=64, overlap=16)
    a = det.detect(cube)
    assert np.array_equal(a, Ensemble(members="rx,aed", tile=64, overlap=16).detect(cube))
    from hadcore.engine import ArraySource, run

    sink, info = run(det, ArraySource(cube, None), mem_limit_mb=64)
    assert info.plan.n_blocks > 1 and np.isfinite(sink.array).all()
    assert roc_auc(sink.array, gt) > 0.95  # tiles see their own range: close to, not equal to, in-memory
