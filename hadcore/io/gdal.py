"""GDAL rasters read by windows for the streaming engine (:class:`RasterSource`), and GDAL's settings."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..cube import valid_mask
from ..engine.source import Source, scratch_buffer
from ..errors import FileError

__all__ = ["RasterSource", "GDAL_CACHE_MB"]

GDAL_CACHE_MB = 64


def _gdal_env():
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20, GDAL_NUM_THREADS=1)


def _gdal_error_text(exc: BaseException) -> str:
    """GDAL's own message in a rasterio error: the innermost of the chain (rasterio wraps it in "Read failed.
    See previous exception for details."), first line, without GDAL's "<file>, band N: " prefix."""
    text, seen = "", set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        s = str(exc).strip()
        if s:
            text = s.splitlines()[0]
        exc = exc.__cause__
    return re.sub(r"^[^:]*, band \d+: ", "", text)[:160]


def _raw_layout(ds, path):
    """(header offset, interleave, item size, H, W, B, file size) of an uncompressed ENVI data file, else None.

    GDAL's raw drivers read zeros past the end of a truncated data file, without an error or a warning, so
    :class:`RasterSource` checks the windows it reads against the size of the file itself.
    """
    if ds.driver != "ENVI":
        return None
    t = {k.lower(): str(v).strip().lower() for k, v in ds.tags(ns="ENVI").items()}
    il = t.get("interleave", "bsq")
    if t.get("file_compression", "0") not in ("", "0") or il not in ("bsq", "bil", "bip"):
        return None
    try:
        off = int(t.get("header_offset", "0") or 0)
        size = os.path.getsize(path)
    except (ValueError, OSError):
        return None
    return off, il, np.dtype(ds.dtypes[0]).itemsize, ds.height, ds.width, ds.count, size


def _raw_missing(layout, indexes, r0, r1, c0, c1):
    """(band, bytes needed) of the first of ``indexes`` whose samples in the window end past the end of the
    data file described by ``layout`` (:func:`_raw_layout`), or None."""
    off, il, item, H, W, B, size = layout
    for b in sorted(indexes):
        if il == "bsq":
            end = ((b - 1) * H + r1 - 1) * W + c1
        elif il == "bil":
            end = ((r1 - 1) * B + b - 1) * W + c1
        else:
            end = ((r1 - 1) * W + c1 - 1) * B + b
        if off + end * item > size:
            return b, off + end * item
    return None


class RasterSource(Source):
    """A GDAL raster read by windows (:class:`hadcore.engine.Source`): bands ``indexes`` (1-based).

    The dataset is opened on first use in each process and dropped when pickled, so a Dask worker opens
    the file itself (the path must be readable from every worker). Values are read as float32. A data block
    that GDAL cannot decode (a corrupt or truncated file whose header is intact) raises a one-line
    :class:`FileError` naming the file and the band.
    """

    #: bytes per band and pixel of a read: rasterio's (B, h, w) float32 array (handed on as a view)
    read_bytes = 4

    def __init__(self, path, indexes: Sequence[int], nodata: Optional[float], shape, block_shape=None):
        self.path = str(path)
        self.indexes = [int(i) for i in indexes]
        self.nodata = nodata
        self.shape = (int(shape[0]), int(shape[1]), len(self.indexes))
        self.block_shape = block_shape
        self.name = Path(path).name
        self._ds = None
        self._env = None
        self._raw = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_ds"] = None
        d["_env"] = None
        d["_raw"] = None
        return d

    def _dataset(self):
        if self._ds is None:
            import rasterio
            from rasterio.errors import RasterioIOError

            self._env = _gdal_env()
            self._env.__enter__()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                    self._ds = rasterio.open(self.path)
            except RasterioIOError as exc:
                raise FileError(f"cannot read {self.path} as a raster: {str(exc).splitlines()[0]}") from None
            self._raw = _raw_layout(self._ds, self.path)
        return self._ds

    def close(self):
        if self._ds is not None:
            self._ds.close()
            self._ds = None
        if self._env is not None:
            self._env.__exit__(None, None, None)
            self._env = None

    def read(self, r0, r1, c0, c1, reuse=False):
        """(h, w, B) float32 view of a window. ``reuse=True`` reads into this thread's read buffer
        (:func:`hadcore.engine.scratch_buffer`), valid only until the thread's next reused read: fresh
        memory for every block costs page faults (0.2 s per 0.2 GB block here)."""
        from rasterio.windows import Window

        ds = self._dataset()
        win = Window(c0, r0, c1 - c0, r1 - r0)
        where = f"rows {r0}-{r1 - 1}, columns {c0}-{c1 - 1}"
        missing = _raw_missing(self._raw, self.indexes, r0, r1, c0, c1) if self._raw else None
        if missing:
            raise FileError(f"{self.path}: cannot read band {missing[0]} at {where} (corrupt or truncated file: "
                            f"it has {self._raw[-1]} bytes, that band needs {missing[1]})")
        try:
            # GDAL's block cache held to GDAL_CACHE_MB for every read: the environment entered when the dataset
            # opened does not last (an outer rasterio.Env that exits, the score writer's, resets the cache to
            # GDAL's default, 5 % of the RAM: 1.2 GB of input blocks held after a run, measured here)
            with warnings.catch_warnings(), _gdal_env():
                warnings.simplefilter("ignore")
                data = ds.read(indexes=self.indexes, window=win, out=self._read_buffer(r1 - r0, c1 - c0, reuse))
        except Exception as exc:  # rasterio raises RasterioIOError / CPLE_* for undecodable blocks
            band = self._failing_band(win)
            what = f"band {band}" if band else "its data"
            msg = _gdal_error_text(exc) or type(exc).__name__
            raise FileError(f"{self.path}: cannot read {what} at {where} (corrupt or truncated file: {msg})") from None
        # a (h, w, B) view: the engine's float64 copy (prepare_block) makes it contiguous in the same pass
        return np.moveaxis(data, 0, -1)

    def _read_buffer(self, h, w, reuse):
        """A (B, h, w) float32 buffer whose band planes are 64 bytes apart beyond h * w: planes a multiple of
        4 KB apart (256 x 1000 pixels, say) put every band of a pixel in the same cache set, which made the
        engine's (h, w, B) float64 copy 3 x slower (0.22 s against 0.07 s for 256 x 1000 x 224, measured).
        GDAL writes through the strides."""
        nb = len(self.indexes)
        plane = h * w + 16
        if reuse:
            flat = scratch_buffer((nb * plane,), np.float32, slot="read")
        else:
            flat = np.empty(nb * plane, dtype=np.float32)
        return np.lib.stride_tricks.as_strided(flat, shape=(nb, h, w), strides=(plane * 4, w * 4, 4))

    def _failing_band(self, win):
        for b in self.indexes:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._ds.read(b, window=win)
            except Exception:
                return b
        return None

    def user_mask(self, r0, r1, c0, c1):
        return None

    def raw_block(self, r0, r1, c0, c1):
        raw = self.read(r0, r1, c0, c1, reuse=True)  # consumed before the next block (statistics, float64 copy)
        return raw, valid_mask(raw, self.nodata, self.user_mask(r0, r1, c0, c1))


