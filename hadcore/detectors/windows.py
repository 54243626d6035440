"""Dual-window machinery shared by the local (windowed) detectors.

A *dual window* centred on a pixel is an ``outer`` x ``outer`` square minus the ``inner`` x ``inner``
square at its centre (both odd, ``inner < outer``); what is left is the *ring*, the local background.
The ring of a 3 / 11 window holds 11**2 - 3**2 = 112 pixels.

Border rule (the same for every hadcore local detector): **windows are clipped at the image border; the
ring holds only valid pixels inside the image.** Near the border, and around nodata pixels, a ring
therefore holds fewer pixels: at a corner pixel, a 3 / 11 ring holds 6**2 - 2**2 = 32. Nothing is padded,
reflected or invented.

The functions here return, for a set of centre pixels, the flat indices of their window pixels as a
rectangular ``(N, L)`` integer array plus an ``(N, L)`` boolean ``ok`` array saying which entries are
real (inside the image and valid). Entries with ``ok == False`` hold the centre's own index, so that
gathering with them is always safe; callers must ignore them (zero weight, identity row ...).
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np

from ..base import Context, Detector
from ..errors import ParameterError

__all__ = ["ring_offsets", "box_offsets", "window_index", "ring_index", "check_windows", "chunks"]


def check_windows(inner: int, outer: int, who: str = "detector") -> None:
    """Raise :class:`ParameterError` unless ``inner`` and ``outer`` are odd, >= 1 and ``inner < outer``."""
    for name, v in (("inner", inner), ("outer", outer)):
        if int(v) != v or v < 1 or v % 2 == 0:
            raise ParameterError(f"{who}: parameter {name!r} must be an odd integer >= 1, got {v!r}")
    if inner >= outer:
        raise ParameterError(
            f"{who}: the inner window must be smaller than the outer one, got inner={inner}, outer={outer}"
        )


class DualWindowDetector(Detector):
    """Base of detectors with a dual window: validates the declared ``inner``/``outer`` parameters with
    :func:`check_windows` and declares a halo of ``outer // 2`` pixels for tiled execution."""

    def _check_params(self) -> None:
        check_windows(self.inner, self.outer, self.name)

    def context(self) -> Context:
        return Context(halo=self.outer // 2)

    def working_bytes(self, h: int, w: int, bands: int) -> int:
        # window_index's (N, L) int64 indices and bool flags for every pixel, a float64 copy of the
        # block, and the batched solves (bounded by the detectors' chunking, ~100 MB)
        return h * w * (self.outer ** 2 * 9 + 2 * bands * 8) + 100 * 2**20


def box_offsets(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Row and column offsets (each (size**2,), row-major) of a ``size`` x ``size`` square centred on 0."""
    h = size // 2
    dy, dx = np.mgrid[-h : h + 1, -h : h + 1]
    return dy.ravel(), dx.ravel()


def ring_offsets(inner: int, outer: int) -> Tuple[np.ndarray, np.ndarray]:
    """Row and column offsets of the ring ``outer``-square minus ``inner``-square (row-major order)."""
    check_windows(inner, outer, "ring_offsets")
    dy, dx = box_offsets(outer)
    hi = inner // 2
    keep = (np.abs(dy) > hi) | (np.abs(dx) > hi)
    return dy[keep], dx[keep]


def window_index(
    mask: np.ndarray,
    offsets: Tuple[np.ndarray, np.ndarray],
    centres: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Flat indices of the window pixels of each centre, with the clipping border rule.

    Parameters
    ----------
    mask : (H, W) bool
        True where a pixel is valid; invalid pixels never appear as window members.
    offsets : (dy, dx)
        Integer offsets of the window members relative to the centre (e.g. :func:`ring_offsets`).
    centres : (N,) int, optional
        Flat indices (``row * W + col``) of the centre pixels; default: every valid pixel, row-major.

    Returns
    -------
    idx : (N, L) int64
        Flat index of member ``j`` of centre ``i``; the centre's own index where ``ok`` is False.
    ok : (N, L) bool
        True where the member lies inside the image and is valid.
    """
    mask = np.asarray(mask, dtype=bool)
    H, W = mask.shape
    if centres is None:
        centres = np.flatnonzero(mask)
    centres = np.asarray(centres, dtype=np.int64)
    dy, dx = (np.asarray(o, dtype=np.int64) for o in offsets)
    r = centres[:, None] // W + dy[None, :]
    c = centres[:, None] % W + dx[None, :]
    inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
    idx = np.where(inside, r * W + c, centres[:, None])
    ok = inside & mask.ravel()[idx]
    idx = np.where(ok, idx, centres[:, None])
    return idx, ok


def ring_index(mask: np.ndarray, inner: int, outer: int, centres: Optional[np.ndarray] = None):
    """:func:`window_index` for the dual-window ring; see the module docstring for the border rule."""
    return window_index(mask, ring_offsets(inner, outer), centres)


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` of at most ``size`` items."""
    size = max(int(size), 1)
    for s in range(0, n, size):
        yield slice(s, min(s + size, n))
