"""Spectral libraries: read and write ENVI spectral libraries (``.sli`` + ``.hdr``) and plain CSV, and resample a
library to a scene's bands (issue 26).

ENVI spectral library layout (ENVI header documentation, "ENVI Header Files", L3Harris; the layout SPy's
``spectral.io.envi.SpectralLibrary`` reads and writes): a raw binary file of ``lines`` spectra by ``samples``
spectral points, one band (``bands = 1``, ``interleave = bsq``), ``file type = ENVI Spectral Library``, ``data
type`` 4 (float32) or 5 (float64), ``byte order`` 0 (little-endian) or 1 (big-endian), ``header offset`` bytes
before the data, ``spectra names = {...}`` (one per line), ``wavelength = {...}`` with ``wavelength units``
(nanometers or micrometers), optionally ``fwhm = {...}`` and ``reflectance scale factor`` (the value that,
divided into the data, gives reflectance 0-1: the stored values are divided by it here).

CSV layout: a header row, a wavelength column first (``wavelength_nm``, ``wavelength_um`` or ``wavelength``; a
plain ``wavelength`` in values all below 30 is read as micrometres, as the CLI reads ``--wavelengths``), then one
column per spectrum, named by its header.

Everything is held in nanometres and physical units (scale factor applied), spectra as float64.
"""

from __future__ import annotations

import csv
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .bands import to_nanometres
from .errors import FileError, ParameterError
from .resample import response_matrix

__all__ = ["SpectralLibrary", "read_library", "write_library", "LIBRARY_SUFFIXES"]

LIBRARY_SUFFIXES = (".sli", ".hdr", ".csv")
_ENVI_DTYPES = {4: "f4", 5: "f8"}


@dataclass
class SpectralLibrary:
    """Named spectra on one wavelength grid (nm), in physical units."""

    names: List[str]
    spectra: np.ndarray  # (n_spectra, n_points) float64
    wavelengths: Optional[np.ndarray] = None  # (n_points,) nm, increasing; None when the file has none
    fwhm: Optional[np.ndarray] = None  # (n_points,) nm, when the file gives it
    source: str = ""

    def __post_init__(self):
        self.spectra = np.atleast_2d(np.asarray(self.spectra, dtype=np.float64))
        if len(self.names) != self.spectra.shape[0]:
            raise ParameterError(f"library {self.source or ''}: {len(self.names)} names for "
                                 f"{self.spectra.shape[0]} spectra")
        if self.wavelengths is not None:
            wl = np.asarray(self.wavelengths, dtype=np.float64)
            if wl.shape != (self.spectra.shape[1],):
                raise ParameterError(f"library {self.source}: {wl.size} wavelengths for "
                                     f"{self.spectra.shape[1]} spectral points")
            order = np.argsort(wl, kind="stable")
            if np.any(np.diff(wl[order]) <= 0):
                raise ParameterError(f"library {self.source}: two spectral points share a wavelength")
            self.wavelengths = wl[order]
            self.spectra = self.spectra[:, order]
            if self.fwhm is not None:
                self.fwhm = np.asarray(self.fwhm, dtype=np.float64)[order]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Position of spectrum ``name`` (exact, else case-insensitive); a one-line error lists close names."""
        if name in self.names:
            return self.names.index(name)
        low = [n.lower() for n in self.names]
        if name.lower() in low:
            return low.index(name.lower())
        close = difflib.get_close_matches(name, self.names, n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else f"; it holds {len(self.names)} spectra"
        raise ParameterError(f"no spectrum named {name!r} in {self.source or 'the library'}{hint}")

    def spectrum(self, name: str) -> np.ndarray:
        return self.spectra[self.index(name)].copy()

    def resample(self, wavelengths_nm: Sequence[float], fwhm_nm: Optional[Sequence[float]] = None,
                 max_gap: float = 30.0) -> Tuple[np.ndarray, np.ndarray]:
        """The spectra on a scene's bands: ``(values (n_spectra, n_bands), covered (n_bands,) bool)``.

        Gaussian band responses where the scene's FWHM is known, linear interpolation otherwise
        (:mod:`hadcore.resample`). A band the library does not cover (beyond its range, or in a gap wider than
        ``max_gap`` nm) is NaN in ``values`` and False in ``covered``: nothing is extrapolated; the caller
        reports it (:meth:`coverage_note`). A band at the library's very end is covered by the part of its
        response the library measures (``edges="centre"`` of :func:`hadcore.resample.response_matrix`), so a
        library sampled on the scene's own band centres covers every band.
        """
        if self.wavelengths is None:
            raise ParameterError(f"library {self.source or ''} has no wavelengths: it cannot be matched to the "
                                 "scene's bands")
        M, covered = response_matrix(self.wavelengths, wavelengths_nm, fwhm_nm, max_gap=max_gap, edges="centre")
        out = self.spectra @ M.T
        out[:, ~covered] = np.nan
        return out, covered

    def coverage_note(self, wavelengths_nm: Sequence[float], covered: np.ndarray) -> Optional[str]:
        """One line naming the scene bands the library does not cover, or None when it covers them all."""
        wl = np.asarray(wavelengths_nm, dtype=float)
        miss = wl[~np.asarray(covered, bool)]
        if miss.size == 0:
            return None
        lo, hi = (self.wavelengths[0], self.wavelengths[-1]) if self.wavelengths is not None else (np.nan, np.nan)
        return (f"the library {self.source or ''} (covering {lo:g}-{hi:g} nm) does not cover {miss.size} of the "
                f"{wl.size} bands ({miss.min():g}-{miss.max():g} nm)")


# ----------------------------------------------------------------------------------------------------- read
def read_library(path) -> SpectralLibrary:
    """An ENVI spectral library (the ``.sli`` or its ``.hdr``) or a CSV library."""
    p = Path(path)
    if not p.exists():
        raise FileError(f"spectral library not found: {p}")
    if p.suffix.lower() == ".csv":
        return _read_csv(p)
    return _read_envi(p)


def _envi_pair(p: Path) -> Tuple[Path, Path]:
    if p.suffix.lower() == ".hdr":
        hdr = p
        for cand in (p.with_suffix(".sli"), p.with_suffix(""), p.with_suffix(".SLI")):
            if cand.exists() and cand != hdr:
                return cand, hdr
        raise FileError(f"{p}: no spectral library data file beside the header "
                        f"(looked for {p.with_suffix('.sli').name})")
    for cand in (p.with_suffix(".hdr"), Path(str(p) + ".hdr")):
        if cand.exists():
            return p, cand
    raise FileError(f"{p}: no ENVI header beside it (looked for {p.with_suffix('.hdr').name})")


def _read_envi(p: Path) -> SpectralLibrary:
    from .products.envi import parse_header

    data, hdr = _envi_pair(p)
    f = parse_header(hdr)

    def num(key, default=None):
        if key not in f:
            if default is None:
                raise FileError(f"{hdr}: the ENVI field '{key}' is missing")
            return default
        try:
            return int(float(f[key]))
        except ValueError:
            raise FileError(f"{hdr}: the ENVI field '{key}' is not a number") from None

    def items(key):
        v = f.get(key)
        if v is None:
            return None
        v = v.strip().lstrip("{").rstrip("}")
        return [s.strip() for s in v.split(",") if s.strip()]

    n_points, n_spectra, bands = num("samples"), num("lines"), num("bands", 1)
    dtype_code, order, offset = num("data type"), num("byte order", 0), num("header offset", 0)
    if bands != 1:
        raise FileError(f"{hdr}: a spectral library has one band, this header says {bands}")
    if dtype_code not in _ENVI_DTYPES:
        raise FileError(f"{hdr}: data type {dtype_code} is not supported for spectral libraries (4 or 5)")
    dtype = np.dtype(_ENVI_DTYPES[dtype_code]).newbyteorder(">" if order == 1 else "<")
    need = offset + n_points * n_spectra * dtype.itemsize
    size = data.stat().st_size
    if size < need:
        raise FileError(f"{data} is truncated: {size} bytes, the header needs {need} "
                        f"({n_spectra} spectra of {n_points} points)")
    raw = np.fromfile(data, dtype=dtype, count=n_points * n_spectra, offset=offset)
    spectra = raw.reshape(n_spectra, n_points).astype(np.float64)
    scale = f.get("reflectance scale factor")
    if scale is not None:
        try:
            s = float(scale)
        except ValueError:
            raise FileError(f"{hdr}: the ENVI field 'reflectance scale factor' is not a number") from None
        if s > 0 and s != 1.0:
            spectra = spectra / s
    names = items("spectra names") or [f"spectrum {i + 1}" for i in range(n_spectra)]
    if len(names) != n_spectra:
        raise FileError(f"{hdr}: {len(names)} spectra names for {n_spectra} spectra")
    units = f.get("wavelength units")
    wl = fw = None
    if items("wavelength"):
        try:
            wl = to_nanometres(np.asarray([float(x) for x in items("wavelength")]), units)
            fw = to_nanometres(np.asarray([float(x) for x in items("fwhm")]), units) if items("fwhm") else None
        except ValueError:
            raise FileError(f"{hdr}: a wavelength or fwhm value is not a number") from None
        if wl is None or wl.size != n_points:
            raise FileError(f"{hdr}: {0 if wl is None else wl.size} wavelengths for {n_points} spectral points")
    return SpectralLibrary(names=names, spectra=spectra, wavelengths=wl, fwhm=fw, source=data.name)


def _read_csv(p: Path) -> SpectralLibrary:
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as exc:
        raise FileError(f"cannot read the CSV library {p}: {exc}") from None
    if len(rows) < 2 or len(rows[0]) < 2:
        raise FileError(f"{p}: a CSV library needs a header row, a wavelength column and one spectrum column")
    head = [h.strip() for h in rows[0]]
    try:
        body = np.asarray([[float(c) if c.strip() else np.nan for c in r] for r in rows[1:]], dtype=np.float64)
    except ValueError:
        raise FileError(f"{p}: a value is not a number (a CSV library holds numbers below its header row)") from None
    if body.ndim != 2 or body.shape[1] != len(head):
        raise FileError(f"{p}: every row must have {len(head)} values, as the header")
    key = head[0].lower().replace(" ", "")
    if "wavelength" not in key and key not in ("wl", "lambda", "nm", "um"):
        raise FileError(f"{p}: the first column must be the wavelength (header 'wavelength_nm', 'wavelength_um' "
                        f"or 'wavelength'), not {head[0]!r}")
    wl = body[:, 0]
    unit = "micrometers" if ("um" in key or "µm" in key or "micro" in key) else (
        "nanometers" if "nm" in key or "nano" in key else None)
    wl = to_nanometres(wl, unit)  # no unit in the header: guessed from the magnitude (< 30: micrometres)
    return SpectralLibrary(names=head[1:], spectra=body[:, 1:].T, wavelengths=wl, source=p.name)


# ---------------------------------------------------------------------------------------------------- write
def write_library(lib: SpectralLibrary, path, overwrite: bool = False) -> Path:
    """Write ``lib`` as an ENVI spectral library (``.sli`` + ``.hdr``, float32, little-endian, nanometres) or
    as CSV (``.csv``). Written under temporary names and renamed; an existing file is kept unless
    ``overwrite``."""
    p = Path(path)
    targets = [p] if p.suffix.lower() == ".csv" else [p.with_suffix(".sli"), p.with_suffix(".hdr")]
    for t in targets:
        if t.exists() and not overwrite:
            raise FileError(f"{t} exists; use --overwrite to replace it")
    if p.suffix.lower() == ".csv":
        if lib.wavelengths is None:
            raise ParameterError("a CSV library needs wavelengths (its first column)")
        tmp = p.with_name(f".{p.name}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["wavelength_nm"] + list(lib.names))
            for j, x in enumerate(lib.wavelengths):
                w.writerow([repr(float(x))] + [repr(float(v)) for v in lib.spectra[:, j]])
        os.replace(tmp, p)
        return p
    sli, hdr = targets
    lines = ["ENVI", "description = {hadcore spectral library}", f"samples = {lib.spectra.shape[1]}",
             f"lines = {lib.spectra.shape[0]}", "bands = 1", "header offset = 0", "file type = ENVI Spectral Library",
             "data type = 4", "interleave = bsq", "byte order = 0", "reflectance scale factor = 1.000000",
             "spectra names = {" + ", ".join(n.replace(",", ";") for n in lib.names) + "}"]
    if lib.wavelengths is not None:
        lines += ["wavelength units = Nanometers",
                  "wavelength = {" + ", ".join(f"{x:.6g}" for x in lib.wavelengths) + "}"]
        if lib.fwhm is not None:
            lines.append("fwhm = {" + ", ".join(f"{x:.6g}" for x in lib.fwhm) + "}")
    tmp_sli, tmp_hdr = sli.with_name(f".{sli.name}.tmp"), hdr.with_name(f".{hdr.name}.tmp")
    lib.spectra.astype("<f4").tofile(tmp_sli)
    tmp_hdr.write_text("\n".join(lines) + "\n", encoding="latin-1")
    os.replace(tmp_sli, sli)
    os.replace(tmp_hdr, hdr)
    return sli


# ------------------------------------------------------------------------------------------- target specs
def split_spec(spec: str) -> Tuple[Path, Optional[str]]:
    """``LIBRARY[:NAME]`` -> (path, name or None). The name follows the last ``:`` when what precedes it is an
    existing file (so ``C:\\lib.sli`` and names holding ``:`` both work)."""
    s = str(spec).strip()
    if Path(s).exists():
        return Path(s), None
    head, sep, name = s.rpartition(":")
    if sep and head and Path(head).exists():
        return Path(head), name.strip() or None
    raise FileError(f"spectral library not found: {head if sep and head else s}")


def resolve_spectrum(spec, wavelengths_nm=None, fwhm_nm=None, n_bands: Optional[int] = None,
                     what: str = "target") -> Tuple[np.ndarray, List[str]]:
    """A target spec on a scene's selected bands: ``(values (n_bands,), notes)``.

    ``spec``: ``LIBRARY.sli:NAME``, ``LIBRARY.csv:NAME`` (a library of one spectrum needs no name), or the values
    themselves (numbers, one per band). A library is resampled by wavelength (Gaussian responses where the
    scene's FWHM is known); a scene band the library does not cover is an error naming them, never extrapolated.
    """
    from .detectors.target_base import parse_numbers

    values = parse_numbers(spec)
    if values is not None:
        if n_bands is not None and values.size != n_bands:
            raise ParameterError(f"the {what} has {values.size} values, the scene {n_bands} selected bands")
        return values, []
    path, name = split_spec(spec)
    if _is_detections(path):
        return _detection_target(path, name, wavelengths_nm, fwhm_nm, n_bands, what)
    lib = read_library(path)
    if name is None:
        if len(lib) != 1:
            raise ParameterError(f"{path.name} holds {len(lib)} spectra: name one ({path.name}:NAME), e.g. "
                                 + ", ".join(lib.names[:5]))
        name = lib.names[0]
    i = lib.index(name)
    if wavelengths_nm is None:
        raise ParameterError(f"the scene carries no band wavelengths, so the {what} {spec!r} cannot be matched "
                             "to its bands: give its values, one per band")
    wl = np.asarray(wavelengths_nm, dtype=float)
    vals, covered = SpectralLibrary(names=[lib.names[i]], spectra=lib.spectra[i:i + 1], wavelengths=lib.wavelengths,
                                    source=lib.source).resample(wl, fwhm_nm)
    if not covered.all():
        raise ParameterError(f"{lib.coverage_note(wl, covered)}; choose the covered bands (--wavelengths LO:HI) or "
                             "another library")
    return vals[0], [f"{what}: {lib.names[i]!r} from {lib.source}, resampled to {wl.size} bands "
                     f"({'Gaussian responses' if fwhm_nm is not None else 'linear interpolation'})"]


_VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp")


def _is_detections(path: Path) -> bool:
    """A detections layer (its spectra table names the target), or the ``_spectra.csv`` written beside one."""
    if path.suffix.lower() in _VECTOR_SUFFIXES:
        return True
    if path.suffix.lower() == ".csv":
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                head = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError):
            return False
        return {"id", "band", "mean"} <= {h.strip() for h in head}
    return False


def _detection_target(path: Path, name, wavelengths_nm, fwhm_nm, n_bands, what) -> Tuple[np.ndarray, List[str]]:
    """``DETECTIONS.gpkg:ID``: the mean spectrum of detection ID ("find more like this"), on the scene's bands:
    as stored when the detections were made on the same bands, else resampled by wavelength."""
    from .vectorize import read_detection_spectra

    if name is None or not name.strip().lstrip("-").isdigit():
        raise ParameterError(f"name a detection by its id: {path.name}:ID (e.g. {path.name}:1)")
    found = read_detection_spectra(path)
    det_id = int(name)
    if det_id < 1:
        raise ParameterError(f"detection ids start at 1 (id 0 is the background), got {det_id}")
    values = found.spectrum(det_id, "mean")
    note = f"{what}: the mean spectrum of detection {det_id} of {path.name} ({int(found.pixels[found.ids == det_id][0])} px)"
    wl_t = found.wavelengths
    if wavelengths_nm is not None and wl_t is not None:
        wl = np.asarray(wavelengths_nm, dtype=float)
        if wl.shape == wl_t.shape and np.allclose(wl, wl_t, atol=0.5):
            return values, [note]
        lib = SpectralLibrary(names=[f"detection {det_id}"], spectra=values[None], wavelengths=wl_t,
                              source=path.name)
        vals, covered = lib.resample(wl, fwhm_nm)
        if not covered.all():
            raise ParameterError(f"{lib.coverage_note(wl, covered)}; choose the covered bands (--wavelengths "
                                 "LO:HI)")
        return vals[0], [note + f", resampled from {wl_t.size} to {wl.size} bands"]
    if n_bands is not None and values.size != n_bands:
        raise ParameterError(f"detection {det_id} of {path.name} has a spectrum of {values.size} bands, the scene "
                             f"{n_bands} selected bands, and no wavelengths to match them by")
    return values, [note]


def prepare_spectra(det, wavelengths_nm=None, fwhm_nm=None, n_bands: Optional[int] = None) -> List[str]:
    """Resolve every spectrum parameter of ``det`` (a target detector) against a scene's bands and hand the
    values to it; returns notes for the user. Other detectors: nothing to do."""
    notes: List[str] = []
    for param in getattr(det, "spectrum_params", ()):
        spec = getattr(det, param)
        if not str(spec).strip():
            continue  # the detector reports a missing target itself
        values, more = resolve_spectrum(spec, wavelengths_nm, fwhm_nm, n_bands, what=param)
        det.set_spectrum(param, values)
        notes += more
    return notes
