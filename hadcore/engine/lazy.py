"""The lazy executor: the passes of :func:`~hadcore.engine.passes.drive` on a dask array, the scores a lazy
dask array (:func:`hadcore.detect` on dask input)."""

from __future__ import annotations

import uuid

import numpy as np

from ..errors import InputError
from ..progress import as_progress
from ..stats import Moments, PixelSample
from ..threads import limit_threads
from .blocks import score_window
from .passes import drive
from .plan import MB, RunInfo, blend_weights, check_bands, default_mem_limit_mb, halo_window, plan_blocks
from .source import ArraySource, ProjectedSource, Source


__all__ = ["detect_dask"]


def _is_dask(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "__dask_graph__")


# Block functions of the lazy path: plain functions of numpy blocks (picklable for a distributed scheduler),
# each run with a thread budget of one: the scheduler runs as many of them at once as it has threads.
def _one_thread(fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with limit_threads(1):
            return fn(*args, **kwargs)

    return wrapper


def _block_source(block, nodata, proj) -> Source:
    src: Source = ArraySource(block, None, nodata=nodata)
    return src if proj is None else ProjectedSource(src, proj[0], proj[1])


@_one_thread
def _chunk_stats(block, r0, c0, width, size, seed, nodata, exclude=None):
    h, w = block.shape[:2]
    X, valid = ArraySource(block, None, nodata=nodata).block(0, h, 0, w)
    if exclude is not None:
        valid = valid & ~exclude
    mom = Moments.of_block(X, valid)
    smp = PixelSample.of_block(X, valid, r0, c0, width, size, seed) if size else None
    return mom, smp, int(valid.sum())


@_one_thread
def _chunk_read(block, nodata, proj):
    h, w = block.shape[:2]
    return _block_source(block, nodata, proj).block(0, h, 0, w)


@_one_thread
def _chunk_refine(det, block, nodata, proj):
    X, valid = _chunk_read(block, nodata, proj)
    return det._refine_at(X, valid, None)


@_one_thread
def _chunk_score(block, det=None, nodata=None, proj=None):
    """Scores of a block read with its halo (map_overlap trims the halo)."""
    h, w = block.shape[:2]
    _, s = score_window(det, _block_source(block, nodata, proj), (0, h, 0, w), 0, placed=False)
    return s


@_one_thread
def _tile_score(outer_block, det, nodata, proj):
    h, w = outer_block.shape[:2]
    _, s = score_window(det, _block_source(outer_block, nodata, proj), (0, h, 0, w), 0, None, blend=True,
                        placed=False)
    return s


def _blend_core(core, halo, H, W, *pieces):
    """Blended scores of the tile ``core`` from the tiles overlapping it: ``pieces`` alternate outer windows
    and their scores, in the engine's order (tile rows, then columns), so the sums are the engine's."""
    r0, r1, c0, c1 = core
    num = np.zeros((r1 - r0, c1 - c0))
    den = np.zeros((r1 - r0, c1 - c0))
    for outer, s in zip(pieces[0::2], pieces[1::2]):
        o0, o1, p0, p1 = outer
        a0, a1, b0, b1 = max(o0, r0), min(o1, r1), max(p0, c0), min(p1, c1)
        if a0 >= a1 or b0 >= b1:
            continue
        wgt = blend_weights(outer, halo, H, W)[a0 - o0:a1 - o0, b0 - p0:b1 - p0]
        part = s[a0 - o0:a1 - o0, b0 - p0:b1 - p0]
        ok = np.isfinite(part)
        num[a0 - r0:a1 - r0, b0 - c0:b1 - c0] += np.where(ok, part, 0.0) * wgt
        den[a0 - r0:a1 - r0, b0 - c0:b1 - c0] += ok * wgt
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan).astype(np.float32)


def _tree_delayed(parts, merge, *extra):
    from dask import delayed

    items = list(parts)
    while len(items) > 1:
        items = [delayed(merge, pure=True)(*extra, items[i], items[i + 1]) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def _stats_merge(a, b):
    from .cluster import _stats_merge as merge

    return merge(a, b)


@_one_thread
def _refine_merge(det, a, b):
    return det._refine_merge(a, b)


def _edges(windows, axis: int):
    """Sorted distinct (start, stop) pieces of the plan's windows along rows (0) or columns (1)."""
    return sorted({(w[2 * axis], w[2 * axis + 1]) for w in windows})


def _at_least(chunks, depth: int):
    """Merge chunks smaller than ``depth`` into a neighbour (dask issue 11580: map_overlap needs every chunk
    at least as large as its depth)."""
    out = [int(c) for c in chunks if c]
    if depth <= 0 or len(out) <= 1:
        return tuple(out)
    merged = []
    for c in out:
        if merged and (merged[-1] < depth or c < depth):
            merged[-1] += c
        else:
            merged.append(c)
    if len(merged) > 1 and merged[-1] < depth:
        merged[-2] += merged.pop()
    return tuple(merged)


def _compute(obj, client):
    if client is not None:
        return client.compute(obj).result()
    import dask

    return dask.compute(obj)[0]


def detect_dask(det, arr, mask, nodata, client, mem_limit_mb, reduce, progress):
    import dask.array as da

    prog = as_progress(progress)
    if arr.ndim != 3:
        raise InputError(f"expected a cube of shape (H, W, B), got an array of shape {arr.shape}")
    H, W, B_in = (int(s) for s in arr.shape)
    red, B = check_bands(det, B_in, reduce)
    ctx = det.context()
    threads = 1
    if mem_limit_mb is None and client is not None:
        from .cluster import worker_budget_mb

        mem_limit_mb, threads = worker_budget_mb(client)
    budget = int((mem_limit_mb if mem_limit_mb is not None else default_mem_limit_mb()) * MB / max(threads, 1))
    need_stats = bool(ctx.global_stats or ctx.sample or red)
    plan = plan_blocks(det, (H, W, B), budget, in_bands=B_in, needs_stats=need_stats)

    if mask is not None:  # the mask is folded into the data: a masked pixel is non-finite, hence invalid
        m = mask if _is_dask(mask) else np.asarray(mask, dtype=bool)
        if tuple(m.shape) != (H, W):
            raise InputError(f"mask shape {tuple(m.shape)} does not match the image ({H}, {W})")
        arr = da.where(da.asarray(m)[:, :, None], arr.astype(np.result_type(arr.dtype, np.float32)), np.nan)
    # blocks: the plan's (a spectrum is never split: one chunk along the bands)
    rows = tuple(b - a for a, b in _edges(plan.score_windows, 0))
    cols = tuple(b - a for a, b in _edges(plan.score_windows, 1))
    arr = arr.rechunk((rows, cols, -1))
    info = RunInfo(plan=plan, bands_in=B_in, bands_used=B, reduce=red)
    return drive(det, _LazyPasses(arr, nodata, client, uuid.uuid4().hex[:8]), plan, info, prog, red, B_in)


class _LazyPasses:
    """The passes of :func:`hadcore.engine.drive` on a dask array: the statistics, crops and refine parts are
    computed (the fit needs their values); the scores stay lazy (a dask array, returned by :meth:`score`)."""

    def __init__(self, arr, nodata, client, token: str):
        self.arr, self.nodata, self.client, self.token, self.proj = arr, nodata, client, token, None

    def stats(self, windows, size, seed, prog, exclude=None):
        # a tree reduction over the array's chunks (the plan's score blocks)
        from dask import delayed

        arr, W = self.arr, int(self.arr.shape[1])
        blocks = arr.to_delayed()
        r_off = np.concatenate([[0], np.cumsum(arr.chunks[0])])
        c_off = np.concatenate([[0], np.cumsum(arr.chunks[1])])
        parts = [delayed(_chunk_stats, pure=True)(
            blocks[i, j, 0], int(r_off[i]), int(c_off[j]), W, size, seed, self.nodata,
            None if exclude is None else exclude[r_off[i]:r_off[i + 1], c_off[j]:c_off[j + 1]])
            for i in range(blocks.shape[0]) for j in range(blocks.shape[1])]
        result = _compute(_tree_delayed(parts, _stats_merge), self.client)
        prog.update(1.0)
        return result

    def project(self, mean, V):
        self.proj = (mean, V)

    def release(self):
        pass

    def crops(self, windows, prog):
        from dask import delayed

        return list(_compute([delayed(_chunk_read, pure=True)(self.arr[r0:r1, c0:c1], self.nodata, self.proj)
                              for r0, r1, c0, c1 in windows], self.client))

    def refine(self, det, windows, prog):
        from dask import delayed

        blocks = self.arr.to_delayed()
        parts = [delayed(_chunk_refine, pure=True)(det, blocks[i, j, 0], self.nodata, self.proj)
                 for i in range(blocks.shape[0]) for j in range(blocks.shape[1])]
        return _compute(_tree_delayed(parts, _refine_merge, det), self.client)

    def score(self, det, plan, prog):
        import dask.array as da

        arr, halo = self.arr, plan.halo
        if plan.blend:
            return _blended_lazy(det, arr, plan, self.nodata, self.proj, self.token)
        depth = {0: halo if len(arr.chunks[0]) > 1 else 0, 1: halo if len(arr.chunks[1]) > 1 else 0, 2: 0}
        if depth[0] or depth[1]:
            arr = arr.rechunk((_at_least(arr.chunks[0], depth[0]), _at_least(arr.chunks[1], depth[1]), -1))
        return da.map_overlap(_chunk_score, arr, depth=depth, boundary="none", trim=True, drop_axis=2,
                              dtype=np.float32, meta=np.empty((0, 0), dtype=np.float32),
                              name=f"hadcore-score-{self.token}", det=det, nodata=self.nodata, proj=self.proj)


def _blended_lazy(det, arr, plan, nodata, proj, token):
    """Whole-scene detectors: one task per scene tile scores the tile with its overlap, one task per tile
    blends the tiles that overlap it (the engine's weights and order of sums)."""
    import dask.array as da
    from dask import delayed

    H, W = plan.shape[:2]
    halo = plan.halo
    rows, cols = _edges(plan.score_windows, 0), _edges(plan.score_windows, 1)
    tiles = {}
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            outer = halo_window((r0, r1, c0, c1), halo, H, W)
            R0, R1, C0, C1 = outer
            tiles[i, j] = (outer, delayed(_tile_score, pure=True,
                                          name=f"hadcore-tile-{token}-{i}-{j}")(arr[R0:R1, C0:C1], det, nodata, proj))
    grid = []
    for i, (r0, r1) in enumerate(rows):
        line = []
        for j, (c0, c1) in enumerate(cols):
            core = (r0, r1, c0, c1)
            pieces = []
            for (ti, tj), (outer, s) in sorted(tiles.items()):
                o0, o1, p0, p1 = outer
                if o0 < r1 and o1 > r0 and p0 < c1 and p1 > c0:
                    pieces += [outer, s]
            blended = delayed(_blend_core, pure=True, name=f"hadcore-blend-{token}-{i}-{j}")(core, halo, H, W,
                                                                                               *pieces)
            line.append(da.from_delayed(blended, shape=(r1 - r0, c1 - c0), dtype=np.float32,
                                        meta=np.empty((0, 0), dtype=np.float32)))
        grid.append(line)
    return da.block(grid)
