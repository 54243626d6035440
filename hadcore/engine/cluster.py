"""The Dask backend: the engine's plan (:func:`hadcore.engine.run`) run as a Dask graph on a cluster.

``pip install "hadcore[dask]"``. The passes are the in-process engine's, with the very same block functions
(:func:`~hadcore.engine.collect_block`, :func:`~hadcore.engine.score_window`), run as tasks on the workers:

1. **statistics**: one task per block (``hadcore-stats-*``), merged by a tree of tasks that merge pairs
   (``hadcore-stats-merge-*``) on the workers; only the merged :class:`~hadcore.stats.Moments` and
   :class:`~hadcore.stats.PixelSample` come back to the client;
2. **crops** (``hadcore-crop-*``): read by tasks, sent to the client;
3. **fit** on the client; the fitted detector is scattered to every worker once (``broadcast``);
4. the optional **refine pass**: one task per block (``hadcore-refine-*``) and a tree merge;
5. **scores**: one task per block (``hadcore-score-*``) reads its window and halo straight from the source on
   the worker (a :class:`~hadcore.io.RasterSource` reopens the file there: the path must be readable from
   every worker) and sends back only the one-band scores, B times smaller than the input. The client writes
   every block into the sink as it arrives (tiles of whole-scene detectors are blended as they arrive, with
   the engine's :class:`~hadcore.engine.BlendAccumulator`).

Blocks are sized by :func:`~hadcore.engine.plan_blocks` for ``mem_limit_mb`` *per worker*: a worker with
several threads runs that many blocks at once, so each block gets the budget divided by the threads.

A worker that dies is replaced by Dask: its tasks are run again elsewhere (the scheduler's
``allowed-failures``, 3 by default); a task that raises is retried ``retries`` times. A task that finally
fails (``KilledWorker``, a lost scheduler) raises a one-line :class:`~hadcore.errors.HadcoreError`; the
sink (the score GeoTIFF written under a temporary name) then leaves no output behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from typing import TYPE_CHECKING

from ..errors import HadcoreError
from ..progress import Progress, as_progress
from ..threads import limit_threads
from .blocks import BlendAccumulator, collect_block, score_window
from .passes import drive
from .plan import MB, RunInfo, check_bands, default_mem_limit_mb, plan_blocks
from .source import ArraySink, ProjectedSource, Sink, Source, Window

if TYPE_CHECKING:  # annotations only: the engine runs any object with the detector contract
    from ..base import Detector

__all__ = ["run_distributed", "worker_budget_mb"]

CancelledError = (asyncio.CancelledError, concurrent.futures.CancelledError)

#: sources whose pickle is larger than this (an in-memory array) are scattered once instead of being sent
#: with every task
_INLINE_BYTES = 1 * MB
#: how often the client polls for finished blocks and for cancellation (seconds)
_POLL_S = 0.05


# ================================================================================================ tasks
# Plain module-level functions: the workers import hadcore and run them; their key names say what they are.
def _task(fn):
    """A user error raised on a worker travels back without its chained exceptions: the chain can hold
    exceptions that do not survive pickling (rasterio's CPLE_* errors), and Dask would then hand the
    client a bare ``Exception`` instead of the one-line :class:`HadcoreError`.

    Every task runs with a thread budget of one (:func:`hadcore.threads.limit_threads`): a worker runs as
    many tasks at once as it has threads, so one thread each is the worker's own thread count, and the
    detectors' pools, BLAS, scipy.fft and torch do not oversubscribe its cores."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            with limit_threads(1):
                return fn(*args)
        except HadcoreError as exc:
            exc.__context__ = exc.__cause__ = None
            raise

    return wrapper


def _source(source: Source, proj) -> Source:
    return source if proj is None else ProjectedSource(source, proj[0], proj[1])


@_task
def _stats_task(source: Source, window: Window, sample_size: int, seed: int, exclude=None):
    return collect_block(source, window, True, sample_size, seed, exclude)


@_task
def _stats_merge(a, b):
    ma, sa, na = a
    mb, sb, nb = b
    s = sb if sa is None else sa if sb is None else sa.merge(sb)
    return ma.merge(mb), s, na + nb


@_task
def _block_task(source: Source, proj, window: Window):
    return _source(source, proj).block(*window)


@_task
def _refine_task(det: Detector, source: Source, proj, window: Window):
    X, valid = _source(source, proj).block(*window)
    return det._refine_at(X, valid, (window[0], window[2]))


@_task
def _refine_merge(det: Detector, a, b):
    return det._refine_merge(a, b)


@_task
def _score_task(det: Detector, source: Source, proj, window: Window, halo: int, blend: bool):
    return score_window(det, _source(source, proj), window, halo, None, blend)


# ================================================================================================ helpers
def worker_budget_mb(client) -> Tuple[Optional[float], int]:
    """(default per-worker budget in MB or None, most threads of a worker) from the scheduler's view.

    The default is half a worker's memory limit, at most 2048 MB (None when the workers have no limit).
    """
    try:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
    except TypeError:  # older distributed: no n_workers argument
        workers = client.scheduler_info().get("workers", {})
    threads = max([int(w.get("nthreads", 1) or 1) for w in workers.values()] or [1])
    limits = [float(w.get("memory_limit") or 0) for w in workers.values()]
    limits = [x for x in limits if x > 0]
    if not limits:
        return None, threads
    return min(2048.0, min(limits) / MB / 2), threads


def _array_bytes(obj, depth: int = 0) -> int:
    """Bytes of the numpy arrays an object holds (a source's in-memory cube, a mask), a few levels deep."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if depth >= 3:
        return 0
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(v, depth + 1) for v in obj)
    attrs = getattr(obj, "__dict__", None)
    return sum(_array_bytes(v, depth + 1) for v in attrs.values()) if attrs else 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _failure(exc: BaseException, what: str) -> HadcoreError:
    """The one-line user error for a task that finally failed on the cluster."""
    name = type(exc).__name__
    if name == "KilledWorker":
        task, last = getattr(exc, "task", None), getattr(exc, "last_worker", None)
        last = getattr(last, "address", last)
        if task is not None:
            why = (f"every worker that ran task {task} died (the last: {last}); see the worker logs, or raise "
                   "the scheduler's distributed.scheduler.allowed-failures")
        else:
            why = f"the workers running it died ({_one_line(exc).split('. ')[0]})"
    elif isinstance(exc, CancelledError):
        why = f"the cluster cancelled it ({_one_line(exc)})"
    elif name == "CommClosedError" or isinstance(exc, TimeoutError):
        why = f"lost the connection to the cluster ({name}: {_one_line(exc)})"
    else:
        why = f"{name}: {_one_line(exc)}"
    return HadcoreError(f"Dask: {what} failed: {why}; nothing was written")


def _is_cluster_failure(exc: BaseException) -> bool:
    """A failure of the cluster or of a worker's environment (not a bug, not a user error)."""
    if isinstance(exc, HadcoreError):
        return False
    return type(exc).__name__ == "KilledWorker" or isinstance(exc, (CancelledError, OSError, TimeoutError))


class _Run:
    """One distributed run: submits tasks with hadcore key names and the run's retries, and waits for them
    while reporting progress and polling for cancellation; cancels what is left on any error."""

    def __init__(self, client, retries: int):
        self.client = client
        self.retries = int(retries)
        self.token = uuid.uuid4().hex[:8]
        self.live: Dict[str, Any] = {}
        self.shared: List[Any] = []

    def submit(self, kind: str, i, fn, *args):
        key = f"hadcore-{kind}-{self.token}-{i}"
        fut = self.client.submit(fn, *args, key=key, retries=self.retries)
        self.live[key] = fut
        return fut

    def share(self, obj, force: bool = False):
        """``obj`` itself when small, else a future of it scattered to every worker once."""
        if not force and _array_bytes(obj) <= _INLINE_BYTES:
            return obj
        fut = self.client.scatter(obj, broadcast=True, hash=False)
        self.shared.append(fut)
        return fut

    def tree(self, kind: str, leaves: list, merge, *extra):
        """Merge ``leaves`` pairwise by tasks (a balanced tree); returns the root future."""
        level, items = 0, list(leaves)
        while len(items) > 1:
            nxt = []
            for i in range(0, len(items), 2):
                if i + 1 < len(items):
                    nxt.append(self.submit(f"{kind}-merge", f"{level}-{i // 2}", merge, *extra, items[i], items[i + 1]))
                else:
                    nxt.append(items[i])
            items, level = nxt, level + 1
        return items[0]

    def result(self, fut, what: str):
        try:
            return fut.result()
        except HadcoreError:
            raise
        except Exception as exc:
            if _is_cluster_failure(exc):
                raise _failure(exc, what) from None
            raise

    def each(self, futures: list, what: str, prog: Progress, with_results: bool = True):
        """Yield ``(index, result)`` of ``futures`` as they finish, updating ``prog`` per future."""
        from distributed import as_completed

        index = {f.key: i for i, f in enumerate(futures)}
        total = len(futures)
        ac = as_completed(futures, loop=self.client.loop)
        del futures
        done = 0
        while not ac.is_empty() or ac.has_ready():
            batch = ac.next_batch(block=False) if ac.has_ready() else []
            if not batch:
                prog.check()
                time.sleep(_POLL_S)
                continue
            for f in batch:
                i = index.pop(f.key)
                value = self.result(f, what) if with_results or f.status != "finished" else None
                self.live.pop(f.key, None)
                del f
                done += 1
                prog.update(done / total)
                yield i, value
                value = None

    def release(self):
        """Drop every reference: Dask frees what the run holds on the workers."""
        self.live.clear()
        self.shared.clear()

    def cancel(self):
        """Cancel whatever is still queued or running (on an error or a cancellation)."""
        pending = list(self.live.values()) + self.shared
        self.release()
        if pending:
            try:
                self.client.cancel(pending, force=True)
            except Exception:  # the cluster is gone already
                pass


class _ClusterPasses:
    """The passes of :func:`hadcore.engine.drive` as Dask tasks: one per block, merged by trees of tasks."""

    def __init__(self, job: "_Run", src_ref, sink: Sink):
        self.job, self.src_ref, self.sink, self.proj = job, src_ref, sink, None

    def stats(self, windows, size, seed, prog, exclude=None):
        job = self.job
        leaves = [job.submit("stats", i, _stats_task, self.src_ref, win, size, seed,
                             None if exclude is None else exclude[win[0]:win[1], win[2]:win[3]])
                  for i, win in enumerate(windows)]
        root = job.tree("stats", leaves, _stats_merge)
        done = job.each(leaves, "the statistics pass", prog, with_results=False)
        del leaves  # only the pass holds the leaves now: each is released once merged and counted
        for _ in done:
            pass
        result = job.result(root, "the statistics pass")
        job.live.clear()
        return result

    def project(self, mean, V):
        self.proj = (mean, V)

    def release(self):
        pass

    def crops(self, windows, prog):
        crops: List[Any] = [None] * len(windows)
        for i, value in self.job.each([self.job.submit("crop", i, _block_task, self.src_ref, self.proj, w)
                                       for i, w in enumerate(windows)], "reading the crops", prog):
            crops[i] = value
        return crops

    def refine(self, det, windows, prog):
        job = self.job
        det_ref = job.share(det, force=True)
        leaves = [job.submit("refine", i, _refine_task, det_ref, self.src_ref, self.proj, w)
                  for i, w in enumerate(windows)]
        root = job.tree("refine", leaves, _refine_merge, det_ref)
        done = job.each(leaves, "the refine pass", prog, with_results=False)
        del leaves
        for _ in done:
            pass
        merged = job.result(root, "the refine pass")
        job.live.clear()
        return merged

    def score(self, det, plan, prog):
        job = self.job
        det_ref = job.share(det, force=True)
        wins = list(plan.score_windows)
        acc = BlendAccumulator(plan, self.sink) if plan.blend else None
        # the pass holds the only reference to each block's future: a block's scores leave the worker's
        # memory as soon as they are written
        for i, (outer, s) in job.each([job.submit("score", i, _score_task, det_ref, self.src_ref, self.proj, w,
                                                  plan.halo, plan.blend) for i, w in enumerate(wins)],
                                      "scoring", prog):
            if acc is not None:
                acc.add(wins[i], outer, s)
            else:
                self.sink.write(outer[0], outer[2], s)
        return self.sink


# ================================================================================================ running
def run_distributed(det: Detector, source: Source, sink: Optional[Sink] = None, *, client,
                    mem_limit_mb: Optional[float] = None, progress=None, reduce=None,
                    retries: int = 2) -> Tuple[Sink, RunInfo]:
    """Run ``det`` over ``source`` into ``sink`` on the Dask cluster of ``client`` (see the module docstring).

    Same plan and same results as :func:`hadcore.engine.run` (exact detectors: up to the rounding of the
    statistics' merge order; blended tiles: up to the order of the overlap sums). ``mem_limit_mb`` is the
    budget of one worker (default: half a worker's memory limit, at most 2048 MB). ``source`` must be
    picklable and readable on the workers (a :class:`~hadcore.io.RasterSource` on shared storage; an
    in-memory source is scattered to the workers once). Returns ``(sink, info)``.
    """
    prog = as_progress(progress)
    H, W, B_in = source.shape
    red, B = check_bands(det, B_in, reduce)
    ctx = det.context()
    default_mb, threads = worker_budget_mb(client)
    worker_mb = mem_limit_mb if mem_limit_mb is not None else (default_mb or default_mem_limit_mb())
    budget = int(worker_mb * MB / max(threads, 1))
    need_stats = bool(ctx.global_stats or ctx.sample or red)
    plan = plan_blocks(det, (H, W, B), budget, in_bands=B_in, block_shape=source.block_shape,
                       needs_stats=need_stats)
    sink = sink if sink is not None else ArraySink(H, W)
    info = RunInfo(plan=plan, bands_in=B_in, bands_used=B, reduce=red)

    job = _Run(client, retries)
    try:
        drive(det, _ClusterPasses(job, job.share(source), sink), plan, info, prog, red, B_in)
    except BaseException as exc:
        job.cancel()
        if isinstance(exc, (HadcoreError, KeyboardInterrupt)) or not _is_cluster_failure(exc):
            raise
        raise _failure(exc, "the run") from None
    job.release()
    return sink, info
