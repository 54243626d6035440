"""Band selection: 1-based index specs (``"1-50,60"``), wavelength ranges and bad-band lists."""

from __future__ import annotations

import re
from typing import List, Optional, Sequence

import numpy as np

from .errors import ParameterError

__all__ = ["parse_band_spec", "select_by_wavelength", "select_bands"]

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


def select_bands(
    n_bands: int,
    bands: Optional[str] = None,
    wavelength_range: Optional[Sequence[float]] = None,
    wavelengths: Optional[Sequence[float]] = None,
    bad_bands: Optional[str] = None,
) -> List[int]:
    """Combine an index spec, a wavelength range and a bad-band spec into 0-based indices."""
    idx = parse_band_spec(bands, n_bands) if bands else list(range(n_bands))
    if wavelength_range is not None:
        lo, hi = wavelength_range
        keep = set(select_by_wavelength(wavelengths, lo, hi))
        idx = [i for i in idx if i in keep]
    if bad_bands:
        drop = set(parse_band_spec(bad_bands, n_bands))
        idx = [i for i in idx if i not in drop]
    if not idx:
        raise ParameterError("the band selection leaves no band")
    return idx
