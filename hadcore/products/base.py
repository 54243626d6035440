"""What every sensor-product reader hands to the engine: a :class:`Product`.

A reader (one module per product family in this package) recognises its files by content
(:func:`Reader.sniff`) and opens them into a :class:`Product`: the cube's shape, band metadata (centre
wavelengths and FWHM in nanometres, the product's own good-band flags), the georeference of the cube's
grid, and a factory of :class:`hadcore.engine.Source` objects that read windows of any band subset as
float32 in physical units (scale factors and offsets applied, fill values as NaN). Nothing of the cube is
read when a product is opened.

Products in sensor (swath) geometry whose map grid is given by a geolocation lookup table (EMIT's GLT)
carry an :class:`OutputGrid`: the engine scores the swath, and the score layer is written on the map grid
by the table (nearest neighbour by construction: no resampling of the scores).

This module imports only numpy; readers import their file libraries (h5py, rasterio) when opening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from ..bands import to_nanometres

__all__ = ["Product", "OutputGrid", "Reader", "to_nanometres", "HDF5_SIGNATURE", "is_hdf5", "head", "require"]

#: the first 8 bytes of an HDF5 file (netCDF-4 files are HDF5 files); HDF5 also allows a user block of
#: 512, 1024, 2048... bytes before it
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_hdf5(path) -> bool:
    """True when ``path`` starts with the HDF5 signature (at 0 or after a power-of-two user block)."""
    try:
        with open(path, "rb") as f:
            for off in (0, 512, 1024, 2048, 4096):
                f.seek(off)
                if f.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def require(module: str, what: str):
    """Import ``module`` or raise a one-line :class:`hadcore.errors.FileError` naming the package to install
    (the QGIS plugin installs hadcore without its dependencies)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        from ..errors import FileError

        pkg = {"netCDF4": "netCDF4", "h5py": "h5py", "rasterio": "rasterio"}.get(module, module)
        raise FileError(f"reading {what} needs the Python package {pkg}: pip install {pkg} "
                        f"(a plain 'pip install hadcore' includes it)") from None


def head(path, n: int = 4096) -> bytes:
    """The first ``n`` bytes of a file (b"" when unreadable)."""
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


@dataclass
class OutputGrid:
    """The map grid the scores are written on when it differs from the cube's grid.

    ``rows``/``cols`` (height, width) int arrays of the map grid holding, for each output pixel, the
    0-based swath row and column it takes its value from, -1 where no swath pixel maps to it.
    """

    height: int
    width: int
    crs: Any
    transform: Any
    rows: np.ndarray
    cols: np.ndarray
    description: str = "geolocation lookup table"

    def remap(self, swath: np.ndarray, r0: int = 0, r1: Optional[int] = None) -> np.ndarray:
        """Rows ``r0:r1`` of the map grid filled from the swath array ``swath`` (H_swath, W_swath); NaN
        where no swath pixel maps."""
        r1 = self.height if r1 is None else r1
        rr = self.rows[r0:r1]
        cc = self.cols[r0:r1]
        out = np.full(rr.shape, np.nan, dtype=np.float32)
        ok = (rr >= 0) & (cc >= 0)
        out[ok] = swath[rr[ok], cc[ok]]
        return out


@dataclass
class Product:
    """An opened sensor product (nothing of the cube read yet).

    ``shape`` (H, W, B) of the full cube in the reader's band order (ascending wavelength where the file
    stores it otherwise: the reader says so in ``notes``); ``wavelengths``/``fwhm`` (B,) in nm or None;
    ``good`` (B,) bool, the product's own flags (``good_wavelengths``, ``bbl``, zero placeholders), all True
    when it has none; ``reflective`` True for VNIR/SWIR sensors (water-vapour windows apply), False for
    thermal ones; ``crs``/``transform`` of the cube's grid (None / None for swath geometry);
    ``source(indexes)`` a :class:`hadcore.engine.Source` over the 0-based ``indexes`` bands;
    ``output`` the :class:`OutputGrid` where scores land, when not the cube's grid.
    """

    kind: str
    path: str
    shape: tuple
    source: Callable[[Sequence[int]], Any]
    wavelengths: Optional[np.ndarray] = None
    fwhm: Optional[np.ndarray] = None
    good: Optional[np.ndarray] = None
    reflective: bool = True
    crs: Any = None
    transform: Any = None
    nodata: Optional[float] = None
    output: Optional[OutputGrid] = None
    output_factory: Optional[Callable[[], Optional[OutputGrid]]] = None
    band_names: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    gt_path: Optional[str] = None

    def __post_init__(self):
        B = int(self.shape[2])
        if self.good is None:
            self.good = np.ones(B, dtype=bool)
        self.good = np.asarray(self.good, dtype=bool)
        for name in ("wavelengths", "fwhm"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64)
                if v.shape != (B,):
                    raise ValueError(f"{self.kind}: {name} has {v.size} values for {B} bands")
                setattr(self, name, v)

    def grid(self, ortho: bool = True) -> Optional[OutputGrid]:
        """The output grid (built on first use: a GLT is read only when needed), or None."""
        if not ortho:
            return None
        if self.output is None and self.output_factory is not None:
            self.output = self.output_factory()
        return self.output


class Reader:
    """One product family: ``sniff(path)`` says whether a file belongs to it (by content), ``open(path)``
    returns a :class:`Product`. Subclasses set ``name`` and ``suffixes`` (for QGIS's file filter)."""

    name = "product"
    suffixes: Sequence[str] = ()

    def sniff(self, path: Path) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def open(self, path: Path) -> Product:  # pragma: no cover - interface
        raise NotImplementedError
