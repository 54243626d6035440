"""background=columns (issue 26): target detectors with one background per image column, the practice of
matched filtering on pushbroom swaths whose detector columns differ. Each column's statistics come from a
refine pass and are exact under streaming; on a scene whose columns have their own gain the per-column filter
finds an implanted target that the scene-wide one misses more often when the columns' noise differs."""

import numpy as np
import pytest
from conftest import load_scene

import hadcore
from hadcore import engine
from hadcore.errors import InputError
from hadcore.metrics import roc_auc
from hadcore.targets import mf_zscore


@pytest.fixture(scope="module")
def swath():
    """Seven AVIRIS scenes stacked down (750 x 100 pixels; the first 188 bands, every fourth: 47), so that every
    column holds some 16 times more distinct pixels than bands, as a flight line's columns do; each column with
    its own noise level per band (a pushbroom's detector elements: log-normal spread around 2 % of the band's
    mean), and 60 pixels holding 15 % of a spectrum taken from abu-urban-1's anomalies."""
    names = ["abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2",
             "sandiego-lren"]
    X = np.concatenate([load_scene(n)[0][:, :100, :188:4] for n in names], 0).astype(np.float64)
    cube, gt = load_scene("abu-urban-1")
    anomaly = cube[:, :, :188:4][gt.astype(bool)].mean(0).astype(np.float64)
    H, W, B = X.shape
    rng = np.random.default_rng(11)
    idx = rng.choice(H * W, 60, replace=False)
    truth = np.zeros(H * W, bool)
    truth[idx] = True
    rows, cols = np.divmod(idx, W)
    X[rows, cols] = 0.85 * X[rows, cols] + 0.15 * anomaly
    sd = 0.02 * X.mean((0, 1)) * np.exp(rng.standard_normal((1, W, B)))
    X += sd * rng.standard_normal((H, W, B))
    return X.astype(np.float32), truth.reshape(H, W), anomaly


def target(values):
    return ",".join(f"{v:.9g}" for v in values)


def test_each_column_its_own_background_exact_under_streaming(swath):
    X, truth, anomaly = swath
    det = hadcore.get_detector("mf", target=target(anomaly), background="columns", scale="zscore")
    whole = det.detect(X)
    assert det.columns_on_scene_ == 0
    sink, info = engine.run(hadcore.get_detector("mf", target=target(anomaly), background="columns",
                                                 scale="zscore"), engine.ArraySource(X), mem_limit_mb=24)
    assert info.plan.n_blocks > 2
    np.testing.assert_allclose(sink.array, whole, rtol=1e-6, atol=1e-6)
    # column 7 scored by the formula with that column's own statistics
    Xc = X[:, 7].astype(np.float64)
    ref = mf_zscore(Xc, anomaly, Xc.mean(0), np.cov(Xc, rowvar=False))
    np.testing.assert_allclose(whole[:, 7], ref, rtol=1e-5, atol=1e-6)


def test_per_column_finds_what_the_scene_wide_filter_misses(swath):
    X, truth, anomaly = swath
    auc = {}
    for bg in ("scene", "columns"):
        for name in ("mf", "ace"):
            s = hadcore.get_detector(name, target=target(anomaly), background=bg).detect(X)
            auc[name, bg] = roc_auc(s, truth)
    for name in ("mf", "ace"):  # measured: mf 0.895 -> 0.969, ace 0.805 -> 0.928
        assert auc[name, "columns"] > auc[name, "scene"] + 0.05, auc
    assert auc["mf", "columns"] > 0.95, auc


def test_columns_with_few_pixels_keep_the_scene_background_and_exclude_applies(swath):
    X, truth, anomaly = swath
    few = X[:90]  # 90 rows < 2 x 47 bands: every column falls back
    det = hadcore.get_detector("cemf", target=target(anomaly), background="columns")
    s = det.detect(few)
    assert det.columns_on_scene_ == few.shape[1]
    np.testing.assert_allclose(s, hadcore.get_detector("cemf", target=target(anomaly)).detect(few), rtol=1e-6)
    # the implanted pixels out of their columns' backgrounds
    det = hadcore.get_detector("mf", target=target(anomaly), background="columns", scale="zscore")
    det.set_exclude(truth)
    s_ex = det.detect(X)
    plain = hadcore.get_detector("mf", target=target(anomaly), background="columns", scale="zscore").detect(X)
    assert np.mean(s_ex[truth]) > np.mean(plain[truth])


def test_columns_need_the_block_position(swath):
    X, _, anomaly = swath
    det = hadcore.get_detector("mf", target=target(anomaly), background="columns").fit(X)
    np.testing.assert_allclose(det.decision_function(X), det.detect(X), rtol=1e-6)  # the whole width: known
    with pytest.raises(InputError, match="each block's column"):
        det.decision_function(X[:, :50])
