"""A small HyTES Level-2 product (HDF5) built around a real benchmark cube.

``make_hytes_l2(folder, cube, gt=None, legacy=False, ...)`` writes the L2 HDF5 file and returns its path;
``build_hytes_l2`` returns a :class:`HytesL2Fixture` with what a reader must produce (``expected``: the
TES emissivity cube, NaN at fill samples; ``wavelengths`` in nm).

Layout facts and their sources:

  [HYTES-TXT] HyTES product text quoted in github.com/manishverma09/HyTES (hytes_readdata.ipynb): L2 file
              "2014-07-06.194610.SaltonSea.Line2-Run1-Segment01.L2.hdf5"; root attributes 'product_version'
              and 'acquisition_time'; 32-bit float arrays, shuffled + GZIP, Fletcher32 checksums; emissivity
              8-11.5 um "with the same dimensions as the Level 1A data except it only has the 202 TES window
              bands"; PC emissivity 7.4-12 um for all 256 bands; LST in Kelvin, one band
  [HYTES-NB]  same notebook, a 2019 file "20190912t164958_RiversideCA_L2.hdf5": root datasets
              ['ISAC_Path_Rad', 'ISAC_Skydown_Rad', 'L2_Emissivity', 'L2_Emissivity_PC',
              'L2_Emissivity_Wavelengths', 'L2_Emissivity_Wavelengths_PC', 'L2_LST', 'Transmission'];
              L2_LST shape (14340, 512) = (lines, samples)
  [HYTES-CONV] a HyTES L2 converter (h5py): names ..._L2_B<NN>_V<NN>.hdf5; n_lines, n_samples, n_emis =
              L2_Emissivity.shape; wavelengths in um; emissivity <= 0 and LST <= 0 treated as missing; no
              geolocation in L2 (taken from the L1 file's latitude / longitude)
  [HYTES-OLD] an IDL converter of "2016-01-25.223617.HuntingtonGardens.Line1-Run1-Segment01.L2.hdf5"
              ('/l2_emissivity', dims reported column-major as bands, samples, lines) and an R reader
              (l2_land_surface_temperature, l2_emissivity, l2_emissivity_wavelengths): the 2016 lower-case
              names

This fixture's own: the fill value of non-retrieved pixels (-9999; not documented, the converter treats
<= 0 as missing), the chunk shape, the shapes of ISAC_Path_Rad / ISAC_Skydown_Rad / Transmission (written
as 256-value spectra), and the attribute values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from product_fixtures.envi import hytes_bands, to_bands

__all__ = ["make_hytes_l2", "build_hytes_l2", "HytesL2Fixture", "tes_wavelengths", "HYTES_L2_NAME",
           "HYTES_L2_LEGACY_NAME", "HYTES_FILL"]

HYTES_L2_NAME = "20190912t164958_RiversideCA_L2_B01_V02.hdf5"  # [HYTES-NB] + [HYTES-CONV] block/version
HYTES_L2_LEGACY_NAME = "2016-01-25.223617.HuntingtonGardens.Line1-Run1-Segment01.L2.hdf5"  # [HYTES-OLD]
HYTES_FILL = -9999.0


@dataclass
class HytesL2Fixture:
    path: Path
    expected: np.ndarray        # (H, W, B) float32 emissivity, NaN at fill
    wavelengths: np.ndarray     # nm
    lst: np.ndarray
    gt_path: Optional[Path] = None


def tes_wavelengths(n: int = 202) -> np.ndarray:
    """The TES window bands (um): ``n`` consecutive HyTES bands from 8.0 um on ([HYTES-TXT] 202 bands
    8-11.5 um)."""
    wl = hytes_bands()
    i0 = int(np.searchsorted(wl, 8.0))
    return wl[i0:i0 + n]


def _emissivity(data: np.ndarray) -> np.ndarray:
    """A real cube mapped affinely into emissivity range 0.80-0.99."""
    lo, hi = float(np.min(data)), float(np.max(data))
    return (0.80 + 0.19 * (data - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def build_hytes_l2(folder, cube, gt=None, *, legacy: bool = False, n_tes: int = 202, fill_pixels=((0, 0), (3, 4)),
                   pc: bool = True, with_tes: bool = True, wavelengths: bool = True, bands_first: bool = False,
                   name: Optional[str] = None, chunk_lines: int = 16) -> HytesL2Fixture:
    import h5py

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or (HYTES_L2_LEGACY_NAME if legacy else HYTES_L2_NAME))
    wl = tes_wavelengths(n_tes)
    emis = _emissivity(to_bands(cube, wl.size))
    H, W, B = emis.shape
    expected = emis.copy()
    raw = emis.copy()
    for r, c in (fill_pixels or ()):
        raw[r, c, :] = HYTES_FILL
        expected[r, c, :] = np.nan
    lst = (290.0 + 30.0 * (emis.mean(axis=2) - 0.8) / 0.19).astype(np.float32)
    pc_wl = hytes_bands()
    comp = dict(shuffle=True, compression="gzip", fletcher32=True)  # [HYTES-TXT]
    names = (("l2_emissivity", "l2_emissivity_wavelengths", "l2_land_surface_temperature") if legacy else
             ("L2_Emissivity", "L2_Emissivity_Wavelengths", "L2_LST"))  # [HYTES-OLD] / [HYTES-NB]
    with h5py.File(path, "w") as f:
        f.attrs["product_version"] = "2.0"                     # [HYTES-TXT] attribute names
        f.attrs["acquisition_time"] = "2019-09-12T16:49:58Z"
        if with_tes:
            arr = np.moveaxis(raw, 2, 0) if bands_first else raw  # [HYTES-CONV] (lines, samples, bands)
            chunks = (B, min(chunk_lines, H), W) if bands_first else (min(chunk_lines, H), W, B)
            f.create_dataset(names[0], data=arr, dtype="f4", chunks=chunks, **comp)
            if wavelengths:
                f.create_dataset(names[1], data=wl.astype(np.float32))  # um ([HYTES-CONV])
        f.create_dataset(names[2], data=np.where(np.isnan(expected[:, :, 0]), HYTES_FILL, lst).astype("f4"),
                         chunks=(min(chunk_lines, H), W), **comp)  # [HYTES-NB] (lines, samples), Kelvin
        if not legacy:
            if pc:
                pc_cube = _emissivity(to_bands(cube, pc_wl.size))
                f.create_dataset("L2_Emissivity_PC", data=pc_cube, chunks=(min(chunk_lines, H), W, pc_wl.size),
                                 **comp)
                f.create_dataset("L2_Emissivity_Wavelengths_PC", data=pc_wl.astype(np.float32))
            for ds in ("ISAC_Path_Rad", "ISAC_Skydown_Rad", "Transmission"):  # [HYTES-NB] names; shapes own
                f.create_dataset(ds, data=np.linspace(0.1, 1.0, pc_wl.size, dtype=np.float32))
    gtp = None
    if gt is not None:
        from product_fixtures.envi import _write_gt

        gtp = _write_gt(path, gt)
    return HytesL2Fixture(path=path, expected=expected, wavelengths=wl * 1e3, lst=lst, gt_path=gtp)


def make_hytes_l2(folder, cube, gt=None, **kw) -> Path:
    """Write a HyTES L2 HDF5 product (see :func:`build_hytes_l2`); returns its path."""
    return build_hytes_l2(folder, cube, gt, **kw).path
