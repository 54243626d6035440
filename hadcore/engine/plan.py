"""The plan of a run: the memory budget, the blocks of each pass and their halos, and the fit's inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np

from ..context import Context, FitData
from ..errors import InputError, ParameterError
from ..stats import Moments
from .source import Window

if TYPE_CHECKING:  # annotations only: the engine runs any object with the detector contract
    from ..base import Detector

__all__ = ["MB", "Plan", "RunInfo", "plan_blocks", "block_cost", "parse_reduce", "default_mem_limit_mb",
           "halo_window", "blend_weights", "check_bands", "reduce_projection", "fit_data", "max_block_pixels"]

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


def default_mem_limit_mb() -> int:
    """The default budget: a quarter of the physical memory, at most 2048 MB, at least 256 MB."""
    try:
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 8 * 2**30
    return int(max(256, min(2048, total // 4 // MB)))



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


def halo_window(window: Window, halo: int, H: int, W: int) -> Window:
    r0, r1, c0, c1 = window
    return max(r0 - halo, 0), min(r1 + halo, H), max(c0 - halo, 0), min(c1 + halo, W)



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



@dataclass
class RunInfo:
    """What a run did (the CLI reports it; tests check it)."""

    plan: Plan
    n_valid: int = 0
    bands_in: int = 0
    bands_used: int = 0
    reduce: Optional[Tuple[str, int]] = None
    #: what the detector decided on the data (:meth:`hadcore.base.Detector.run_report`), for the layer's tags
    detector_tags: Dict[str, str] = field(default_factory=dict)


