"""The one band rule (:func:`choose_bands`): 1-based index specs (``"1-50,60"``), wavelength ranges in nm, a
product's bad-band flags, ``auto`` (water-vapour windows, constant bands) and bad-band lists. Every way into a
run chooses its bands here: :mod:`hadcore.io.bands` applies it to a raster's metadata, the product readers
and the xarray path to theirs."""

from __future__ import annotations

import re
from typing import List, Optional, Sequence

import numpy as np

from .errors import ParameterError

__all__ = ["parse_band_spec", "select_by_wavelength", "choose_bands", "to_nanometres", "WATER_VAPOUR_NM"]

_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_band_spec(spec: str, n_bands: int) -> List[int]:
    """0-based band indices from a 1-based spec: ``"1-50,60"`` -> [0..49, 59], in the order given.

    Ranges are inclusive; duplicates are dropped (first occurrence kept).
    """
    if spec is None or not str(spec).strip():
        raise ParameterError("band spec is empty; expected e.g. '1-50,60'")
    out: List[int] = []
    seen = set()
    for part in str(spec).split(","):
        m = _ITEM.match(part)
        if not m:
            raise ParameterError(f"bad band spec item {part.strip()!r} in {spec!r}; expected N or N-M (1-based)")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        if a < 1 or b < a or b > n_bands:
            raise ParameterError(f"band range {part.strip()!r} is outside 1-{n_bands} (the raster has {n_bands} bands)")
        for i in range(a - 1, b):
            if i not in seen:
                seen.add(i)
                out.append(i)
    return out


def select_by_wavelength(wavelengths: Optional[Sequence[float]], lo: float, hi: float) -> List[int]:
    """0-based indices of bands whose centre wavelength lies in [lo, hi] (same unit as the raster's)."""
    if wavelengths is None:
        raise ParameterError("this raster carries no band wavelengths; select bands by index (--bands) instead")
    wl = np.asarray(wavelengths, dtype=float)
    idx = [int(i) for i in np.flatnonzero((wl >= lo) & (wl <= hi))]
    if not idx:
        raise ParameterError(
            f"no band in wavelength range [{lo}, {hi}]; the raster covers [{wl.min():g}, {wl.max():g}]"
        )
    return idx


# ------------------------------------------------------------------------------ products: good and bad bands
#: water-vapour absorption windows of reflective (VNIR/SWIR) sensors, nm: the 1.4 and 1.9 um bands and the
#: low-signal end of the SWIR, where radiance is near zero and reflectance retrievals are noise
WATER_VAPOUR_NM = ((1350.0, 1450.0), (1800.0, 1950.0), (2450.0, float("inf")))


def to_nanometres(values, units: Optional[str]) -> Optional[np.ndarray]:
    """Wavelengths in nm from values in ``units`` (nm, um / micrometers / microns, mm, m, wavenumber
    cm-1 is not a wavelength and returns None); units None: guessed from the magnitude (< 30: um)."""
    if values is None:
        return None
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return None
    u = (units or "").strip().lower().replace("µ", "u").replace("μ", "u")
    if u in ("nm", "nanometer", "nanometers", "nanometre", "nanometres"):
        return v
    if u in ("um", "micrometer", "micrometers", "micrometre", "micrometres", "micron", "microns", "mum"):
        return v * 1e3
    if u in ("mm", "millimeter", "millimeters"):
        return v * 1e6
    if u in ("m", "meter", "meters", "metre", "metres"):
        return v * 1e9
    if u and ("cm-1" in u or "wavenumber" in u):
        return None
    pos = v[np.isfinite(v) & (v > 0)]
    if pos.size and np.nanmax(pos) < 30:  # no VSWIR or TIR band centre is below 30 nm: these are um
        return v * 1e3
    return v


def wavelength_range_nm(lo: float, hi: float):
    """A user's LO:HI in nm; both below 30 reads as micrometres (no VSWIR or TIR band centre is < 30 nm)."""
    if hi < 30:
        return lo * 1e3, hi * 1e3
    return lo, hi


def choose_bands(
    n_bands: int,
    *,
    wavelengths_nm: Optional[Sequence[float]] = None,
    good: Optional[Sequence[bool]] = None,
    reflective: bool = True,
    bands: Optional[str] = None,
    wavelength_range: Optional[Sequence[float]] = None,
    bad_bands: Optional[str] = None,
    constant=None,
):
    """The 0-based bands a run uses, and one note per reason a band was dropped.

    ``good``: the product's own flags (``good_wavelengths``, ``bbl``, placeholders), dropped by default.
    ``bad_bands``: None (drop the product's flags), ``"none"`` (keep every band), ``"auto"`` (also the
    water-vapour windows of a reflective sensor, and constant or all-nodata bands: ``constant(idx)`` returns
    a bool per candidate band), or a 1-based spec of more bands to drop; tokens combine (``"auto,1-5"``).
    ``wavelength_range`` (LO, HI) in nm (or um: :func:`wavelength_range_nm`).
    Raises :class:`ParameterError` when nothing is left, saying what removed the bands.
    """
    notes: List[str] = []
    idx = parse_band_spec(bands, n_bands) if bands else list(range(n_bands))
    wl = None if wavelengths_nm is None else np.asarray(wavelengths_nm, dtype=float)
    if wavelength_range is not None:
        lo, hi = wavelength_range_nm(*wavelength_range)
        keep = set(select_by_wavelength(wl, lo, hi))
        idx = [i for i in idx if i in keep]
    tokens = [t.strip() for t in str(bad_bands).split(",")] if bad_bands else []
    mode = "none" if "none" in (t.lower() for t in tokens) else ("auto" if "auto" in (t.lower() for t in tokens)
                                                                 else "flags")
    spec = ",".join(t for t in tokens if t.lower() not in ("auto", "none"))
    reasons = []
    if mode != "none" and good is not None:
        g = np.asarray(good, dtype=bool)
        flagged = [i for i in idx if not g[i]]
        if flagged:
            idx = [i for i in idx if g[i]]
            reasons.append(f"{len(flagged)} flagged bad by the product")
    if spec:
        drop = set(parse_band_spec(spec, n_bands))
        k = sum(1 for i in idx if i in drop)
        idx = [i for i in idx if i not in drop]
        if k:
            reasons.append(f"{k} listed in --bad-bands")
    if mode == "auto":
        if reflective and wl is not None:
            win = [i for i in idx if any(a <= wl[i] < b for a, b in WATER_VAPOUR_NM)]
            if win:
                idx = [i for i in idx if i not in set(win)]
                reasons.append(f"{len(win)} in water-vapour windows")
        if constant is not None and idx:
            flat = np.asarray(constant(idx), dtype=bool)
            const = [i for i, c in zip(idx, flat) if c]
            if const:
                idx = [i for i in idx if i not in set(const)]
                reasons.append(f"{len(const)} constant or without data")
    if reasons:
        notes.append(f"dropped {n_bands - len(idx)} of {n_bands} bands: " + ", ".join(reasons))
    if not idx:
        why = f" ({', '.join(reasons)})" if reasons else ""
        raise ParameterError(f"the band selection leaves no band of {n_bands}{why}")
    return idx, notes
