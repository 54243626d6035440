"""The engine owns threads (hadcore.threads): one budget per run, obeyed by the detectors' pools, BLAS, scipy.fft
and torch; every core in process, one thread per task on Dask."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
from conftest import load_scene

import hadcore
from hadcore.engine import ArraySource, run
from hadcore.threads import available_cores, limit_threads, thread_budget

LRX = {"inner": 3, "outer": 7}


@pytest.fixture(scope="module")
def crop():
    return load_scene("abu-airport-1")[0][:40, :48, ::6].astype(np.float64)


@pytest.fixture
def pools(monkeypatch):
    """The max_workers of every thread pool lrx and crd start."""
    seen = []
    real = concurrent.futures.ThreadPoolExecutor

    class Spy(real):
        def __init__(self, max_workers=None, *a, **k):
            seen.append(max_workers)
            super().__init__(max_workers, *a, **k)

    import hadcore.detectors.crd as crd
    import hadcore.detectors.lrx as lrx

    monkeypatch.setattr(lrx, "ThreadPoolExecutor", Spy)
    monkeypatch.setattr(crd, "ThreadPoolExecutor", Spy)
    return seen


def test_budget_defaults_to_the_cores_and_nests_downwards_only():
    assert thread_budget() == available_cores()
    assert thread_budget(1) == 1
    with limit_threads(1) as n:
        assert n == 1 and thread_budget() == 1
        with limit_threads(64) as inner:  # an enclosing budget is never exceeded
            assert inner == 1 and thread_budget() == 1
    assert thread_budget() == available_cores()


def test_the_budget_is_per_thread():
    """Concurrent tasks on one worker each see their own budget (a context variable, not a global)."""
    with limit_threads(1):
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            assert ex.submit(thread_budget).result() == available_cores()


@pytest.mark.skipif(available_cores() < 2, reason="one core: nothing to bound")
def test_blas_is_bounded_inside_a_budget_and_restored():
    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info()]
    with limit_threads(1):
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert [p["num_threads"] for p in threadpool_info()] == before


@pytest.mark.skipif(available_cores() < 2, reason="one core: lrx runs without a pool anyway")
def test_lrx_pool_follows_the_run_budget(crop, pools):
    det = hadcore.get_detector("lrx", **LRX)
    ref, _ = run(det, ArraySource(crop))
    assert pools and max(pools) == min(available_cores(), 8)
    pools.clear()
    one, _ = run(det, ArraySource(crop), threads=1)
    assert pools == []  # one thread: the tiles run in the calling thread
    np.testing.assert_array_equal(one.array, ref.array)  # and the scores do not depend on it


def test_dask_tasks_run_with_one_thread(crop, pools):
    da = pytest.importorskip("dask.array")
    det = hadcore.get_detector("lrx", **LRX)
    ref = det.detect(crop)
    pools.clear()
    out = hadcore.detect(det, da.from_array(crop, chunks=(20, 24, -1))).compute(scheduler="threads")
    assert pools == [], "a Dask task started a pool of its own"
    np.testing.assert_allclose(out, ref, rtol=1e-6, equal_nan=True)


def test_crd_pool_follows_the_run_budget(crop, pools):
    det = hadcore.get_detector("crd", inner=3, outer=7)
    ref, _ = run(det, ArraySource(crop[:, :, :8]))
    pools.clear()
    one, _ = run(det, ArraySource(crop[:, :, :8]), threads=1)
    assert pools == []
    np.testing.assert_allclose(one.array, ref.array, rtol=1e-10, equal_nan=True)


def test_pta_dcts_use_the_budget(crop, monkeypatch):
    import scipy.fft

    workers = []
    real = scipy.fft.dct

    def spy(*a, **k):
        workers.append(k.get("workers"))
        return real(*a, **k)

    monkeypatch.setattr(scipy.fft, "dct", spy)
    det = hadcore.get_detector("pta", max_iter=2)
    det.detect(crop[:20, :20])
    assert set(workers) == {available_cores()}
    workers.clear()
    run(det, ArraySource(crop[:20, :20]), threads=1)
    assert set(workers) == {1}


def test_torch_threads_follow_the_budget():
    torch = pytest.importorskip("torch")
    from hadcore.detectors.torch_runtime import session

    before = torch.get_num_threads()
    with limit_threads(1), session(torch):
        assert torch.get_num_threads() == 1
    with session(torch, threads=64):  # a detector's own setting is capped by the budget
        assert torch.get_num_threads() == available_cores()
    assert torch.get_num_threads() == before
