"""Reading whole rasters and their companions: a cube (any GDAL raster, or the benchmark formats ``.npz`` with
``cube``/``gt`` and ``.mat`` with ``data``/``map``) into (H, W, B), ground truth, and score layers."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np

from ..errors import FileError, InputError
from .bands import _parse_wavelengths, array_bands, constant_bands, raster_bands
from .gdal import RasterSource

__all__ = ["Raster", "read_raster", "ground_truth_path", "read_ground_truth", "read_scores", "ARRAY_SUFFIXES"]

ARRAY_SUFFIXES = (".npz", ".mat")


@dataclass
class Raster:
    """A cube with its georeference.

    ``cube`` (H, W, B) float32; ``mask`` (H, W) bool (True = valid: not nodata in every band, finite in
    every band, not all zeros);
    ``crs``/``transform`` (rasterio objects, None/identity for arrays without georeference); ``nodata`` of the
    source; ``wavelengths`` (B,) or None, in the file's ``wavelength_units``; ``gt`` (H, W) uint8 ground truth
    when the file carries one; ``notes``: why bands were dropped (the band rule's notes).
    """

    cube: np.ndarray
    mask: np.ndarray
    crs: Any = None
    transform: Any = None
    nodata: Optional[float] = None
    wavelengths: Optional[np.ndarray] = None
    wavelength_units: Optional[str] = None
    band_names: List[str] = field(default_factory=list)
    band_indices: List[int] = field(default_factory=list)
    gt: Optional[np.ndarray] = None
    path: Optional[str] = None
    n_source_bands: int = 0
    notes: List[str] = field(default_factory=list)

    @property
    def shape(self):
        return self.cube.shape


# ---------------------------------------------------------------------------------------------- reading
def read_raster(
    path,
    bands: Optional[str] = None,
    wavelength_range: Optional[Sequence[float]] = None,
    bad_bands: Optional[str] = None,
    read_gt: bool = True,
) -> Raster:
    """Read a hyperspectral raster into a :class:`Raster` (see the module docstring for formats).

    Bands by the one band rule (:func:`hadcore.io.bands.raster_bands`, as ``hadcore detect`` and QGIS choose
    them): ``bands`` a 1-based spec (``"1-50,60"``); ``wavelength_range`` (lo, hi) in nm (both below 30: um);
    ``bad_bands`` None (drop the bands the file flags bad, ``bbl``), ``"none"``, ``"auto"`` (also water-vapour
    windows and constant or empty bands) or a 1-based spec of more bands to drop.
    """
    p = Path(path)
    if not p.exists():
        raise FileError(f"input not found: {path}")
    if p.is_dir():
        raise FileError(f"input is a folder, not a raster: {path}")
    suffix = p.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        cube, gt = _read_array_file(p)
        H, W, B = cube.shape
        idx, notes = array_bands(cube, path=p, bands=bands, wavelength_range=wavelength_range, bad_bands=bad_bands)
        cube = np.ascontiguousarray(cube[:, :, idx], dtype=np.float32)
        r = Raster(cube=cube, mask=_valid_mask(cube, None), gt=gt if read_gt else None, path=str(p),
                   band_indices=idx, band_names=[f"band {i + 1}" for i in idx], n_source_bands=B, notes=notes)
        return r
    return _read_gdal(p, bands, wavelength_range, bad_bands, read_gt)


def _read_array_file(p: Path):
    if p.suffix.lower() == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                keys = set(z.files)
                ck = "cube" if "cube" in keys else "data" if "data" in keys else None
                if ck is None:
                    raise FileError(f"{p}: a .npz scene needs an array 'cube' (or 'data'); it has {sorted(keys)}")
                cube = np.asarray(z[ck])
                gk = "gt" if "gt" in keys else "map" if "map" in keys else None
                gt = np.asarray(z[gk]) if gk else None
        except (OSError, ValueError) as exc:
            raise FileError(f"cannot read {p}: {exc}") from None
    else:
        from scipy.io import loadmat

        try:
            m = loadmat(str(p))
        except NotImplementedError:
            raise FileError(f"{p}: MATLAB v7.3 (HDF5) files are not supported; save with -v7") from None
        except Exception as exc:  # scipy raises assorted errors for corrupt files
            raise FileError(f"cannot read {p}: {exc}") from None
        keys = [k for k in m if not k.startswith("__")]
        ck = "data" if "data" in m else "cube" if "cube" in m else None
        if ck is None:
            raise FileError(f"{p}: a .mat scene needs a variable 'data'; it has {keys}")
        cube = np.asarray(m[ck])
        gk = "map" if "map" in m else "gt" if "gt" in m else None
        gt = np.asarray(m[gk]) if gk else None
    if cube.ndim == 2:
        cube = cube[:, :, None]
    if cube.ndim != 3:
        raise InputError(f"{p}: expected a (H, W, B) cube, got shape {cube.shape}")
    if gt is not None:
        if gt.shape != cube.shape[:2]:
            raise InputError(f"{p}: ground truth shape {gt.shape} does not match the cube {cube.shape[:2]}")
        gt = (gt > 0).astype(np.uint8)
    return cube, gt


def _valid_mask(cube: np.ndarray, nodata) -> np.ndarray:
    valid = np.isfinite(cube).all(axis=2) & (cube != 0).any(axis=2)
    if nodata is not None and not np.isnan(nodata):
        # nodata marks pixels outside the footprint: all bands equal to it (a single band at that value,
        # e.g. 0 DN, is a real measurement)
        valid &= ~(cube == nodata).all(axis=2)
    return valid


def _open_dataset(p: Path):
    """``rasterio.open`` with a one-line FileError for what GDAL cannot open, and no warning for rasters
    without a georeference."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(p)
    except RasterioIOError as exc:
        raise FileError(f"cannot read {p} as a raster: {str(exc).splitlines()[0]}") from None


def _read_gdal(p: Path, bands, wavelength_range, bad_bands, read_gt) -> Raster:
    import rasterio

    src = _open_dataset(p)
    with src, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        n = src.count
        wl, units = _parse_wavelengths(src, n)
        bs = src.block_shapes[0] if src.block_shapes else None

        def constant(cand):
            return constant_bands(RasterSource(p, [i + 1 for i in cand], src.nodata, (src.height, src.width), bs))

        idx, notes, _, _, _ = raster_bands(src, n, p, bands=bands, wavelength_range=wavelength_range,
                                           bad_bands=bad_bands, constant=constant)
        data = src.read(indexes=[i + 1 for i in idx], out_dtype=np.float32)  # (B, H, W)
        cube = np.ascontiguousarray(np.moveaxis(data, 0, -1))
        del data
        nodata = src.nodata
        r = Raster(
            cube=cube,
            mask=_valid_mask(cube, nodata),
            crs=src.crs,
            transform=src.transform,
            nodata=nodata,
            wavelengths=None if wl is None else wl[idx],
            wavelength_units=units,
            band_names=[src.descriptions[i] or f"band {i + 1}" for i in idx],
            band_indices=idx,
            path=str(p),
            n_source_bands=n,
            notes=notes,
        )
    if read_gt:
        gp = ground_truth_path(p)
        if gp is not None:
            r.gt = read_ground_truth(gp, cube.shape[:2])
    return r


def ground_truth_path(p) -> Optional[Path]:
    """The sibling ground-truth raster of a scene (``<stem>_gt.tif``), if any."""
    p = Path(p)
    for cand in (p.with_name(p.stem + "_gt" + p.suffix), p.with_name(p.stem + "_gt.tif")):
        if cand.exists() and cand != p:
            return cand
    return None


def read_ground_truth(path, shape=None) -> np.ndarray:
    """A ground-truth raster (first band; > 0 = anomaly), or the gt array of an .npz/.mat scene."""
    p = Path(path)
    if not p.exists():
        raise FileError(f"ground truth not found: {path}")
    if p.suffix.lower() in ARRAY_SUFFIXES:
        _, gt = _read_array_file(p)
        if gt is None:
            raise FileError(f"{p} holds no ground truth ('gt' or 'map')")
    else:
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(p) as src:
                    gt = (src.read(1) > 0).astype(np.uint8)
        except RasterioIOError as exc:
            raise FileError(f"cannot read {p} as a raster: {str(exc).splitlines()[0]}") from None
    if shape is not None and gt.shape != tuple(shape):
        raise InputError(f"ground truth {p.name} is {gt.shape[0]} x {gt.shape[1]}, the scores are {shape[0]} x {shape[1]}")
    return gt


def read_scores(path):
    """A score layer written by :func:`write_scores`: (scores float64 with NaN = nodata, profile, tags)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    p = Path(path)
    if not p.exists():
        raise FileError(f"score layer not found: {path}")
    if p.suffix.lower() in ARRAY_SUFFIXES:
        raise FileError(f"{p} is a scene, not a score layer (a single-band raster)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(p) as src:
                if src.count != 1:
                    raise InputError(f"{p.name}: a score layer has 1 band, this raster has {src.count}")
                s = src.read(1).astype(np.float64)
                if src.nodata is not None:
                    s[s == src.nodata] = np.nan
                return s, dict(crs=src.crs, transform=src.transform, nodata=src.nodata), src.tags()
    except RasterioIOError as exc:
        raise FileError(f"cannot read {p} as a raster: {str(exc).splitlines()[0]}") from None


# ---------------------------------------------------------------------------------------------- writing
