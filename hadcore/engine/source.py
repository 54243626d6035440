"""Sources (a scene read by windows) and sinks (where scored blocks go); the threads' scratch buffers."""

from __future__ import annotations

import threading
from typing import Optional, Tuple

import numpy as np

from ..cube import prepare_block, valid_mask
from ..errors import InputError

__all__ = ["Window", "Source", "ArraySource", "ProjectedSource", "TapSource", "Sink", "ArraySink", "scratch_buffer",
           "release_scratch"]

Window = Tuple[int, int, int, int]  # r0, r1, c0, c1 (half-open)


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


class TapSource(Source):
    """Another source, remembering the last raw block read through it (``last``: window, raw, valid), so that an
    observer of the score pass sees the raw spectra of the block just scored without reading it again. The raw
    block is the reader's own buffer (never the float64 copy a detector may change in place), valid until the
    next read."""

    def __init__(self, base: Source):
        self.base = base
        self.shape = base.shape
        self.nodata = base.nodata
        self.block_shape = base.block_shape
        self.read_bytes = getattr(base, "read_bytes", 4)
        self.name = base.name
        self.last = None

    def read(self, r0, r1, c0, c1):
        return self.base.read(r0, r1, c0, c1)

    def user_mask(self, r0, r1, c0, c1):
        return self.base.user_mask(r0, r1, c0, c1)

    def raw_block(self, r0, r1, c0, c1):
        raw, valid = self.base.raw_block(r0, r1, c0, c1)
        self.last = ((r0, r1, c0, c1), raw, valid)
        return raw, valid


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


