"""The pass driver: one plan run the same way by every executor (in-process, Dask cluster, lazy dask array)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..context import crop_windows
from ..errors import InputError
from ..progress import Progress
from ..stats import PixelSample
from .plan import Plan, RunInfo, fit_data, reduce_projection

if TYPE_CHECKING:  # annotations only: the engine runs any object with the detector contract
    from ..base import Detector

__all__ = ["drive"]


def drive(det: Detector, passes, plan: Plan, info: RunInfo, prog: Progress, reduce, bands_in: int):
    """The run of one plan, the same for every executor: statistics, the optional projection on principal
    components, the fit (on statistics, a sample or crops), the optional refine pass, then the scores.

    ``passes`` executes the passes over the blocks: :class:`LocalPasses` (this process),
    ``hadcore.engine.cluster._ClusterPasses`` (a Dask cluster) and ``hadcore.engine.lazy._LazyPasses`` (a lazy dask
    array). It has ``stats(windows, size, seed, prog, exclude) -> (Moments, PixelSample or None, n_valid)``,
    ``project(mean, V)``, ``release()``, ``crops(windows, prog) -> list``, ``refine(det, windows, prog)`` (the
    merged refine part) and ``score(det, plan, prog)``, whose result is returned.
    """
    ctx = det.context()
    H, W, B = plan.shape
    n_passes = 1 + int(plan.needs_stats) + int(ctx.refine)
    share = 1.0 / n_passes
    at = 0.0
    moments = sample = n_valid = None
    # ---------------- statistics pass
    if plan.needs_stats:
        size = int(ctx.sample)
        moments, sample, n_valid = passes.stats(plan.stat_windows, size, int(ctx.seed), prog.sub(0.0, share),
                                                exclude=_check_exclude(ctx.exclude, (H, W)))
        if sample is None and size:
            sample = PixelSample.empty(size, ctx.seed, bands_in)
        at = share
        if reduce:
            mean, V = reduce_projection(moments, reduce[1])
            passes.project(mean, V)
            moments = moments.project(mean, V)
            if sample is not None:  # the same pixels, projected
                sample = PixelSample(sample.size, sample.seed, sample.index, (sample.pixels - mean) @ V,
                                     sample.keys)
        if n_valid < det.min_pixels:
            raise InputError(f"{det.name}: needs at least {det.min_pixels} valid pixels, got {n_valid}")
        info.n_valid = n_valid
    passes.release()  # the score pass's blocks have their own size and budget

    # ---------------- fit
    data = fit_data(ctx, (H, W, B), n_valid, moments, sample)
    if ctx.crops:
        data.crops = passes.crops(crop_windows((H, W), ctx.crops, ctx.crop_size, ctx.seed), prog.sub(at, at))
    det._fit(data, prog.sub(at, at + 0.02))
    del data
    if ctx.refine:
        windows = plan.stat_windows or list(plan.score_windows)
        det._refine_finish(passes.refine(det, windows, prog.sub(at, at + share)))
        at += share
    det.fitted_bands_ = B

    # ---------------- score pass
    out = passes.score(det, plan, prog.sub(at, 1.0))
    prog.update(1.0)
    return out


def _check_exclude(exclude, shape):
    """The context's ``exclude`` mask, checked against the scene's (H, W)."""
    if exclude is None:
        return None
    ex = np.asarray(exclude, dtype=bool)
    if ex.shape != tuple(shape):
        raise InputError(f"the exclusion mask is {ex.shape[0]} x {ex.shape[1]} pixels, the scene "
                         f"{shape[0]} x {shape[1]}")
    return ex if ex.any() else None
