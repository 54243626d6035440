"""The scene: a path opened for the streaming engine, whatever it is (a sensor product, a GDAL raster, a
benchmark array), with the bands chosen by the one band rule (:func:`hadcore.bands.choose_bands`), its mask,
grid and metadata. The one module that knows the sensor products (:mod:`hadcore.products`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .engine.source import ArraySource
from .errors import FileError
from .io.gdal import RasterSource, _gdal_env
from .io.bands import band_metadata, choose_for, constant_bands, raster_bands
from .io.read import ARRAY_SUFFIXES, _open_dataset, ground_truth_path, read_raster

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
        r = read_raster(p, bands=bands, wavelength_range=wavelength_range, bad_bands=bad_bands)
        return Scene(source=ArraySource(r.cube, r.mask, name=p.name), band_indices=r.band_indices,
                     n_source_bands=r.n_source_bands, path=str(p), gt=r.gt, product="benchmark array",
                     notes=r.notes)
    from .products import open_product

    product = open_product(p)
    if product is not None:
        n = int(product.shape[2])
        idx, notes = choose_for(p, n, wavelengths_nm=product.wavelengths, good=product.good,
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


