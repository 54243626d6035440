"""Writing score layers and cubes as GeoTIFF, always under a temporary name renamed when complete (a failure
never leaves a half-written output; an existing output is kept unless ``overwrite``)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence

import numpy as np

from .._version import __version__
from ..errors import FileError, InputError, OverwriteError
from .gdal import _gdal_env, _gdal_error_text

__all__ = ["write_scores", "write_cube", "atomic_output", "check_output", "ScoreWriter", "score_nodata", "TMP_TAG"]

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
    from ..tags import score_tags

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

        from ..tags import score_tags

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
