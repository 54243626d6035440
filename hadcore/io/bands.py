"""The one band rule applied to a raster: its band metadata (wavelengths in nm, FWHM, ``bbl`` flags) read from
wherever GDAL and the ENVI/EnMAP-Box conventions keep it, its constant or empty bands, and the choice of
:func:`hadcore.bands.choose_bands`. :func:`hadcore.scene.open_scene` (CLI, Python), the QGIS layer path and
:func:`hadcore.io.read_raster` (training, the benchmark) all choose bands here.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..bands import choose_bands, to_nanometres
from ..errors import ParameterError

__all__ = ["band_metadata", "constant_bands", "raster_bands", "array_bands", "choose_for"]


def _parse_wavelengths(src, n: int):
    """Band centre wavelengths from per-band tags, the ENVI domain, or numeric band descriptions."""
    units = None
    vals = []
    for i in range(1, n + 1):
        tags = {k.lower(): v for k, v in src.tags(i).items()}
        if "wavelength" in tags:
            try:
                vals.append(float(tags["wavelength"]))
            except ValueError:
                vals = []
                break
            units = units or tags.get("wavelength_units")
        else:
            vals = []
            break
    if len(vals) == n:
        return np.asarray(vals), units
    envi = {k.lower(): v for k, v in src.tags(ns="ENVI").items()} if "ENVI" in (src.tag_namespaces() or []) else {}
    if "wavelength" in envi:
        nums = re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", envi["wavelength"])
        if len(nums) == n:
            return np.asarray([float(x) for x in nums]), envi.get("wavelength_units")
    desc = src.descriptions
    try:
        if desc and all(d for d in desc):
            nums = [float(re.findall(r"[-+]?\d*\.?\d+", d)[-1]) for d in desc]
            if len(nums) == n and np.all(np.diff(nums) > 0):
                return np.asarray(nums), None
    except (IndexError, ValueError):
        pass
    return None, None


def band_metadata(src, n: int):
    """(wavelengths nm or None, fwhm nm or None, good bool (n,)) of a GDAL raster, from (in this order) GDAL's
    IMAGERY domain (``CENTRAL_WAVELENGTH_UM``, ``FWHM_UM``, GDAL >= 3.10), band-level ``wavelength`` /
    ``wavelength_units`` / ``fwhm`` / ``bbl`` keys (EnMAP-Box, GDAL's ENVI driver), the ENVI domain
    (``wavelength``, ``fwhm``, ``bbl``, ``wavelength_units``), then numeric band descriptions."""
    good = np.ones(n, dtype=bool)
    wl = fw = None
    # 1. IMAGERY domain (micrometres by definition)
    try:
        im = [src.tags(i, ns="IMAGERY") for i in range(1, n + 1)]
        if all("CENTRAL_WAVELENGTH_UM" in t for t in im):
            wl = np.array([float(t["CENTRAL_WAVELENGTH_UM"]) for t in im]) * 1e3
            if all("FWHM_UM" in t for t in im):
                fw = np.array([float(t["FWHM_UM"]) for t in im]) * 1e3
    except (ValueError, KeyError, TypeError):
        wl = fw = None
    # 2. band-level keys
    tags = [{k.lower(): v for k, v in src.tags(i).items()} for i in range(1, n + 1)]
    if wl is None:
        vals, units = _parse_wavelengths(src, n)
        if vals is not None:
            wl = to_nanometres(vals, units)
            if fw is None and all("fwhm" in t for t in tags):
                try:
                    fw = to_nanometres([float(t["fwhm"]) for t in tags], units or tags[0].get("wavelength_units"))
                except ValueError:
                    fw = None
    if wl is not None and not (np.all(np.isfinite(wl)) and wl.min() >= 200 and wl.max() <= 20000):
        wl = fw = None  # band numbers ("band 1", ENVI's wavelength = {1, 2, ...}), not wavelengths
    if all("bbl" in t for t in tags):
        try:
            good = np.array([float(t["bbl"]) != 0 for t in tags])
        except ValueError:
            pass
    # 3. the ENVI domain
    envi = {k.lower(): v for k, v in src.tags(ns="ENVI").items()} if "ENVI" in (src.tag_namespaces() or []) else {}
    num = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")
    if fw is None and "fwhm" in envi:
        v = [float(x) for x in num.findall(envi["fwhm"])]
        if len(v) == n:
            fw = to_nanometres(v, envi.get("wavelength_units") or envi.get("wavelength units"))
    if "bbl" in envi:
        v = [float(x) for x in num.findall(envi["bbl"])]
        if len(v) == n:
            good = np.array(v) != 0
    return wl, fw, good


def constant_bands(source, max_rows: int = 64) -> np.ndarray:
    """bool per band of ``source``: constant or without any finite value, from up to ``max_rows`` rows spread
    over the scene (a sample: a band constant there but not elsewhere is kept only if it varies there)."""
    H = source.shape[0]
    B = source.shape[2]
    lo = np.full(B, np.inf)
    hi = np.full(B, -np.inf)
    step = max(1, H // max_rows)
    nd = getattr(source, "nodata", None)
    for r in range(0, H, step):
        X = np.asarray(source.read(r, r + 1, 0, source.shape[1]), dtype=np.float64).reshape(-1, B)
        if nd is not None and not np.isnan(nd):
            X = np.where(X == nd, np.nan, X)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo = np.fmin(lo, np.nanmin(X, axis=0))
            hi = np.fmax(hi, np.nanmax(X, axis=0))
    return ~(hi > lo)


def choose_for(path, n, **kw):
    """:func:`hadcore.bands.choose_bands`, its one-line errors naming the file (batch runs over folders; no
    name for ``path`` None)."""
    try:
        return choose_bands(n, **kw)
    except ParameterError as exc:
        if path is None:
            raise
        raise ParameterError(f"{Path(path).name}: {exc}") from None


def array_bands(cube, *, wavelengths_nm=None, good=None, path=None, bands: Optional[str] = None,
                wavelength_range: Optional[Sequence[float]] = None, bad_bands: Optional[str] = None):
    """The one band rule for a cube in memory (numpy, a memmap, a dask array; (H, W, B)): (0-based bands,
    notes). ``wavelengths_nm`` and ``good`` as a product gives them (an xarray band coordinate, ``bbl``);
    ``auto`` finds constant bands with :func:`constant_bands`, as for a file."""
    from ..engine.source import ArraySource

    return choose_for(path, int(cube.shape[2]), wavelengths_nm=wavelengths_nm, good=good, bands=bands,
                      wavelength_range=wavelength_range, bad_bands=bad_bands,
                      constant=lambda cand: constant_bands(ArraySource(cube[:, :, list(cand)])))


def raster_bands(src, n: int, path, *, bands: Optional[str] = None,
                 wavelength_range: Optional[Sequence[float]] = None, bad_bands: Optional[str] = None,
                 constant=None):
    """The one band rule for a GDAL raster: (0-based bands, notes, wavelengths nm, fwhm nm, good flags).

    ``src`` answers ``tags(bidx, ns=...)``, ``tag_namespaces()`` and ``descriptions`` as a rasterio dataset
    does (the CLI and Python pass one; the QGIS plugin passes its GDAL adapter): the wavelengths, FWHM and
    ``bbl`` flags come from :func:`band_metadata`, the choice from :func:`hadcore.bands.choose_bands`
    (``bands``, ``wavelength_range``, ``bad_bands`` as the CLI's ``--bands``, ``--wavelengths``,
    ``--bad-bands``; ``constant(candidates)`` for ``auto``).
    """
    wl, fw, good = band_metadata(src, n)
    idx, notes = choose_for(path, n, wavelengths_nm=wl, good=good, bands=bands, wavelength_range=wavelength_range,
                         bad_bands=bad_bands, constant=constant)
    return idx, notes, wl, fw, good
