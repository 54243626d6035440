"""``hadcore.detect``: one call from a file, a numpy array, an xarray DataArray or a dask array to scores.

>>> import hadcore
>>> scores = hadcore.detect("rx", "scene.tif")                   # numpy (H, W) float32
>>> scores = hadcore.detect("lrx", cube, inner=3, outer=17)      # cube: numpy (H, W, B)
>>> scores = hadcore.detect("rx", xr.open_dataarray(...))        # DataArray (y, x), coordinates kept
>>> lazy = hadcore.detect("rx", dask_cube)                       # dask array (H, W), not computed yet
>>> scores = hadcore.detect("rx", "scene.tif", client=client)    # on a Dask cluster

Only numpy is needed for numpy input; xarray and dask are imported only for their own inputs.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import numpy as np

from .base import Detector, valid_mask
from .engine import ArraySink, ArraySource, Source, parse_reduce
from .engine.lazy import detect_dask
from .errors import InputError, ParameterError

__all__ = ["detect"]

#: dimension names read as rows / columns of an xarray DataArray (the remaining one is the band axis)
Y_DIMS = ("y", "lat", "latitude", "row", "rows", "line", "lines", "northing")
X_DIMS = ("x", "lon", "longitude", "col", "cols", "column", "columns", "sample", "samples", "easting")
#: attributes describing how the input's values are encoded: not carried over to the scores
_ENCODING_ATTRS = ("scale_factor", "add_offset", "_FillValue", "missing_value", "nodata", "nodatavals",
                   "scales", "offsets", "_Unsigned", "valid_range", "valid_min", "valid_max")


#: ``detect(source)`` with no detector: the default
_NO_SOURCE = object()


def detect(name, source=_NO_SOURCE, *, mask=None, client=None, mem_limit_mb: Optional[float] = None, reduce=None,
           progress=None, wavelength_range=None, bad_bands=None, band_spec=None, **params):
    """Run detector ``name`` (a registry name, or a configured :class:`~hadcore.base.Detector`) on ``source``;
    ``detect(source)`` runs the default, ``auto`` (:class:`hadcore.detectors.auto.Auto`).

    ``source`` is one of:

    - a path (``str`` / ``os.PathLike``) to any raster GDAL reads or an ``.npz``/``.mat`` scene: streamed block
      by block under ``mem_limit_mb`` (:func:`hadcore.engine.run`), or on a Dask cluster with ``client``
      (:func:`hadcore.engine.cluster.run_distributed`; the path must be readable from every worker). Returns a
      numpy (H, W) float32 array.
    - a numpy array (H, W, B): :meth:`Detector.detect` (with ``mem_limit_mb`` or ``reduce``: the streaming
      engine, as the CLI; with ``client``: the Dask backend). Returns numpy (H, W) float32.
    - an xarray ``DataArray`` with dims (band, y, x) (as rioxarray gives) or (y, x, band): returns a
      ``DataArray`` (y, x) with the coordinates and attributes of the input (less those that describe its
      encoding, such as ``scale_factor`` or ``_FillValue``). Its ``_FillValue`` / ``nodata`` attribute marks
      pixels holding it in every band as invalid, as the CLI does for a raster's nodata. A dask-backed
      DataArray gives a lazy result.
    - a dask array (H, W, B): returns a **lazy** dask array (H, W) float32. What the fit needs (statistics,
      a sample, crops, the refine pass) is computed now, as dask reductions (on ``client`` when given); the
      scores are a ``map_overlap`` over blocks sized by the memory budget, with the detector's halo (scene
      tiles of whole-scene detectors are blended, as the streaming engine does).

    Bands (as the CLI's ``--bands``, ``--wavelengths``, ``--bad-bands``; :func:`hadcore.bands.choose_bands`):
    ``band_spec`` 1-based ("1-50,60"), ``wavelength_range`` (LO, HI) in nm (or um), ``bad_bands`` ("auto",
    "none" or a spec). For a path, the product's own bad-band flags are dropped by default; for a DataArray,
    a band coordinate holding wavelengths (values in nm or um, or a ``wavelength(s)`` coordinate along the
    band axis, with a ``units`` attribute) feeds the wavelength range, and a ``good_wavelengths`` or ``bbl``
    coordinate the flags.

    ``mask``: optional (H, W) bool, True = valid. ``reduce``: ``"pca:K"`` (or ("pca", K)). ``progress``: a
    :class:`~hadcore.progress.Progress` or a callback ``f(fraction, message)`` (for a dask array it covers the
    fit only). ``params``: the detector's parameters. Scores: higher = more anomalous, NaN where invalid.
    """
    if source is _NO_SOURCE:
        name, source = "auto", name
    for key, value in list(params.items()):  # a target spectrum given as an array: its values
        if isinstance(value, (np.ndarray, list, tuple)):
            params[key] = ",".join(repr(float(v)) for v in np.asarray(value, dtype=np.float64).ravel())
    det = _detector(name, params)
    sel = dict(bands=band_spec, wavelength_range=wavelength_range, bad_bands=bad_bands)
    if isinstance(source, (str, os.PathLike)):
        return _detect_path(det, source, mask, client, mem_limit_mb, reduce, progress, sel)
    if _is_xarray(source):
        return _detect_xarray(det, source, mask, client, mem_limit_mb, reduce, progress, sel)
    if band_spec or wavelength_range or bad_bands:
        from .io.bands import array_bands

        if np.ndim(source) != 3:
            raise InputError(f"detect: expected a cube of shape (H, W, B), got an array of shape {np.shape(source)}")
        idx, _ = array_bands(source, **sel)
        source = source[:, :, idx]
    if _is_dask(source):
        return detect_dask(det, source, mask, None, client, mem_limit_mb, reduce, progress)
    return _detect_numpy(det, source, mask, None, client, mem_limit_mb, reduce, progress)


# ================================================================================================ dispatch
def _detector(name, params) -> Detector:
    if isinstance(name, Detector):
        if params:
            raise ParameterError(f"detect: parameters {sorted(params)} given with a configured detector; "
                                 "set them on the detector instead")
        return name
    if isinstance(name, type) and issubclass(name, Detector):
        return name(**params)
    from .registry import get_detector

    return get_detector(name, **params)


def _is_xarray(obj) -> bool:
    return type(obj).__name__ == "DataArray" and type(obj).__module__.split(".")[0] == "xarray"


def _is_dask(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "__dask_graph__")


class _MaskedSource(Source):
    """Another source with a user mask (an (H, W) bool array) on top of its own validity rule."""

    def __init__(self, base: Source, mask: np.ndarray):
        self.base = base
        self.mask = np.asarray(mask, dtype=bool)
        if self.mask.shape != tuple(base.shape[:2]):
            raise InputError(f"mask shape {self.mask.shape} does not match the image {tuple(base.shape[:2])}")
        self.shape = base.shape
        self.nodata = base.nodata
        self.block_shape = base.block_shape
        self.name = base.name

    def read(self, r0, r1, c0, c1):
        return self.base.read(r0, r1, c0, c1)

    def user_mask(self, r0, r1, c0, c1):
        own = self.base.user_mask(r0, r1, c0, c1)
        m = self.mask[r0:r1, c0:c1]
        return m if own is None else (m & own)


def _run(det, src: Source, client, mem_limit_mb, reduce, progress) -> np.ndarray:
    from .engine import run_scene

    sink = ArraySink(*src.shape[:2])
    run_scene(det, src, sink, mem_limit_mb=mem_limit_mb, progress=progress, reduce=reduce, client=client)
    return sink.array


def _detect_path(det, path, mask, client, mem_limit_mb, reduce, progress, sel) -> np.ndarray:
    from .engine import run_scene
    from .scene import open_scene

    scene = open_scene(path, **sel)
    if getattr(det, "spectrum_params", ()):  # a target detector: its library spec on this scene's bands
        from .library import prepare_spectra

        prepare_spectra(det, scene.wavelengths, scene.fwhm, scene.shape[2])
    src = scene.source if mask is None else _MaskedSource(scene.source, mask)
    sink = ArraySink(*scene.output_shape)  # a swath product: scores on its map grid, as the CLI writes them
    try:
        run_scene(det, src, sink, output=scene.output, mem_limit_mb=mem_limit_mb, progress=progress,
                  reduce=reduce, client=client)
        return sink.array
    finally:
        close = getattr(scene.source, "close", None)
        if close is not None:
            close()


def _detect_numpy(det, cube, mask, nodata, client, mem_limit_mb, reduce, progress) -> np.ndarray:
    X = np.asarray(cube)
    if client is None and mem_limit_mb is None and parse_reduce(reduce) is None:
        if nodata is not None and X.ndim == 3:
            mask = valid_mask(X, nodata, mask)
        return det.detect(X, mask, progress)
    return _run(det, ArraySource(X, mask, nodata=nodata), client, mem_limit_mb, reduce, progress)


# ================================================================================================ xarray
def _xarray_dims(arr) -> Tuple[Any, Any, Any]:
    """(y, x, band) dimension names of a 3-D DataArray."""
    dims = list(arr.dims)
    if len(dims) != 3:
        raise InputError(f"detect: expected a DataArray with 3 dims (band, y, x) or (y, x, band), got {tuple(dims)}")
    low = [str(d).lower() for d in dims]
    ys = [d for d, n in zip(dims, low) if n in Y_DIMS]
    xs = [d for d, n in zip(dims, low) if n in X_DIMS]
    if len(ys) == 1 and len(xs) == 1:
        band = [d for d in dims if d not in (ys[0], xs[0])][0]
        return ys[0], xs[0], band
    band_like = ("band", "bands", "wavelength", "wavelengths", "channel", "channels", "spectral", "lambda")
    if low[0] in band_like:
        return dims[1], dims[2], dims[0]
    if low[2] in band_like:
        return dims[0], dims[1], dims[2]
    raise InputError(f"detect: cannot tell the band axis of dims {tuple(dims)}; name them (band, y, x) or "
                     "(y, x, band)")


def _xarray_nodata(arr) -> Optional[float]:
    for where in (arr.attrs, getattr(arr, "encoding", {}) or {}):
        for key in ("_FillValue", "nodata", "missing_value"):
            v = where.get(key)
            if v is not None:
                try:
                    v = float(np.asarray(v).ravel()[0])
                except (TypeError, ValueError, IndexError):
                    continue
                return None if np.isnan(v) else v
    return None


def _xarray_band_metadata(arr, bdim):
    """(wavelengths nm or None, good bool or None) from the band axis' coordinates."""
    from .bands import to_nanometres

    wl = good = None
    for name in [bdim, "wavelength", "wavelengths", "wl", "center_wavelength"]:
        c = arr.coords.get(name)
        if c is None or c.dims != (bdim,) or not np.issubdtype(c.dtype, np.number):
            continue
        v = to_nanometres(np.asarray(c.values, dtype=float), c.attrs.get("units") or c.attrs.get("wavelength_units")
                          or arr.attrs.get("wavelength_units"))
        if v is not None and np.all(np.isfinite(v)) and v.min() >= 200 and v.max() <= 20000:
            wl = v  # band numbers (rioxarray's 1..B) are not wavelengths
            break
    for name in ("good_wavelengths", "bbl", "good_bands"):
        c = arr.coords.get(name)
        if c is not None and c.dims == (bdim,):
            good = np.asarray(c.values).astype(float) != 0
            break
    return wl, good


def _detect_xarray(det, arr, mask, client, mem_limit_mb, reduce, progress, sel=None):
    import xarray as xr

    ydim, xdim, bdim = _xarray_dims(arr)
    wl, good = _xarray_band_metadata(arr, bdim)
    sel = sel or {}
    if good is not None or any(sel.values()):
        from .io.bands import array_bands

        idx, _ = array_bands(arr.transpose(ydim, xdim, bdim).data, wavelengths_nm=wl, good=good, **sel)
        arr = arr.isel({bdim: idx})
    data = arr.transpose(ydim, xdim, bdim).data
    if mask is not None and _is_xarray(mask):
        mask = mask.transpose(ydim, xdim).data
    nodata = _xarray_nodata(arr)
    if _is_dask(data):
        scores = detect_dask(det, data, mask, nodata, client, mem_limit_mb, reduce, progress)
    else:
        scores = _detect_numpy(det, data, mask, nodata, client, mem_limit_mb, reduce, progress)
    coords = {k: c for k, c in arr.coords.items() if set(c.dims) <= {ydim, xdim}}
    # per-band attributes (rioxarray's long_name tuple, GDAL's band statistics) describe the input's bands
    nb = arr.sizes[bdim]
    attrs = {k: v for k, v in arr.attrs.items() if k not in _ENCODING_ATTRS and not str(k).startswith("STATISTICS_")
             and not (isinstance(v, (tuple, list, np.ndarray)) and len(v) == nb)}
    attrs.update(detector=det.name, higher_is_more_anomalous="true", bands_used=int(nb),
                 long_name=f"{det.name} anomaly score")
    return xr.DataArray(scores, dims=(ydim, xdim), coords=coords, attrs=attrs, name=f"{det.name}_score")
