"""What a detector needs of a scene (:class:`Context`) and what it is fitted on (:class:`FitData`).

The engine plans its passes from a :class:`Context` and hands the detector a :class:`FitData`; both sit below
the engine and the detectors so that either can use them without importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import numpy as np

from .stats import Moments, PixelSample

__all__ = ["Context", "FitData", "fit_data_from_cube", "crop_windows"]


@dataclass(frozen=True)
class Context:
    """What a detector needs of the scene, so that the engine (:mod:`hadcore.engine`) can run it block by
    block, under a memory budget, in-process or on a cluster.

    Attributes
    ----------
    halo : int
        Pixels of context needed on every side of a block (local / windowed detectors). Scores of the
        block's interior are exact: they equal the scores of the whole image.
    global_stats : bool
        The fit needs whole-image statistics (:class:`hadcore.stats.Moments`: count, mean, scatter, band
        minimum and maximum), collected in a first pass.
    sample : int
        The fit needs a bounded uniform sample of this many valid pixels (:class:`hadcore.stats.PixelSample`,
        drawn with ``seed``); a scene with fewer valid pixels is taken whole.
    crops, crop_size : int
        The fit needs ``crops`` square spatial crops of ``crop_size`` pixels (drawn with ``seed``); a scene
        whose area is at most ``crops * crop_size**2`` is taken whole, as one crop.
    seed : int
        Seed of the sample and the crops.
    whole_scene : bool
        The model couples the whole image: the engine runs the detector on scene tiles of ``tile`` pixels
        that overlap by ``halo`` pixels on every side, blending scores linearly across the overlap.
    tile : int
        Side of a scene tile (``whole_scene`` only).
    refine : bool
        The fit needs one more pass after the statistics and the sample (see
        :meth:`Detector._refine_block`).
    exclude : (H, W) bool array or None
        Pixels the statistics pass and the sample leave out (a target detector's background without its
        targets: ``--exclude``); they are scored like every other pixel.
    """

    halo: int = 0
    global_stats: bool = False
    whole_scene: bool = False
    sample: int = 0
    crops: int = 0
    crop_size: int = 0
    seed: int = 0
    tile: int = 0
    refine: bool = False
    exclude: Optional[np.ndarray] = field(default=None, compare=False, repr=False)

    @property
    def scaling(self) -> str:
        """How the detector scales: ``local`` (halo only), ``stats`` (two passes: statistics, scores),
        ``sample`` (fit on a bounded sample, then scores block by block), ``tiles`` (overlapping scene
        tiles, blended)."""
        if self.whole_scene:
            return "tiles"
        if self.sample or self.crops:
            return "sample"
        if self.global_stats or self.refine:
            return "stats"
        return "local"

    @property
    def exact(self) -> bool:
        """Streamed scores equal in-memory scores (up to float rounding)."""
        return self.scaling in ("local", "stats") and not self.refine

    def describe(self) -> str:
        s = self.scaling
        if s == "local":
            return f"local: a halo of {self.halo} pixels; exact under tiling"
        if s == "stats":
            if self.refine:
                return (f"three passes: whole-image statistics, a refine pass, then scores with a halo of "
                        f"{self.halo} pixels; nearly exact under tiling")
            return f"two passes: whole-image statistics, then scores with a halo of {self.halo} pixels; " \
                   "exact under tiling"
        if s == "sample":
            what = []
            if self.sample:
                what.append(f"{self.sample} sampled pixels")
            if self.crops:
                what.append(f"{self.crops} crops of {self.crop_size} x {self.crop_size} pixels")
            if self.global_stats:
                what.append("whole-image statistics")
            return f"fitted on {' and '.join(what)}, then scored block by block (halo {self.halo})"
        return f"scene tiles of {self.tile} x {self.tile} pixels overlapping by {self.halo}, blended"


@dataclass
class FitData:
    """What the engine hands to :meth:`Detector._fit`: the parts the detector's :class:`Context` asked for.

    ``moments`` (:class:`~hadcore.stats.Moments` of the valid pixels), ``sample`` ((n, B) float64 valid
    pixels in row-major order) and ``sample_index`` (their flat indices), ``crops`` (list of
    ``(cube float64 (h, w, B), valid (h, w))``), ``refined`` (the merged result of the refine pass), the
    scene ``shape`` (H, W, B) and its number of valid pixels ``n_valid``.
    """

    shape: Tuple[int, int, int]
    n_valid: int
    moments: Any = None
    sample: Optional[np.ndarray] = None
    sample_index: Optional[np.ndarray] = None
    crops: Optional[list] = None
    refined: Any = None

    def value_range(self) -> Tuple[float, float]:
        """(lowest, highest) value over all bands of the valid pixels: exact from ``moments`` when they hold
        band minima and maxima, else from ``sample`` (then approximate), else ``(nan, nan)`` (``--reduce``
        leaves the projected moments without minima and maxima)."""
        m = self.moments
        if m is not None and m.n > 0 and np.isfinite(m.minimum).all() and np.isfinite(m.maximum).all():
            return float(m.minimum.min()), float(m.maximum.max())
        if self.sample is not None and self.sample.size:
            return float(self.sample.min()), float(self.sample.max())
        return float("nan"), float("nan")


def crop_windows(shape, n: int, size: int, seed: int) -> List[Tuple[int, int, int, int]]:
    """``n`` square crop windows of side ``size`` drawn with ``seed``; the whole scene when it is small."""
    H, W = shape[:2]
    if n <= 0:
        return []
    if H * W <= n * size * size or (H <= size and W <= size):
        return [(0, H, 0, W)]
    rng = np.random.default_rng(seed)
    sh, sw = min(size, H), min(size, W)
    out = []
    for _ in range(n):
        r = int(rng.integers(0, H - sh + 1))
        c = int(rng.integers(0, W - sw + 1))
        out.append((r, r + sh, c, c + sw))
    return out



def fit_data_from_cube(cube: np.ndarray, mask: np.ndarray, ctx: Context) -> FitData:
    """The :class:`FitData` of a prepared in-memory cube (float64, zeros at invalid), as one block."""
    H, W, B = cube.shape
    data = FitData(shape=(H, W, B), n_valid=int(mask.sum()))
    if ctx.global_stats:
        data.moments = Moments.of_block(cube, mask)
    if ctx.sample:
        s = PixelSample.of_block(cube, mask, 0, 0, W, int(ctx.sample), int(ctx.seed)).sorted()
        data.sample, data.sample_index = s.pixels, s.index
    if ctx.crops:
        data.crops = [(cube[r0:r1, c0:c1], mask[r0:r1, c0:c1])
                      for r0, r1, c0, c1 in crop_windows(cube.shape, ctx.crops, ctx.crop_size, ctx.seed)]
    return data

