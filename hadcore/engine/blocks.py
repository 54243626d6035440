"""The work on one block, the same in every executor: statistics of a block, the scores of a block read with
its halo, and the blending of overlapping scene tiles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from ..progress import Progress
from ..stats import Moments, PixelSample
from .plan import Plan, blend_weights, halo_window
from .source import Sink, Source, Window

if TYPE_CHECKING:  # annotations only: the engine runs any object with the detector contract
    from ..base import Detector

__all__ = ["collect_block", "score_window", "BlendAccumulator"]


def collect_block(source: Source, window: Window, want_moments: bool, sample_size: int, seed: int, exclude=None):
    """Statistics of one block (no halo): (Moments or None, PixelSample or None, n_valid). ``exclude``: the
    block's (h, w) bool mask of pixels left out (:attr:`hadcore.base.Context.exclude`)."""
    r0, r1, c0, c1 = window
    raw = getattr(source, "raw_block", None)  # a duck-typed source may only have block()
    X, valid = raw(r0, r1, c0, c1) if raw is not None else source.block(r0, r1, c0, c1, scratch=True)
    if exclude is not None:
        valid = valid & ~np.asarray(exclude, dtype=bool)
    mom = Moments.of_block(X, valid) if want_moments else None
    smp = PixelSample.of_block(X, valid, r0, c0, source.shape[1], sample_size, seed) if sample_size else None
    return mom, smp, int(valid.sum())



def score_window(det: Detector, source: Source, window: Window, halo: int, progress: Optional[Progress] = None,
                 blend: bool = False, placed: bool = True):
    """Score one block: read it with its halo, score, keep the interior. ``placed``: the window is in scene
    coordinates (the detector is told the block's origin, :meth:`Detector._score_at`); False for a chunk of
    a lazy dask array, whose place the task does not know.

    Returns ``(outer_window, scores float32 (h, w) of the interior, or of the whole outer window when blend)``.
    Blocks without valid pixels, or (blend) with fewer than ``min_pixels``, are NaN.
    """
    H, W = source.shape[:2]
    R0, R1, C0, C1 = halo_window(window, halo, H, W)
    X, valid = source.block(R0, R1, C0, C1, scratch=True)
    prog = progress if progress is not None else Progress()
    n = int(valid.sum())
    if n == 0 or (blend and n < det.min_pixels):
        s = np.full(valid.shape, np.nan, dtype=np.float32)
    else:
        s = np.asarray(det._score_at(X, valid, (R0, C0) if placed else None, prog), dtype=np.float32)
        if s.shape != valid.shape:
            raise RuntimeError(f"{det.name}: _score returned shape {s.shape}, expected {valid.shape}")
        s = s.copy()
        s[~valid] = np.nan
    del X
    if blend:
        return (R0, R1, C0, C1), s
    r0, r1, c0, c1 = window
    return window, np.ascontiguousarray(s[r0 - R0:r1 - R0, c0 - C0:c1 - C0])



class BlendAccumulator:
    """Blends the scores of overlapping scene tiles (:func:`blend_weights`) into a sink.

    :meth:`add` takes the tiles in any order (the Dask backend adds them as they arrive); the rows of a tile
    row are written once every tile that touches them has been added, so only a few tile rows are held.
    ``order`` lists the windows in the order the in-process engine scores them.
    """

    def __init__(self, plan: Plan, sink: Sink):
        self.H, self.W = plan.shape[:2]
        self.halo = plan.halo
        self.sink = sink
        rows: dict = {}
        for win in plan.score_windows:
            rows.setdefault((win[0], win[1]), []).append(win)
        self.bands = sorted(rows)
        self.order = [w for key in self.bands for w in rows[key]]
        self.left = {key: len(rows[key]) for key in self.bands}
        self.next_band = 0  # first tile row not complete yet
        self.acc_r0 = 0
        self.num = np.zeros((0, self.W))
        self.den = np.zeros((0, self.W))

    def add(self, window: Window, outer: Window, s: np.ndarray) -> None:
        """Add the scores ``s`` of the tile ``window``, scored over ``outer`` (:func:`score_window`, blend)."""
        H, W, acc_r0 = self.H, self.W, self.acc_r0
        o0, o1, p0, p1 = outer
        if acc_r0 + self.num.shape[0] < o1:  # extend the accumulator down to the tile's last row
            extra = o1 - (acc_r0 + self.num.shape[0])
            self.num = np.concatenate([self.num, np.zeros((extra, W))])
            self.den = np.concatenate([self.den, np.zeros((extra, W))])
        wgt = blend_weights(outer, self.halo, H, W)
        ok = np.isfinite(s)
        self.num[o0 - acc_r0:o1 - acc_r0, p0:p1] += np.where(ok, s, 0.0) * wgt
        self.den[o0 - acc_r0:o1 - acc_r0, p0:p1] += ok * wgt
        self.left[(window[0], window[1])] -= 1
        while self.next_band < len(self.bands) and self.left[self.bands[self.next_band]] == 0:
            bi = self.next_band
            self.next_band += 1
            # rows above the next tile row's first halo row are final
            nxt = max(self.bands[bi + 1][0] - self.halo, 0) if bi + 1 < len(self.bands) else H
            n_final = nxt - self.acc_r0
            if n_final > 0:
                num, den = self.num[:n_final], self.den[:n_final]
                with np.errstate(invalid="ignore", divide="ignore"):
                    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan).astype(np.float32)
                self.sink.write(self.acc_r0, 0, out)
                self.num, self.den = self.num[n_final:], self.den[n_final:]
                self.acc_r0 = nxt


