"""The streaming engine: blocks, halos, passes and a memory budget (numpy only; no files here).

A detector declares what it needs of the scene in its :class:`~hadcore.base.Context`; the engine turns that
into a plan and runs it over a :class:`Source` (anything that reads windows: a numpy array, an xarray or dask
array, a GDAL raster through :mod:`hadcore.io`) into a :class:`Sink` (an array, or the score GeoTIFF written
block by block by :mod:`hadcore.io`):

1. **statistics pass** (when the context asks for ``global_stats``, a ``sample``, or ``--reduce``): every
   block is read once, without halo, into mergeable :class:`~hadcore.stats.Moments` and a bottom-k
   :class:`~hadcore.stats.PixelSample`;
2. **crops** (``crops``): a few square windows read at positions drawn with the seed;
3. **fit**: :meth:`Detector._fit` on those; then the optional **refine pass** (``refine``);
4. **score pass**: every block is read with a halo of ``Context.halo`` pixels (clipped at the image border),
   scored by :meth:`Detector._score`, and its interior written to the sink. Whole-scene detectors
   (``whole_scene``) run on scene tiles of ``Context.tile`` pixels that overlap by the halo; their scores
   are blended linearly across the overlap.

Block size is chosen from the memory budget (:func:`plan_blocks`): full-width strips when one fits (every
GDAL layout reads those efficiently), square tiles otherwise. The block functions (:func:`collect_block`,
:func:`score_window`) are plain numpy functions of a source and a window, so the Dask backend
(:mod:`hadcore.distributed`) runs the very same code on workers.

With ``reduce=("pca", K)`` every block is projected on the K leading principal components of the global
covariance (from the statistics pass) before any detector sees it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .base import Context, Detector, FitData, prepare_block, valid_mask
from .errors import InputError, ParameterError
from .progress import Progress, as_progress
from .stats import Moments, PixelSample

__all__ = [
    "Source", "ArraySource", "ProjectedSource", "Sink", "ArraySink", "Window", "Plan", "plan_blocks",
    "run", "detect_in_memory", "fit_data_from_cube", "collect_block", "score_window", "parse_reduce",
    "default_mem_limit_mb", "MB",
]

MB = 2**20
#: working memory of the in-memory ``detect`` path for detectors exact under tiling
IN_MEMORY_BUDGET = 512 * MB
#: most pixels in one block (progress granularity, and the float64 copies of wide scenes)
MAX_BLOCK_PIXELS = 2**22
#: most bytes of one block's float64 copy. Larger blocks buy no BLAS speed (a 128k x 224 GEMM is already at
#: peak) but cost fresh memory: the first touch of a page is a fault, measured here at 3 s for a fresh
#: 1.4 GB block against 0.2 s for the same block in reused memory, so a budget is a ceiling, not a target.
MAX_BLOCK_BYTES = 256 * 2**20


def max_block_pixels(bands: int) -> int:
    """Most pixels in one block of ``bands`` bands (:data:`MAX_BLOCK_PIXELS`, :data:`MAX_BLOCK_BYTES`)."""
    return int(max(4096, min(MAX_BLOCK_PIXELS, MAX_BLOCK_BYTES // (8 * max(1, int(bands))))))

Window = Tuple[int, int, int, int]  # r0, r1, c0, c1 (half-open)


def default_mem_limit_mb() -> int:
    """The default budget: a quarter of the physical memory, at most 2048 MB, at least 256 MB."""
    try:
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 8 * 2**30
    return int(max(256, min(2048, total // 4 // MB)))


# ================================================================================================ sources
class Source:
    """A scene read by windows. Subclasses set ``shape`` (H, W, B) and implement :meth:`read`.

    ``read(r0, r1, c0, c1)`` returns the (h, w, B) values (float32 or float64) of the selected bands;
    :meth:`block` adds the valid mask and the float64 copy the detectors work on. ``nodata`` marks pixels
    that hold it in every band. ``block_shape`` is the storage's own block (rows, columns), used to align
    windows; ``name`` names the source in messages.
    """

    shape: Tuple[int, int, int] = (0, 0, 0)
    nodata: Optional[float] = None
    block_shape: Optional[Tuple[int, int]] = None
    name: str = "array"

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def user_mask(self, r0: int, r1: int, c0: int, c1: int) -> Optional[np.ndarray]:
        return None

    def block(self, r0: int, r1: int, c0: int, c1: int, scratch: bool = False) -> Tuple[np.ndarray, np.ndarray]:
        """(X float64 (h, w, B) with zeros at invalid pixels, valid (h, w) bool).

        ``scratch=True`` writes X into this thread's reusable buffer (:func:`scratch_buffer`): valid only until
        the next scratch block of the thread, so only for blocks nothing keeps.
        """
        raw, valid = self.raw_block(r0, r1, c0, c1)
        out = scratch_buffer(raw.shape) if scratch else None
        return prepare_block(raw, valid, out=out), valid

    def raw_block(self, r0: int, r1: int, c0: int, c1: int) -> Tuple[np.ndarray, np.ndarray]:
        """(X (h, w, B) as read: any dtype, possibly a strided view, values at invalid pixels as stored;
        valid (h, w) bool). For the statistics pass, which gathers valid pixels a few rows at a time into
        float64 itself: no float64 copy of the whole block (measured on a 1000 x 1000 x 224 tile: that copy
        was 40 % of RX's statistics pass)."""
        raw = self.read(r0, r1, c0, c1)
        return raw, valid_mask(raw, self.nodata, self.user_mask(r0, r1, c0, c1))


_SCRATCH = threading.local()


def scratch_buffer(shape, dtype=np.float64, slot: str = "block") -> np.ndarray:
    """An array of ``shape`` and ``dtype`` in a buffer of this thread reused by the blocks of a pass.

    Fresh memory costs a page fault per 4 KB on first touch (measured here: 2.8 s for the first 0.9 GB block,
    0.5 s for the next one in reused memory), so the engine's float64 blocks (slot ``"block"``) and a file
    reader's buffers (slot ``"read"``) each reuse one buffer.
    """
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.size < n:
        bufs.pop(slot, None)
        buf = bufs[slot] = np.empty(n, dtype=np.uint8)
    return buf[:n].view(dtype).reshape(shape)


def release_scratch() -> None:
    """Drop this thread's block buffers (end of a run)."""
    _SCRATCH.bufs = {}


class ArraySource(Source):
    """A (H, W, B) array in memory (numpy, a memmap, or anything sliceable such as a dask array)."""

    read_bytes = 0  # a numpy slice is a view

    def __init__(self, array, mask=None, nodata: Optional[float] = None, name: str = "array"):
        if getattr(array, "ndim", None) != 3:
            raise InputError(f"expected a cube of shape (H, W, B), got an array of shape {getattr(array, 'shape', '?')}")
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.mask = None if mask is None else np.asarray(mask, dtype=bool)
        if self.mask is not None and self.mask.shape != self.shape[:2]:
            raise InputError(f"mask shape {self.mask.shape} does not match the image {self.shape[:2]}")
        self.nodata = nodata
        self.name = name

    def read(self, r0, r1, c0, c1):
        return np.asarray(self.array[r0:r1, c0:c1])

    def user_mask(self, r0, r1, c0, c1):
        return None if self.mask is None else self.mask[r0:r1, c0:c1]


class ProjectedSource(Source):
    """Another source's blocks projected on ``V`` (B, K) after removing ``mean``: ``(x - mean) @ V``.

    The valid mask is the one of the raw block (projection never makes a pixel valid or invalid).
    """

    def __init__(self, base: Source, mean: np.ndarray, V: np.ndarray):
        self.base = base
        self.mean = np.asarray(mean, dtype=np.float64)
        self.V = np.asarray(V, dtype=np.float64)
        self.shape = base.shape[:2] + (self.V.shape[1],)
        self.nodata = None
        self.block_shape = base.block_shape
        self.read_bytes = getattr(base, "read_bytes", 4)
        self.name = base.name

    def read(self, r0, r1, c0, c1):  # pragma: no cover - block() is used
        X, _ = self.block(r0, r1, c0, c1)
        return X

    def raw_block(self, r0, r1, c0, c1):
        return self.block(r0, r1, c0, c1, scratch=True)

    def block(self, r0, r1, c0, c1, scratch=False):
        X, valid = self.base.block(r0, r1, c0, c1, scratch=scratch)
        h, w, B = X.shape
        P = X.reshape(h * w, B) @ self.V  # (x - mean) V without a centred copy of the block
        del X
        P -= self.mean @ self.V
        P = P.reshape(h, w, -1)
        P[~valid] = 0.0
        return np.ascontiguousarray(P), valid


def parse_reduce(spec) -> Optional[Tuple[str, int]]:
    """``"pca:K"`` -> ("pca", K); None / "" / "none" -> None."""
    if spec is None:
        return None
    if isinstance(spec, tuple):
        return spec
    s = str(spec).strip().lower()
    if s in ("", "none", "off"):
        return None
    kind, _, k = s.partition(":")
    try:
        kk = int(k)
    except ValueError:
        kk = 0
    if kind != "pca" or kk < 1:
        raise ParameterError(f"reduce: expected 'pca:K' with K >= 1, got {spec!r}")
    return "pca", kk


# ================================================================================================ sinks
class Sink:
    """Receives scored blocks: :meth:`write` (r0, c0, (h, w) float32 with NaN = invalid)."""

    def write(self, r0: int, c0: int, scores: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ArraySink(Sink):
    def __init__(self, height: int, width: int):
        self.array = np.full((height, width), np.nan, dtype=np.float32)

    def write(self, r0, c0, scores):
        h, w = scores.shape
        self.array[r0:r0 + h, c0:c0 + w] = scores


# ================================================================================================ planning
@dataclass
class Plan:
    """Windows of the passes and what the fit needs."""

    shape: Tuple[int, int, int]
    halo: int
    blend: bool
    stat_windows: List[Window]
    score_windows: List[Window]
    needs_stats: bool
    budget: int
    block_bytes: int
    notes: List[str] = field(default_factory=list)

    @property
    def n_blocks(self) -> int:
        return len(self.score_windows)


def _split(n: int, size: int, align: int = 1) -> List[Tuple[int, int]]:
    """Cut range(n) into consecutive pieces of about ``size`` (a multiple of ``align`` where possible),
    spread evenly so the last piece is not a sliver."""
    size = max(1, min(int(size), n))
    if align > 1 and size >= align:
        size = (size // align) * align
    k = -(-n // size)
    if align > 1 and size % align == 0:
        edges = [min(i * size, n) for i in range(k + 1)]
    else:
        edges = [round(i * n / k) for i in range(k + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def block_cost(det: Detector, h: int, w: int, bands: int, in_bands: int, read_bytes: int = 4) -> int:
    """Bytes held while scoring one h x w window: the raw read (``read_bytes`` per band and pixel: a file
    reader's float32 buffers; 0 for an array in memory, which is sliced), its float64 copy, the projected
    block (``--reduce``), and the detector's working memory."""
    per_px = in_bands * (read_bytes + 8) + (bands * 8 if bands != in_bands else 0)
    return h * w * per_px + det.working_bytes(h, w, bands)


_block_cost = block_cost


def _tile_aligned(H: int, W: int, tr: int, tc: int, fits, max_px: int = MAX_BLOCK_PIXELS) -> Optional[Tuple[int, int]]:
    """The largest block (rows, cols) made of whole storage tiles (``tr`` x ``tc``) with ``fits(rows, cols)``,
    widest first, so that no tile is decoded twice in a pass; None when not even one tile fits."""
    for kc in range(-(-W // tc), 0, -1):
        bw = min(W, kc * tc)
        if not fits(min(tr, H), bw) or (kc > 1 and min(tr, H) * bw > max_px):
            continue
        kr = 1
        while kr * tr < H and fits(min((kr + 1) * tr, H), bw) and min((kr + 1) * tr, H) * bw <= max_px:
            kr += 1
        return min(kr * tr, H), bw
    return None


def _grid(H: int, W: int, bh: int, bw: int) -> List[Window]:
    return [(r0, min(r0 + bh, H), c0, min(c0 + bw, W)) for r0 in range(0, H, bh) for c0 in range(0, W, bw)]


def plan_blocks(det: Detector, shape: Tuple[int, int, int], budget_bytes: int, *, in_bands: Optional[int] = None,
                block_shape: Optional[Tuple[int, int]] = None, needs_stats: bool = False,
                whole: bool = False, read_bytes: int = 4) -> Plan:
    """The windows of the statistics and score passes under ``budget_bytes``.

    A tiled file (``block_shape`` narrower than the image) is read in windows of whole storage tiles, so
    each tile is decoded once per pass; a striped one in full-width strips aligned on its strips.
    Raises :class:`InputError` naming the smallest budget that works when not even the smallest block fits.
    """
    H, W, B = shape
    in_bands = in_bands or B
    rb = int(read_bytes)

    def block_cost(det_, h, w, bands, inb):  # noqa: F811 - this plan's read buffers
        return _block_cost(det_, h, w, bands, inb, rb)

    ctx = det.context()
    halo = int(ctx.halo)
    fixed = det.state_bytes(B) + (2 * B * B * 8 if needs_stats else 0)
    avail = budget_bytes - fixed
    align_r, align_c = block_shape or (1, 1)
    max_px = max_block_pixels(max(B, in_bands))
    notes: List[str] = []
    if whole:
        score = [(0, H, 0, W)]
        cost = block_cost(det, H, W, B, in_bands)
    elif ctx.whole_scene:
        T = int(ctx.tile) if ctx.tile else max(H, W)
        th, tw = min(T, H), min(T, W)
        cost = block_cost(det, th + 2 * halo, tw + 2 * halo, B, in_bands)
        if cost > avail:
            need = -(-(cost + fixed) // MB) + 1
            raise InputError(
                f"{det.name}: a memory limit of {budget_bytes // MB} MB cannot hold one scene tile of "
                f"{th + 2 * halo} x {tw + 2 * halo} pixels x {B} bands; the smallest budget that works is {need} MB"
            )
        score = [(r0, r1, c0, c1) for r0, r1 in _split(H, th) for c0, c1 in _split(W, tw)]
        notes.append(f"scene tiles of {th} x {tw} pixels, overlap {halo}")
    tiled = block_shape is not None and block_shape[1] < W and block_shape[0] > 1
    aligned = None
    if not whole and not ctx.whole_scene and tiled:
        aligned = _tile_aligned(H, W, align_r, align_c, lambda h, w: block_cost(
            det, min(h + 2 * halo, H), min(w + 2 * halo, W), B, in_bands) <= avail, max_px)
    if aligned is not None:
        bh, bw = aligned
        score = _grid(H, W, bh, bw)
        cost = block_cost(det, min(bh + 2 * halo, H), min(bw + 2 * halo, W), B, in_bands)
        notes.append(f"windows of {bh} x {bw} pixels, whole storage tiles")
    elif whole or ctx.whole_scene:
        pass
    else:
        # full-width strips when the smallest useful strip fits, else square tiles
        min_core = max(8, min(64, H))
        w_in = W
        if block_cost(det, min(min_core + 2 * halo, H), W, B, in_bands) > avail:
            # square tiles: largest side s with cost(s + 2 halo, s + 2 halo) <= avail
            s = 8
            while s * 2 <= max(H, W) and block_cost(det, 2 * s + 2 * halo, 2 * s + 2 * halo, B, in_bands) <= avail:
                s *= 2
            while block_cost(det, s + 2 * halo, s + 2 * halo, B, in_bands) > avail and s > 8:
                s //= 2
            if block_cost(det, s + 2 * halo, s + 2 * halo, B, in_bands) > avail or s < 8:
                need = -(-(block_cost(det, 8 + 2 * halo, 8 + 2 * halo, B, in_bands) + fixed) // MB) + 1
                raise InputError(
                    f"{det.name}: a memory limit of {budget_bytes // MB} MB cannot hold one block of this "
                    f"{B}-band scene with its halo of {halo} pixels; the smallest budget that works is {need} MB"
                )
            bh, bw = min(s, H), min(s, W)
            w_in = bw + 2 * halo
        else:
            bw = W
            bh = min_core
            def fits(rows):
                return block_cost(det, min(rows + 2 * halo, H), w_in, B, in_bands) <= avail

            while bh < H and fits(2 * bh) and 2 * bh * W <= max_px:
                bh *= 2
            # grow linearly up to the budget
            step = max(1, bh // 4)
            while bh + step <= H and fits(bh + step) and (bh + step) * W <= max_px:
                bh += step
            bh = min(bh, H)
        score = [(r0, r1, c0, c1) for r0, r1 in _split(H, bh, align_r)
                 for c0, c1 in _split(W, bw, align_c if bw < W else 1)]
        cost = block_cost(det, min(bh + 2 * halo, H), min(w_in, W), B, in_bands)
    stat: List[Window] = []
    if needs_stats:
        # statistics blocks: no halo, float64 copy + one centred copy
        per_px = in_bands * (rb + 8)  # the raw read and its float64 copy (statistics are of the raw bands)
        # Moments.of's float64 chunk, its centred copy and the gathered rows (up to 3 x 16 MB), and never
        # fewer than 8 full rows (a tiny budget must not mean 1-pixel blocks)
        avail = max(avail - min(3 * 16 * MB, max(avail, 0) // 2), per_px * min(W, 4096) * 8)
        rows = int(max(1, min(H, avail // max(per_px * W, 1), max(1, max_px // W))))
        st = _tile_aligned(H, W, align_r, align_c, lambda h, w: h * w * per_px <= avail, max_px) if tiled else None
        if st is not None:
            stat = _grid(H, W, *st)
        elif rows * W * per_px > avail:  # very wide scene: square stat blocks
            s = int(max(1, math.isqrt(max(avail // per_px, 1))))
            stat = [(r0, r1, c0, c1) for r0, r1 in _split(H, s) for c0, c1 in _split(W, s)]
        else:
            stat = [(r0, r1, 0, W) for r0, r1 in _split(H, rows, align_r)]
    return Plan(shape=(H, W, B), halo=halo, blend=bool(ctx.whole_scene and not whole), stat_windows=stat,
                score_windows=score, needs_stats=needs_stats, budget=budget_bytes, block_bytes=cost + fixed,
                notes=notes)


# ================================================================================================ block work
def collect_block(source: Source, window: Window, want_moments: bool, sample_size: int, seed: int):
    """Statistics of one block (no halo): (Moments or None, PixelSample or None, n_valid)."""
    r0, r1, c0, c1 = window
    raw = getattr(source, "raw_block", None)  # a duck-typed source may only have block()
    X, valid = raw(r0, r1, c0, c1) if raw is not None else source.block(r0, r1, c0, c1, scratch=True)
    mom = Moments.of_block(X, valid) if want_moments else None
    smp = PixelSample.of_block(X, valid, r0, c0, source.shape[1], sample_size, seed) if sample_size else None
    return mom, smp, int(valid.sum())


def halo_window(window: Window, halo: int, H: int, W: int) -> Window:
    r0, r1, c0, c1 = window
    return max(r0 - halo, 0), min(r1 + halo, H), max(c0 - halo, 0), min(c1 + halo, W)


def score_window(det: Detector, source: Source, window: Window, halo: int, progress: Optional[Progress] = None,
                 blend: bool = False):
    """Score one block: read it with its halo, score, keep the interior.

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
        s = np.asarray(det._score(X, valid, prog), dtype=np.float32)
        if s.shape != valid.shape:
            raise RuntimeError(f"{det.name}: _score returned shape {s.shape}, expected {valid.shape}")
        s = s.copy()
        s[~valid] = np.nan
    del X
    if blend:
        return (R0, R1, C0, C1), s
    r0, r1, c0, c1 = window
    return window, np.ascontiguousarray(s[r0 - R0:r1 - R0, c0 - C0:c1 - C0])


def blend_weights(outer: Window, halo: int, H: int, W: int) -> np.ndarray:
    """Linear ramps across the overlap with the neighbouring tiles (weights of overlapping tiles sum to 1)."""
    R0, R1, C0, C1 = outer

    def ramp(a, b, n):
        t = np.ones(b - a)
        L = 2 * halo
        if L <= 0:
            return t
        idx = np.arange(a, b) + 0.5
        if a > 0:
            t = np.minimum(t, (idx - a) / L)
        if b < n:
            t = np.minimum(t, (b - idx) / L)
        return np.clip(t, 0.0, 1.0)

    return np.outer(ramp(R0, R1, H), ramp(C0, C1, W))


def crop_windows(shape, n: int, size: int, seed: int) -> List[Window]:
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


# ================================================================================================ fitting
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


def reduce_projection(moments: Moments, k: int):
    """Mean and the (B, k) leading eigenvectors of the global covariance, for ``--reduce pca:k``."""
    B = moments.bands
    if k > B:
        raise ParameterError(f"reduce: pca:{k} asks for more components than the {B} bands")
    w, V = np.linalg.eigh(moments.cov())
    V = V[:, ::-1][:, :k]
    # a deterministic sign: the largest-magnitude entry of each component is positive
    sign = np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(k)])
    return moments.mean, V * np.where(sign == 0, 1.0, sign)


def check_bands(det: Detector, bands_in: int, reduce) -> Tuple[Optional[Tuple[str, int]], int]:
    """(parsed ``reduce``, bands the detector sees); an InputError when the detector gets too few."""
    if bands_in < det.min_bands:
        raise InputError(f"{det.name}: needs at least {det.min_bands} bands, got {bands_in}")
    red = parse_reduce(reduce)
    if red and red[1] < det.min_bands:
        raise InputError(f"{det.name}: needs at least {det.min_bands} bands, --reduce pca:{red[1]} keeps {red[1]}")
    return red, (red[1] if red else bands_in)


def fit_data(ctx: Context, shape, n_valid, moments, sample) -> FitData:
    """The :class:`FitData` of the statistics pass: the parts ``ctx`` asks for (crops are added by the caller,
    which reads them its own way)."""
    data = FitData(shape=tuple(shape), n_valid=int(n_valid or 0))
    if ctx.global_stats:
        data.moments = moments
    if ctx.sample and sample is not None:
        s = sample.sorted()
        data.sample, data.sample_index = s.pixels, s.index
    return data


# ================================================================================================ running
@dataclass
class RunInfo:
    """What a run did (the CLI reports it; tests check it)."""

    plan: Plan
    n_valid: int = 0
    bands_in: int = 0
    bands_used: int = 0
    reduce: Optional[Tuple[str, int]] = None


def drive(det: Detector, passes, plan: Plan, info: RunInfo, prog: Progress, reduce, bands_in: int):
    """The run of one plan, the same for every executor: statistics, the optional projection on principal
    components, the fit (on statistics, a sample or crops), the optional refine pass, then the scores.

    ``passes`` executes the passes over the blocks: :class:`LocalPasses` (this process),
    ``hadcore.distributed._ClusterPasses`` (a Dask cluster) and ``hadcore.api._LazyPasses`` (a lazy dask
    array). It has ``stats(windows, size, seed, prog) -> (Moments, PixelSample or None, n_valid)``,
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
        moments, sample, n_valid = passes.stats(plan.stat_windows, size, int(ctx.seed), prog.sub(0.0, share))
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


class LocalPasses:
    """The passes of :func:`drive` in this process, block after block, into ``sink``."""

    def __init__(self, source: Source, sink: Sink):
        self.source = self.src = source
        self.sink = sink

    def stats(self, windows, size, seed, prog):
        B_in = self.source.shape[2]
        moms, smps = Moments.empty(B_in), PixelSample.empty(size, seed, B_in) if size else None
        n_valid = 0
        for i, win in enumerate(windows):
            m, smp, n = collect_block(self.source, win, True, size, seed)
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
            part = det._refine_block(X, valid)
            del X, valid  # not held while the next block (or the score pass) is read
            merged = part if merged is None else det._refine_merge(merged, part)
            prog.update((i + 1) / len(windows))
        release_scratch()
        return merged

    def score(self, det, plan, prog):
        total = len(plan.score_windows)
        if plan.blend:
            _score_blended(det, self.src, self.sink, plan, prog)
        else:
            for i, win in enumerate(plan.score_windows):
                piece = prog.sub(i / total, (i + 1) / total)
                (r0, _, c0, _), s = score_window(det, self.src, win, plan.halo, piece)
                self.sink.write(r0, c0, s)
                piece.update(1.0)
        release_scratch()
        return self.sink


def run(det: Detector, source: Source, sink: Optional[Sink] = None, *, mem_limit_mb: Optional[float] = None,
        progress=None, reduce=None, whole: bool = False) -> Tuple[Sink, RunInfo]:
    """Run ``det`` over ``source`` into ``sink`` (default: an :class:`ArraySink`) under a memory budget, in
    this process (:func:`drive` with :class:`LocalPasses`).

    ``whole=True`` scores the scene as one block (the in-memory path of detectors that are not exact under
    tiling). Returns ``(sink, info)``.
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
    drive(det, LocalPasses(source, sink), plan, info, prog, red, B_in)
    return sink, info


def run_scene(det: Detector, source: Source, sink: Sink, *, output=None, mem_limit_mb: Optional[float] = None,
              progress=None, reduce=None, client=None) -> RunInfo:
    """Run ``det`` over a scene's ``source`` into ``sink``: the one entry the CLI, the QGIS algorithms and
    :func:`hadcore.detect` call. Returns the run's :class:`RunInfo`.

    ``client``: a ``distributed.Client`` runs the same plan on Dask (:func:`hadcore.distributed.run_distributed`),
    else in this process (:func:`run`). ``output``: a swath product's map grid (``Scene.output``, with
    ``height`` and ``remap(swath, r0, r1)``): the swath is scored into memory (one band, small) and ``sink``
    receives the map grid, 256 rows at a time; ``sink`` then has the grid's shape, not the source's.
    """
    target = ArraySink(*source.shape[:2]) if output is not None else sink
    if client is not None:
        from .distributed import run_distributed

        _, info = run_distributed(det, source, target, client=client, mem_limit_mb=mem_limit_mb, progress=progress,
                                  reduce=reduce)
    else:
        _, info = run(det, source, target, mem_limit_mb=mem_limit_mb, progress=progress, reduce=reduce)
    if output is not None:
        for r0 in range(0, output.height, 256):
            sink.write(r0, 0, output.remap(target.array, r0, min(r0 + 256, output.height)))
    return info


def _score_blended(det: Detector, src: Source, sink: Sink, plan: Plan, prog: Progress) -> None:
    """Scene tiles with overlap, blended; finished rows are flushed to the sink one tile row at a time."""
    acc = BlendAccumulator(plan, sink)
    total = len(acc.order)
    for done, win in enumerate(acc.order):
        piece = prog.sub(done / total, (done + 1) / total)
        outer, s = score_window(det, src, win, plan.halo, piece, blend=True)
        acc.add(win, outer, s)
        piece.update(1.0)


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


def detect_in_memory(det: Detector, cube, mask, progress: Progress) -> np.ndarray:
    """:meth:`Detector.detect`: exact detectors block by block over the caller's array, others as one block."""
    from .base import check_cube

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
