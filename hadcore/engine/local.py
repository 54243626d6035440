"""The in-process executor: the passes of :func:`~hadcore.engine.passes.drive` block after block in this process,
and the in-memory ``Detector.detect`` path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

from ..cube import check_cube, prepare_block
from ..progress import Progress, as_progress
from ..stats import Moments, PixelSample
from ..threads import limit_threads
from .blocks import BlendAccumulator, collect_block, score_window
from .passes import drive
from .plan import (IN_MEMORY_BUDGET, MB, Plan, RunInfo, block_cost, check_bands, default_mem_limit_mb, halo_window,
                   plan_blocks)
from .source import ArraySink, ArraySource, ProjectedSource, Sink, Source, TapSource, release_scratch

if TYPE_CHECKING:  # annotations only: the engine runs any object with the detector contract
    from ..base import Detector

__all__ = ["LocalPasses", "run", "detect_in_memory"]


class LocalPasses:
    """The passes of :func:`drive` in this process, block after block, into ``sink``.

    ``observer``: an object with ``observe(core, outer, raw, valid, scores, scores_window)`` called after each
    block of the score pass with the raw block it was read from (:class:`hadcore.spectra.SpectraCollector`).
    """

    def __init__(self, source: Source, sink: Sink, observer=None):
        self.observer = observer
        if observer is not None:
            source = TapSource(source)
        self.source = self.src = source
        self.sink = sink

    def stats(self, windows, size, seed, prog, exclude=None):
        B_in = self.source.shape[2]
        moms, smps = Moments.empty(B_in), PixelSample.empty(size, seed, B_in) if size else None
        n_valid = 0
        for i, win in enumerate(windows):
            ex = None if exclude is None else exclude[win[0]:win[1], win[2]:win[3]]
            m, smp, n = collect_block(self.source, win, True, size, seed, ex)
            moms = moms.merge(m)
            n_valid += n
            if smp is not None:
                smps = smps.merge(smp)
            prog.update((i + 1) / len(windows))
        return moms, smps, n_valid

    def project(self, mean, V):
        self.src = ProjectedSource(self.source, mean, V)

    def release(self):
        release_scratch()

    def crops(self, windows, prog):
        return [self.src.block(*w) for w in windows]

    def refine(self, det, windows, prog):
        merged = None
        for i, (r0, r1, c0, c1) in enumerate(windows):
            X, valid = self.src.block(r0, r1, c0, c1)
            part = det._refine_at(X, valid, (r0, c0))
            del X, valid  # not held while the next block (or the score pass) is read
            merged = part if merged is None else det._refine_merge(merged, part)
            prog.update((i + 1) / len(windows))
        release_scratch()
        return merged

    def score(self, det, plan, prog):
        total = len(plan.score_windows)
        if plan.blend:
            _score_blended(det, self.src, self.sink, plan, prog, self._observe)
        else:
            for i, win in enumerate(plan.score_windows):
                piece = prog.sub(i / total, (i + 1) / total)
                (r0, _, c0, _), s = score_window(det, self.src, win, plan.halo, piece)
                self._observe(win, s, win, plan)
                self.sink.write(r0, c0, s)
                piece.update(1.0)
        release_scratch()
        return self.sink

    def _observe(self, core, scores, scores_window, plan) -> None:
        """Hand the observer the block just scored and the raw block it came from (the tap's last read)."""
        if self.observer is None:
            return
        last = self.source.last
        outer = halo_window(core, plan.halo, *plan.shape[:2])
        if last is None or tuple(last[0]) != tuple(outer):
            self.observer.complete = False  # not the block that was scored: the observer reads what it needs
            return
        self.observer.observe(core, outer, last[1], last[2], scores, scores_window)


def run(det: Detector, source: Source, sink: Optional[Sink] = None, *, mem_limit_mb: Optional[float] = None,
        progress=None, reduce=None, whole: bool = False, threads: Optional[int] = None,
        observer=None) -> Tuple[Sink, RunInfo]:
    """Run ``det`` over ``source`` into ``sink`` (default: an :class:`ArraySink`) under a memory budget, in
    this process (:func:`drive` with :class:`LocalPasses`), with a budget of ``threads`` threads (default:
    every core this process may use, or the budget of the task it runs in; :mod:`hadcore.threads`) that the
    detector's pools, BLAS, scipy.fft and torch obey.

    ``whole=True`` scores the scene as one block (the in-memory path of detectors that are not exact under
    tiling). ``observer`` sees each scored block with its raw spectra (:class:`LocalPasses`). Returns
    ``(sink, info)``.
    """
    prog = as_progress(progress)
    H, W, B_in = source.shape
    red, B = check_bands(det, B_in, reduce)
    ctx = det.context()
    budget = int((mem_limit_mb if mem_limit_mb is not None else default_mem_limit_mb()) * MB)
    need_stats = bool(ctx.global_stats or ctx.sample or red)
    plan = plan_blocks(det, (H, W, B), budget, in_bands=B_in, block_shape=source.block_shape,
                       needs_stats=need_stats, whole=whole, read_bytes=getattr(source, "read_bytes", 4))
    sink = sink if sink is not None else ArraySink(H, W)
    info = RunInfo(plan=plan, bands_in=B_in, bands_used=B, reduce=red)
    with limit_threads(threads):
        drive(det, LocalPasses(source, sink, observer), plan, info, prog, red, B_in)
    return sink, info



def _score_blended(det: Detector, src: Source, sink: Sink, plan: Plan, prog: Progress, observe=None) -> None:
    """Scene tiles with overlap, blended; finished rows are flushed to the sink one tile row at a time."""
    acc = BlendAccumulator(plan, sink)
    total = len(acc.order)
    for done, win in enumerate(acc.order):
        piece = prog.sub(done / total, (done + 1) / total)
        outer, s = score_window(det, src, win, plan.halo, piece, blend=True)
        if observe is not None:
            observe(win, s, outer, plan)
        acc.add(win, outer, s)
        piece.update(1.0)



def detect_in_memory(det: Detector, cube, mask, progress: Progress) -> np.ndarray:
    """:meth:`Detector.detect`: exact detectors block by block over the caller's array, others as one block."""
    X, valid = check_cube(cube, mask, min_bands=det.min_bands, min_pixels=det.min_pixels, who=det.name)
    ctx = det.context()
    if not ctx.exact:
        Xp = prepare_block(X, valid)
        scores = np.asarray(det._detect(Xp, valid, progress))
        del Xp
        if scores.shape != valid.shape:
            raise RuntimeError(f"{det.name}: _detect returned shape {scores.shape}, expected {valid.shape}")
        out = scores.astype(np.float32, copy=True)
        out[~valid] = np.nan
        progress.update(1.0)
        return out
    src = ArraySource(X, valid)
    H, W, B = X.shape
    # half the cube's size (so detect peaks near 1.5x the cube) within [64 MB, IN_MEMORY_BUDGET], and at
    # least one strip of 64 rows
    budget = max(min(IN_MEMORY_BUDGET, max(X.nbytes // 2, 64 * MB)),
                 block_cost(det, min(H, 64 + 2 * ctx.halo), W, B, B) + det.state_bytes(B) + 2 * B * B * 8)
    sink, _ = run(det, src, None, mem_limit_mb=budget / MB, progress=progress)
    return sink.array
