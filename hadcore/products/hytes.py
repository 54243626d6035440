"""HyTES Level-2 products (HDF5): emissivity spectra as the cube.

HyTES (JPL's Hyperspectral Thermal Emission Spectrometer, 256 bands 7.5-12 um, 512 samples; hytes.jpl.nasa.gov)
delivers its Level-1 radiance as ENVI BIP float32 (read by :mod:`hadcore.products.envi`) and its Level-2
products as one HDF5 file per flight line. No public format specification of the L2 HDF5 file could be
found; the layout below is the one established from open readers of real files:

- File names: ``YYYY-MM-DD.HHMMSS.<Site>.Line<N>-Run<N>-Segment<NN>.L2.hdf5`` (the product text files quoted
  in github.com/manishverma09/HyTES, hytes_readdata.ipynb) and, for later flights,
  ``YYYYMMDDtHHMMSS_<Site>_L2[_B<NN>_V<NN>].hdf5`` (same notebook: ``20190912t164958_RiversideCA_L2.hdf5``;
  a HyTES L2 converter's file pattern ``^(\\d{8}t\\d{6})_(.+)_L2_B(\\d+)_V(\\d+)\\.hdf5$``).
- Root datasets of a 2019 file (the notebook's listing): ``ISAC_Path_Rad``, ``ISAC_Skydown_Rad``,
  ``L2_Emissivity``, ``L2_Emissivity_PC``, ``L2_Emissivity_Wavelengths``, ``L2_Emissivity_Wavelengths_PC``,
  ``L2_LST``, ``Transmission``. Files of 2016 use lower-case names: ``l2_emissivity``,
  ``l2_emissivity_wavelengths``, ``l2_land_surface_temperature`` (an IDL converter and an R reader of
  HyTES L2 files).
- ``L2_Emissivity``: float32 (lines, samples, bands), the TES emissivity of the 202 'window bands' 8-11.5 um
  (the product text: "same dimensions as the Level 1A data except it only has the 202 TES window bands");
  h5py sees (lines, samples, bands) (the converter: ``n_lines, n_samples, n_emis = emis.shape``; the IDL
  reader reports the column-major dims "bands, samples, lines"). ``L2_Emissivity_PC``: all 256 bands
  7.4-12 um (PC regression). ``L2_LST``: (lines, samples) Kelvin. Wavelength datasets in micrometres.
  Arrays are shuffled + GZIP-compressed with Fletcher32 checksums (product text). Root attributes include
  ``product_version`` and ``acquisition_time``.
- Fill values are not documented; the open converter treats emissivity <= 0 (and LST <= 0) as missing,
  so does this reader (plus a ``_FillValue`` attribute where present).
- No geolocation in the L2 file (the converter takes latitude/longitude from the matching L1 HDF5): the
  product is in swath geometry, ``crs``/``transform`` None.

The cube is the TES emissivity (``L2_Emissivity``), or the PC emissivity when the file has no TES layer;
LST is a single layer in other units and is not part of the cube. HyTES is thermal: ``reflective=False``.
This module imports only numpy and the standard library at import time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from ..engine import Source
from .base import Product, Reader, is_hdf5, require, to_nanometres

__all__ = ["READER", "HytesL2Reader", "HytesL2Source", "EMISSIVITY_LAYERS"]

#: (cube dataset, wavelength dataset) candidates, in order of preference
EMISSIVITY_LAYERS = (
    ("L2_Emissivity", "L2_Emissivity_Wavelengths"),
    ("l2_emissivity", "l2_emissivity_wavelengths"),
    ("L2_Emissivity_PC", "L2_Emissivity_Wavelengths_PC"),
    ("L2_Emissivity_PC", "L2_Emissivity_PC_Wavelengths"),
)
_L2_NAME = re.compile(r"(\.L2\.hdf5$|_L2(_B\d+_V\d+)?\.(hdf5|h5)$)", re.I)


def _h5_error(path, exc) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{path}: cannot read it as a HyTES L2 HDF5 file (truncated or corrupt: {text[:160]})"


class HytesL2Source(Source):
    """Windows of an HDF5 emissivity cube: (h, w, B) float32, fill -> NaN. Opened lazily, handle dropped
    when pickled."""

    read_bytes = 4

    def __init__(self, path, dataset: str, band_axis: int, bands: Sequence[int], hw: Tuple[int, int],
                 fill: Optional[float], block_shape=None):
        self.path = str(path)
        self.dataset = dataset
        self.band_axis = int(band_axis)
        self.bands = np.asarray([int(b) for b in bands], dtype=np.intp)
        self.shape = (int(hw[0]), int(hw[1]), len(self.bands))
        self.fill = None if fill is None or not np.isfinite(fill) else np.float32(fill)
        self.nodata = None
        self.block_shape = tuple(block_shape) if block_shape else None
        self.name = Path(path).name
        self._file = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_file"] = None
        return d

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def _ds(self):
        from ..errors import FileError

        if self._file is None:
            h5py = require("h5py", "HyTES L2 products")
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise FileError(_h5_error(self.path, exc)) from None
        return self._file[self.dataset]

    def read(self, r0, r1, c0, c1):
        from ..errors import FileError, InputError

        H, W, _ = self.shape
        if not (0 <= r0 <= r1 <= H and 0 <= c0 <= c1 <= W):
            raise InputError(f"{self.name}: window rows {r0}-{r1}, columns {c0}-{c1} is outside the {H} x {W} image")
        ds = self._ds()
        lo, hi = int(self.bands.min()), int(self.bands.max()) + 1
        try:
            if self.band_axis == 2:
                block = ds[r0:r1, c0:c1, lo:hi]
            else:
                block = np.moveaxis(ds[lo:hi, r0:r1, c0:c1], 0, -1)
        except (OSError, ValueError, RuntimeError) as exc:  # h5py: checksum / inflate / short read errors
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FileError(f"{self.path}: cannot read {self.dataset} at rows {r0}-{r1 - 1}, columns "
                            f"{c0}-{c1 - 1} (corrupt or truncated file: {text[:160]})") from None
        out = np.asarray(block[:, :, self.bands - lo], dtype=np.float32)
        bad = ~(out > 0)  # emissivity <= 0 (and NaN) is missing
        if self.fill is not None:
            bad |= out == self.fill
        if bad.any():
            out[bad] = np.nan
        return out


class HytesL2Reader(Reader):
    name = "hytes"
    suffixes = (".hdf5", ".h5")

    def sniff(self, path) -> bool:
        p = Path(path)
        try:
            if not p.is_file() or not is_hdf5(p):
                return False
            try:
                import h5py
            except ImportError:  # claim by name: open() then says which package to install
                return bool(_L2_NAME.search(p.name))
            with h5py.File(p, "r") as f:
                return _layer(f) is not None
        except Exception:
            return False

    def open(self, path) -> Product:
        from ..errors import FileError

        p = Path(path)
        if not p.exists():
            raise FileError(f"input not found: {p}")
        h5py = require("h5py", "HyTES L2 products")
        try:
            f = h5py.File(p, "r")
        except OSError as exc:
            raise FileError(_h5_error(p, exc)) from None
        with f:
            layer = _layer(f)
            if layer is None:
                raise FileError(f"{p}: no HyTES L2 emissivity dataset (looked for "
                                f"{', '.join(sorted({c for c, _ in EMISSIVITY_LAYERS}))})")
            cube_name, wl_name = layer
            ds = f[cube_name]
            if ds.ndim != 3:
                raise FileError(f"{p}: {cube_name} has shape {ds.shape}, expected (lines, samples, bands)")
            if wl_name not in f:
                raise FileError(f"{p}: {cube_name} has no wavelength dataset {wl_name} (band centre "
                                f"wavelengths are needed)")
            try:
                wl_raw = np.asarray(f[wl_name][()], dtype=np.float64).reshape(-1)
            except OSError as exc:
                raise FileError(_h5_error(p, exc)) from None
            units = _attr_str(f[wl_name], "units")
            nb = wl_raw.size
            if ds.shape[2] == nb:
                band_axis, (H, W) = 2, ds.shape[:2]
            elif ds.shape[0] == nb:
                band_axis, (H, W) = 0, ds.shape[1:]
            else:
                raise FileError(f"{p}: {cube_name} has shape {ds.shape}, none of its axes matches the "
                                f"{nb} wavelengths of {wl_name}")
            chunks = ds.chunks
            block = None
            if chunks is not None:
                block = tuple(chunks[:2]) if band_axis == 2 else tuple(chunks[1:])
            fill = None
            for key in ("_FillValue", "FillValue", "fill_value", "missing_value"):
                if key in ds.attrs:
                    try:
                        fill = float(np.asarray(ds.attrs[key]).reshape(-1)[0])
                    except (TypeError, ValueError):
                        fill = None
                    break
            version = _attr_str(f, "product_version")
        wl = to_nanometres(wl_raw, units)  # no units attribute: HyTES gives um; values < 30 are taken as um
        if wl is None:
            raise FileError(f"{p}: {wl_name} is in '{units}', not a wavelength unit")
        order = np.arange(nb)
        notes = [f"cube: {cube_name} (emissivity); L2 LST is not part of the cube",
                 "swath geometry: the L2 file carries no geolocation"]
        if version:
            notes.append(f"product_version {version}")
        if np.any(np.diff(wl) < 0):
            order = np.argsort(wl, kind="stable")
            notes.append("bands reordered to ascending wavelength")
        path_s = str(p)

        def source(indexes):
            from ..errors import InputError

            idx = [int(i) for i in np.asarray(indexes).reshape(-1)]
            if not idx:
                raise InputError("HyTES L2: no bands selected")
            bad = [i for i in idx if not 0 <= i < nb]
            if bad:
                raise InputError(f"HyTES L2: band index {bad[0]} is outside 0-{nb - 1}")
            return HytesL2Source(path_s, cube_name, band_axis, [int(order[i]) for i in idx], (H, W), fill, block)

        from ..io import ground_truth_path

        gp = ground_truth_path(p)
        return Product(kind="HyTES L2", path=path_s, shape=(int(H), int(W), nb), source=source,
                       wavelengths=wl[order], fwhm=None, good=np.ones(nb, dtype=bool), reflective=False,
                       crs=None, transform=None, nodata=None, notes=notes, gt_path=str(gp) if gp else None)


def _layer(f):
    """(cube dataset, wavelength dataset) of the first emissivity layer the file has, or None."""
    seen = []
    for cube, _ in EMISSIVITY_LAYERS:
        if cube in seen:
            continue
        seen.append(cube)
        if cube in f and hasattr(f[cube], "shape"):
            wls = [w for c, w in EMISSIVITY_LAYERS if c == cube]
            return cube, next((w for w in wls if w in f), wls[0])
    return None


def _attr_str(obj, key) -> Optional[str]:
    if key not in obj.attrs:
        return None
    v = obj.attrs[key]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.reshape(-1)[0]
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return str(v)


READER = HytesL2Reader()
