"""The scene: a path opened for the streaming engine, whatever it is (a sensor product, a GDAL raster, a
benchmark array), with the bands chosen by the one band rule (:func:`hadcore.bands.choose_bands`), its mask,
grid and metadata. The one module that knows the sensor products (:mod:`hadcore.products`).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .engine.source import ArraySource
from .errors import FileError
from .io.gdal import RasterSource, _gdal_env
from .io.read import ARRAY_SUFFIXES, _open_dataset, _parse_wavelengths, ground_truth_path, read_raster

__all__ = ["Scene", "open_scene", "raster_bands", "band_metadata", "constant_bands"]


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


