"""Raster input and output for the CLI (rasterio; imported only when this module is used).

Reads any raster GDAL reads (GeoTIFF, ENVI, ...) and the benchmark formats ``.npz`` (``cube``, ``gt``) and
``.mat`` (``data``, ``map``) into (H, W, B); writes score layers and cubes as GeoTIFF. Every file is written
under a temporary name in the target folder and renamed when complete, so a failure never leaves a half
-written output, and an existing output is kept unless ``overwrite`` is set.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from . import __version__
from .bands import select_bands
from .errors import FileError, InputError, OverwriteError

__all__ = [
    "Raster",
    "read_raster",
    "write_scores",
    "write_cube",
    "atomic_output",
    "check_output",
    "ground_truth_path",
]

ARRAY_SUFFIXES = (".npz", ".mat")


@dataclass
class Raster:
    """A cube with its georeference.

    ``cube`` (H, W, B) float32; ``mask`` (H, W) bool (True = valid: not nodata in every band, finite in
    every band, not all zeros);
    ``crs``/``transform`` (rasterio objects, None/identity for arrays without georeference); ``nodata`` of the
    source; ``wavelengths`` (B,) or None; ``gt`` (H, W) uint8 ground truth when the file carries one.
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

    ``bands``: 1-based spec (``"1-50,60"``); ``wavelength_range``: (lo, hi) in the raster's wavelength unit;
    ``bad_bands``: 1-based spec of bands to drop.
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
        idx = select_bands(B, bands, wavelength_range, None, bad_bands)
        cube = np.ascontiguousarray(cube[:, :, idx], dtype=np.float32)
        r = Raster(cube=cube, mask=_valid_mask(cube, None), gt=gt if read_gt else None, path=str(p),
                   band_indices=idx, band_names=[f"band {i + 1}" for i in idx], n_source_bands=B)
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
        idx = select_bands(n, bands, wavelength_range, wl, bad_bands)
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
def check_output(path, overwrite: bool) -> Path:
    """Refuse to replace an existing output unless ``overwrite``; make sure its folder exists."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OverwriteError(f"{p} exists; use --overwrite to replace it")
    if not p.parent.exists():
        raise FileError(f"output folder does not exist: {p.parent}")
    return p


TMP_TAG = ".hadcore-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


def remove_stale_temporaries(final: Path) -> None:
    """Remove temporaries of ``final`` left by a run that was killed (its process is gone)."""
    prefix = f".{final.name}{TMP_TAG}"
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return
    for e in entries:
        if not (e.name.startswith(prefix) and e.name.endswith(".tmp")):
            continue
        try:
            pid = int(e.name[len(prefix):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(e, ignore_errors=True) if e.is_dir() else e.unlink(missing_ok=True)


def _is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from (rasterio wraps GDAL's), reports a full disk."""
    import errno

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc).lower()
        if "no space left" in text or "disk quota" in text or "not enough space" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _disk_full_error(final) -> FileError:
    return FileError(f"cannot write {final}: no space left on the device; nothing was written")


@contextlib.contextmanager
def atomic_output(path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it (and its sidecars) to ``path``.

    Works for multi-file formats (Shapefile): every file written as ``<tmpstem>.*`` in the temporary
    folder is moved to ``<stem>.*``. On any error nothing is left behind and an existing output is
    untouched. The temporary folder is named after the output and this process
    (``.<name>.hadcore-<pid>-<random>.tmp``); a run killed outright (SIGKILL) cannot remove it, so every
    run first removes those of processes that no longer exist. A full disk is reported in one line.
    """
    final = check_output(path, overwrite)
    remove_stale_temporaries(final)
    try:
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{final.name}{TMP_TAG}{os.getpid()}-", suffix=".tmp",
                                       dir=final.parent))
    except OSError as exc:  # a full disk, a read-only or foreign folder
        if _is_disk_full(exc):
            raise _disk_full_error(final) from None
        raise FileError(f"cannot write {final}: {exc.strerror or exc}") from None
    tmp = tmpdir / final.name
    try:
        try:
            yield tmp
            produced = sorted(tmpdir.iterdir())
            if not tmp.exists():
                raise FileError(f"writing {final} produced no file")
            for f in produced:
                target = final.with_name(final.stem + f.name[len(tmp.stem):])
                if overwrite and target.is_dir():
                    shutil.rmtree(target)
                os.replace(f, target)
        except FileError:
            raise
        except Exception as exc:
            if _is_disk_full(exc):
                raise _disk_full_error(final) from None
            raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _profile(height, width, count, crs, transform, nodata, dtype="float32") -> Dict[str, Any]:
    from affine import Affine

    prof = dict(
        driver="GTiff",
        height=height,
        width=width,
        count=count,
        dtype=dtype,
        crs=crs,
        transform=transform if transform is not None else Affine.identity(),
        nodata=nodata,
        compress="deflate",
        predictor=3 if dtype.startswith("float") else 2,
        interleave="band" if count > 1 else "pixel",
    )
    if height >= 16 and width >= 16:
        bs = 256 if min(height, width) >= 256 else 16 * max(1, min(height, width) // 16)
        prof.update(tiled=True, blockxsize=bs, blockysize=bs)
    return prof


def score_nodata(scores: np.ndarray, input_nodata: Optional[float]) -> float:
    """Nodata value of a score layer: the input's, when it has one, else NaN."""
    if input_nodata is None or np.isnan(input_nodata):
        return float("nan")
    return float(np.float32(input_nodata))


def write_scores(
    path,
    scores: np.ndarray,
    *,
    crs=None,
    transform=None,
    input_nodata: Optional[float] = None,
    detector: str = "",
    params: Optional[Dict[str, Any]] = None,
    n_bands: Optional[int] = None,
    normalize: bool = False,
    overwrite: bool = False,
    extra_tags: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write an anomaly score map as a single-band float32 GeoTIFF.

    CRS and transform are the input's; invalid (NaN) pixels get the input's nodata value when it has one
    (valid scores that happen to equal it are moved one float32 step up so they stay valid), else NaN.
    ``normalize`` scales valid scores to [0, 1]. Tags record the detector, its parameters, the band count
    and the hadcore version (:mod:`hadcore.tags`).
    """
    import rasterio

    s = np.asarray(scores, dtype=np.float32)
    if s.ndim != 2:
        raise InputError(f"scores must be 2-D, got shape {s.shape}")
    valid = np.isfinite(s)
    s = s.copy()
    if normalize and valid.any():
        lo, hi = float(s[valid].min()), float(s[valid].max())
        s[valid] = (s[valid] - lo) / (hi - lo) if hi > lo else 0.0
    nd = score_nodata(s, input_nodata)
    if not np.isnan(nd):
        clash = valid & (s == np.float32(nd))
        s[clash] = np.nextafter(np.float32(nd), np.float32(np.inf))
    s[~valid] = nd
    from .tags import score_tags

    tags = score_tags(detector, params, n_bands=n_bands, normalized=normalize, extra=extra_tags)
    prof = _profile(s.shape[0], s.shape[1], 1, crs, transform, nd)
    with atomic_output(path, overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **prof) as dst:
            dst.write(s, 1)
            dst.set_band_description(1, f"{detector} anomaly score" + (" (0-1)" if normalize else ""))
            dst.update_tags(**tags)
    return Path(path)


def write_cube(
    path,
    cube: np.ndarray,
    *,
    crs=None,
    transform=None,
    wavelengths: Optional[Sequence[float]] = None,
    wavelength_units: str = "micrometers",
    nodata: Optional[float] = None,
    band_names: Optional[Sequence[str]] = None,
    overwrite: bool = False,
    tags: Optional[Dict[str, Any]] = None,
    fwhm: Optional[Sequence[float]] = None,
    bbl: Optional[Sequence[bool]] = None,
) -> Path:
    """Write a (H, W, B) cube (or (H, W) image) as a GeoTIFF.

    Band metadata as EnMAP-Box (and :func:`band_metadata`) read it: band-level ``wavelength``,
    ``wavelength_units``, ``fwhm`` (same units) and ``bbl`` (1 = good band, 0 = bad) keys."""
    import rasterio

    c = np.asarray(cube)
    if c.ndim == 2:
        c = c[:, :, None]
    if c.ndim != 3:
        raise InputError(f"expected a (H, W, B) cube, got shape {c.shape}")
    H, W, B = c.shape
    for what, v in (("wavelengths", wavelengths), ("fwhm values", fwhm), ("bbl flags", bbl)):
        if v is not None and len(v) != B:
            raise InputError(f"{len(v)} {what} for {B} bands")
    dtype = np.dtype(c.dtype).name
    if dtype not in ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64"):
        c, dtype = c.astype(np.float32), "float32"
    prof = _profile(H, W, B, crs, transform, nodata, dtype)
    with atomic_output(path, overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **prof) as dst:
            dst.write(np.moveaxis(c, -1, 0))
            for i in range(B):
                if band_names is not None:
                    dst.set_band_description(i + 1, str(band_names[i]))
                elif wavelengths is not None:
                    dst.set_band_description(i + 1, f"{float(wavelengths[i]):.4f} {wavelength_units}")
                band_tags = {}
                if wavelengths is not None:
                    band_tags.update(wavelength=f"{float(wavelengths[i]):.6g}", wavelength_units=wavelength_units)
                if fwhm is not None:
                    band_tags["fwhm"] = f"{float(fwhm[i]):.6g}"
                if bbl is not None:
                    band_tags["bbl"] = "1" if bbl[i] else "0"
                if band_tags:
                    dst.update_tags(i + 1, **band_tags)
            dst.update_tags(hadcore_version=__version__, **{k: str(v) for k, v in (tags or {}).items()})
    return Path(path)


# ---------------------------------------------------------------------------------------------- streaming
#: GDAL's block cache while streaming (its default, 5 % of RAM, would count against the memory budget)
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


class RasterSource:
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
            with warnings.catch_warnings():
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
            from .engine import scratch_buffer

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

    def block(self, r0, r1, c0, c1, scratch=False):
        from .engine import Source

        return Source.block(self, r0, r1, c0, c1, scratch=scratch)

    def raw_block(self, r0, r1, c0, c1):
        from .base import valid_mask

        raw = self.read(r0, r1, c0, c1, reuse=True)  # consumed before the next block (statistics, float64 copy)
        return raw, valid_mask(raw, self.nodata, self.user_mask(r0, r1, c0, c1))


@dataclass
class Scene:
    """A scene opened for streaming: its source (:class:`RasterSource`, a product's source, or an in-memory
    source for .npz/.mat) and georeference; nothing of the cube is read yet (except the small array formats).

    ``wavelengths``/``fwhm`` of the bands used, in nm (``wavelength_units`` "nm"); ``band_indices`` 0-based
    into the file's band axis; ``output`` the map grid the scores are written on when it is not the cube's
    own (EMIT's GLT: ``crs``/``transform`` are then the output grid's); ``product`` the product type
    ("GDAL raster" for plain rasters); ``notes`` what was decided on the way (dropped bands...).
    """

    source: Any
    crs: Any = None
    transform: Any = None
    nodata: Optional[float] = None
    wavelengths: Optional[np.ndarray] = None
    wavelength_units: Optional[str] = None
    band_indices: List[int] = field(default_factory=list)
    n_source_bands: int = 0
    path: Optional[str] = None
    gt_path: Optional[str] = None
    gt: Optional[np.ndarray] = None
    fwhm: Optional[np.ndarray] = None
    product: str = "raster"
    output: Any = None
    notes: List[str] = field(default_factory=list)
    all_wavelengths: Optional[np.ndarray] = None
    good: Optional[np.ndarray] = None

    @property
    def shape(self):
        return self.source.shape

    @property
    def output_shape(self):
        """(height, width) of the score layer."""
        if self.output is not None:
            return self.output.height, self.output.width
        return tuple(self.source.shape[:2])

    def band_tags(self) -> Dict[str, str]:
        """Dataset tags of a score layer saying what was used: band count, wavelength range, product."""
        from .tags import band_ranges

        tags = {"bands_used": str(len(self.band_indices)), "band_list": band_ranges(self.band_indices),
                "product": self.product}
        if self.wavelengths is not None and len(self.wavelengths):
            tags["wavelength_range_nm"] = f"{float(np.nanmin(self.wavelengths)):.2f}-{float(np.nanmax(self.wavelengths)):.2f}"
        if self.output is not None:
            tags["geometry"] = f"swath scores mapped by the {self.output.description}"
        return tags


def band_metadata(src, n: int):
    """(wavelengths nm or None, fwhm nm or None, good bool (n,)) of a GDAL raster, from (in this order) GDAL's
    IMAGERY domain (``CENTRAL_WAVELENGTH_UM``, ``FWHM_UM``, GDAL >= 3.10), band-level ``wavelength`` /
    ``wavelength_units`` / ``fwhm`` / ``bbl`` keys (EnMAP-Box, GDAL's ENVI driver), the ENVI domain
    (``wavelength``, ``fwhm``, ``bbl``, ``wavelength_units``), then numeric band descriptions."""
    from .products.base import to_nanometres

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


def _choose(path, n, **kw):
    """:func:`hadcore.bands.choose_bands`, its one-line errors naming the file (batch runs over folders)."""
    from .bands import choose_bands
    from .errors import ParameterError

    try:
        return choose_bands(n, **kw)
    except ParameterError as exc:
        raise ParameterError(f"{Path(path).name}: {exc}") from None


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
    idx, notes = _choose(path, n, wavelengths_nm=wl, good=good, bands=bands, wavelength_range=wavelength_range,
                         bad_bands=bad_bands, constant=constant)
    return idx, notes, wl, fw, good


def open_scene(path, bands: Optional[str] = None, wavelength_range: Optional[Sequence[float]] = None,
               bad_bands: Optional[str] = None, ortho: bool = True) -> Scene:
    """Open a scene for the streaming engine without reading its cube.

    Sensor products (EMIT, EnMAP, PRISMA, AVIRIS, DESIS, HyTES: :mod:`hadcore.products`) are recognised by
    content; anything else GDAL opens is a plain raster, and .npz/.mat benchmark files are read whole.
    Bands: :func:`hadcore.bands.choose_bands` (the product's bad-band flags dropped by default;
    ``bad_bands="auto"`` also drops water-vapour windows and constant bands). ``ortho=False`` keeps a
    swath product's sensor geometry instead of its map grid.
    """
    from .engine import ArraySource

    p = Path(path)
    if not p.exists():
        raise FileError(f"input not found: {path}")
    if p.is_dir():
        raise FileError(f"input is a folder, not a raster: {path}")
    if p.suffix.lower() in ARRAY_SUFFIXES:
        r = read_raster(p, bands=bands, wavelength_range=wavelength_range,
                        bad_bands=None if str(bad_bands).lower() in ("auto", "none") else bad_bands)
        return Scene(source=ArraySource(r.cube, r.mask, name=p.name), band_indices=r.band_indices,
                     n_source_bands=r.n_source_bands, path=str(p), gt=r.gt, product="benchmark array")
    from .products import open_product

    product = open_product(p)
    if product is not None:
        n = int(product.shape[2])
        idx, notes = _choose(p, n, wavelengths_nm=product.wavelengths, good=product.good,
                                  reflective=product.reflective, bands=bands, wavelength_range=wavelength_range,
                                  bad_bands=bad_bands, constant=lambda cand: constant_bands(product.source(cand)))
        grid = product.grid(ortho)
        wl = product.wavelengths
        return Scene(source=product.source(idx),
                     crs=grid.crs if grid is not None else product.crs,
                     transform=grid.transform if grid is not None else product.transform,
                     nodata=None, wavelengths=None if wl is None else wl[idx], wavelength_units="nm",
                     band_indices=idx, n_source_bands=n, path=str(p), gt_path=product.gt_path,
                     fwhm=None if product.fwhm is None else product.fwhm[idx], product=product.kind,
                     output=grid, notes=list(product.notes) + notes, all_wavelengths=wl, good=product.good)
    from .products.base import is_hdf5

    if is_hdf5(p):
        # an HDF5 file no reader claims: one HDF5 cannot open (truncated, corrupt) would go to GDAL, whose HDF5
        # driver prints HDF5's error stack on stderr and calls it "not recognized as a supported format"
        try:
            import h5py
        except ImportError:
            h5py = None
        if h5py is not None:
            try:
                try:
                    f = h5py.File(p, "r", locking=False)  # read-only needs no lock (it fails on some file systems)
                except TypeError:  # pragma: no cover - h5py < 3.5
                    f = h5py.File(p, "r")
                f.close()
            except Exception as exc:
                why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise FileError(f"cannot read {p} (corrupt or truncated HDF5 file: {why})") from None
    import rasterio

    with _gdal_env():
        src = _open_dataset(p)
    with src, warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        n = src.count
        bs = src.block_shapes[0] if src.block_shapes else None

        def constant(cand):
            return constant_bands(RasterSource(p, [i + 1 for i in cand], src.nodata, (src.height, src.width), bs))

        idx, notes, wl, fw, good = raster_bands(src, n, p, bands=bands, wavelength_range=wavelength_range,
                                                bad_bands=bad_bands, constant=constant)
        source = RasterSource(p, [i + 1 for i in idx], src.nodata, (src.height, src.width), bs)
        gp = ground_truth_path(p)
        return Scene(source=source, crs=src.crs, transform=src.transform, nodata=src.nodata,
                     wavelengths=None if wl is None else wl[idx], wavelength_units="nm", band_indices=idx,
                     n_source_bands=n, path=str(p), gt_path=str(gp) if gp else None,
                     fwhm=None if fw is None else fw[idx], product=f"{src.driver} raster", notes=notes,
                     all_wavelengths=wl, good=good)


_WRITE_FAILURE = re.compile(r"no space left|disk quota|not enough space|_tiff\w*proc|write error|error \d+:", re.I)


class _CStderr:
    """``with`` block collecting what C libraries print on the process's stderr (fd 2) meanwhile.

    libtiff reports a failed write or seek of a GeoTIFF there ("_tiffWriteProc: No space left on device.")
    instead of through GDAL's error handler, and GDAL's close does not fail on it: without this a full disk
    leaves an incomplete file although every call succeeded, and garbles the one-line error. On leaving the
    block, a write failure raises :class:`FileError` (one line, about ``final``); anything else is passed on
    to stderr. ``check=False`` only swallows (a write that is failing anyway). Where fd 2 cannot be
    redirected (no non-blocking pipes), the block runs unchanged.
    """

    def __init__(self, final, check: bool = True):
        self.final, self.check = final, check
        self._saved = self._read = None

    def __enter__(self):
        try:
            sys.stderr.flush()
        except Exception:  # pragma: no cover - no usable sys.stderr
            pass
        try:
            r, w = os.pipe()
        except OSError:  # pragma: no cover
            return self
        try:
            os.set_blocking(w, False)  # a flood of messages is cut, never blocks the writer
            saved = os.dup(2)
        except OSError:  # pragma: no cover - e.g. Windows before Python 3.12, no fd 2
            os.close(r)
            os.close(w)
            return self
        os.dup2(w, 2)
        os.close(w)
        self._saved, self._read = saved, r
        return self

    def __exit__(self, et, exc, tb):
        if self._saved is None:
            return False
        os.dup2(self._saved, 2)
        os.close(self._saved)
        chunks = []
        try:
            while True:
                b = os.read(self._read, 65536)
                if not b:
                    break
                chunks.append(b)
        finally:
            os.close(self._read)
            self._saved = self._read = None
        text = b"".join(chunks).decode("utf-8", "replace")
        if not text or not self.check:
            return False
        if _WRITE_FAILURE.search(text):
            if _is_disk_full(OSError(text)):
                raise _disk_full_error(self.final) from None
            first = next(ln for ln in text.splitlines() if _WRITE_FAILURE.search(ln)).strip()
            raise FileError(f"cannot write {self.final}: {first[:160]}") from None
        try:
            sys.stderr.write(text)
        except Exception:  # pragma: no cover
            pass
        return False


class ScoreWriter:
    """The score GeoTIFF written block by block (:class:`hadcore.engine.Sink`), as a context manager.

    Single-band float32, tiled 256 x 256, deflate with the floating-point predictor, BigTIFF when the
    file may exceed 4 GB; CRS, transform and nodata from the input (see :func:`write_scores` for the nodata
    rule). Written under a temporary name in the target folder (:func:`atomic_output`) and renamed only when
    complete. ``normalize`` rescales to 0-1 in a second pass over the (one-band) file; ``cog`` converts
    the result into a Cloud-Optimised GeoTIFF with overviews (GDAL's COG driver) before the rename.
    """

    def __init__(self, path, height: int, width: int, *, crs=None, transform=None,
                 input_nodata: Optional[float] = None, detector: str = "", params: Optional[Dict[str, Any]] = None,
                 n_bands: Optional[int] = None, normalize: bool = False, overwrite: bool = False,
                 extra_tags: Optional[Dict[str, Any]] = None, cog: bool = False):
        self.path = Path(path)
        self.height, self.width = int(height), int(width)
        self.crs, self.transform = crs, transform
        self.nd = score_nodata(None, input_nodata)
        self.detector = detector
        self.params = params or {}
        self.n_bands = n_bands
        self.normalize = normalize
        self.overwrite = overwrite
        self.extra_tags = extra_tags or {}
        self.cog = cog
        self.lo, self.hi = np.inf, -np.inf
        self._ctx = None
        self._dst = None

    def __enter__(self):
        import rasterio

        self._ctx = atomic_output(self.path, self.overwrite)
        self._tmp = self._ctx.__enter__()
        prof = _profile(self.height, self.width, 1, self.crs, self.transform, self.nd)
        prof["BIGTIFF"] = "IF_SAFER"
        self._env = _gdal_env()
        self._env.__enter__()
        try:
            with _CStderr(self.path), warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._dst = rasterio.open(self._tmp, "w+" if self.normalize else "w", **prof)
        except BaseException as exc:
            self._abort(exc)
            raise
        return self

    def write(self, r0: int, c0: int, scores: np.ndarray) -> None:
        from rasterio.windows import Window

        s = np.array(scores, dtype=np.float32)
        valid = np.isfinite(s)
        if valid.any():
            self.lo = min(self.lo, float(s[valid].min()))
            self.hi = max(self.hi, float(s[valid].max()))
        if not np.isnan(self.nd):
            s[valid & (s == np.float32(self.nd))] = np.nextafter(np.float32(self.nd), np.float32(np.inf))
        s[~valid] = self.nd
        h, w = s.shape
        with _CStderr(self.path):
            self._dst.write(s, 1, window=Window(c0, r0, w, h))

    def _finish(self):
        import rasterio

        from .tags import score_tags

        tags = score_tags(self.detector, self.params, n_bands=self.n_bands, normalized=self.normalize,
                          extra=self.extra_tags)
        dst = self._dst
        dst.set_band_description(1, f"{self.detector} anomaly score" + (" (0-1)" if self.normalize else ""))
        dst.update_tags(**tags)
        if self.normalize and self.hi >= self.lo:
            span = self.hi - self.lo
            for _, win in dst.block_windows(1):
                a = dst.read(1, window=win)
                ok = a != self.nd if not np.isnan(self.nd) else np.isfinite(a)
                a = a.astype(np.float64)
                a[ok] = (a[ok] - self.lo) / span if span > 0 else 0.0
                a = a.astype(np.float32)
                if not np.isnan(self.nd):
                    a[ok & (a == np.float32(self.nd))] = np.nextafter(np.float32(self.nd), np.float32(np.inf))
                dst.write(a, 1, window=win)
        dst.close()  # flushes GDAL's cache: where a full disk shows (see _CStderr)
        self._dst = None
        try:  # GDAL's close reports no error: check that the file it left is whole
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(self._tmp):
                    pass
        except rasterio.errors.RasterioIOError as exc:
            raise FileError(f"cannot write {self.path}: the file written is unreadable "
                            f"({_gdal_error_text(exc)})") from None
        if self.cog:
            from rasterio.shutil import copy as rio_copy

            cog_tmp = self._tmp.with_name(self._tmp.stem + ".cog" + self._tmp.suffix)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                rio_copy(self._tmp, cog_tmp, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
                         OVERVIEWS="AUTO", BIGTIFF="IF_SAFER", BLOCKSIZE=256)
            os.replace(cog_tmp, self._tmp)

    def _abort(self, exc):
        try:
            if self._dst is not None:
                with _CStderr(self.path, check=False):  # libtiff's complaints about a failing disk
                    self._dst.close()
        except Exception:
            pass
        self._dst = None
        try:
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)
        finally:
            self._env.__exit__(None, None, None)

    def __exit__(self, et, exc, tb):
        if et is not None:
            try:
                self._abort(exc)
            except Exception as new:  # e.g. the disk-full FileError raised by atomic_output
                if isinstance(new, FileError) and new is not exc:
                    raise new from None
            return False
        try:
            with _CStderr(self.path):
                self._finish()
        except BaseException as err:
            self._abort(err)
            raise
        try:
            self._ctx.__exit__(None, None, None)
        finally:
            self._env.__exit__(None, None, None)
        return False
