"""ASI PRISMA hyperspectral products (HDF-EOS5 ``.he5``): L1 (TOA radiance), L2B/L2C (swath geometry) and
L2D (geocoded surface reflectance on a UTM grid).

Layout (each fact with its source; "PSD" is ASI's *PRISMA Products Specification Document*, issue 2.3):

- The hyperspectral cubes are ``HDFEOS/SWATHS/PRS_<level>_HCO/Data Fields/VNIR_Cube`` and ``.../SWIR_Cube``
  with ``<level>`` one of ``L1``, ``L2B``, ``L2C``, ``L2D`` (EnMAP-Box ``importprismal1algorithm.py`` /
  ``importprismal2dalgorithm.py``; prismaread ``R/pr_create_vnir.R`` builds ``PRS_L<proc_lev>_<source>``
  with ``source`` ``HCO`` by default or ``HRC``). This reader takes the ``HCO`` swath, else ``HRC``.
- Each cube is uint16 DN stored band-interleaved by line, ``(rows, bands, columns)``: EnMAP-Box transposes
  GDAL's array with ``[1, 0, 2]`` (GDAL calls the first axis bands), HyperCoast ``hypercoast/prisma.py``
  concatenates VNIR and SWIR on axis 1 and takes rows from axis 0 and columns from axis 2.
- Band metadata are root attributes ``List_Cw_Vnir``, ``List_Cw_Swir``, ``List_Fwhm_Vnir``,
  ``List_Fwhm_Swir`` in nm (prismaread ``R/pr_convert.R`` reads them with ``h5attr(f, ...)`` on the file
  and writes "wavelength units = Nanometers"), one value per band slot of the cube in DESCENDING wavelength
  order with 0 in unused slots (prismaread orders them with ``order()`` and skips ``wl == 0``; EnMAP-Box
  keeps ``v != 0`` and reverses). Optional ``List_Cw_Vnir_Flags`` / ``List_Cw_Swir_Flags`` mark valid
  bands with 1.
- Physical values. L2B/L2C/L2D: ``value = L2Scale<Cube>Min + DN * (L2Scale<Cube>Max - L2Scale<Cube>Min) /
  65535`` with root attributes ``L2ScaleVnirMin``/``L2ScaleVnirMax``/``L2ScaleSwirMin``/``L2ScaleSwirMax``
  (prismaread ``R/pr_rastwrite_lines.R``; HyperCoast ``read_prisma``). L1: radiance in W m-2 sr-1 um-1
  ``= DN / ScaleFactor_<Cube> + Offset_<Cube>`` (acolite ``acolite/prisma/l1_convert.py`` and ESA's
  ``senbox-org/sen2like`` ``prisma4sen2like`` both add the offset; prismaread subtracts it; every product
  seen by these readers has offset 0, where the rules agree).
- L2D georeference: root ``Epsg_Code`` and ``Product_{UL,UR,LL,LR}corner_{easting,northing}``, the corners
  being the CENTRES of the corner pixels of the 30 m grid (EnMAP-Box ``spatialInfo`` widens them by half a
  pixel; prismaread ``R/pr_setext_L2D.R`` subtracts 15 m), north up. L1/L2B/L2C are swath geometry.

Choices of this reader (also in :attr:`Product.notes`):

- Band axis: the real bands of VNIR in ascending wavelength, then those of SWIR in ascending wavelength.
  Zero placeholders are removed from the band axis (they have no wavelength and no data); a file whose
  every slot is a placeholder is refused.
- VNIR/SWIR overlap (about 920-1010 nm, both spectrometers): every band stays on the axis; by default the
  SWIR bands whose centre is not above the longest good VNIR centre get ``good = False`` (VNIR kept: the
  practice eo-atlas.org's "PRISMA L2D Surface Reflectance" page reports, after Vangi et al. 2021, and
  prismaread's ``join_priority = "VNIR"``; prismaread's default is "SWIR"), so the good bands are in strictly
  ascending order. ``PrismaReader(overlap="swir")`` flags the VNIR ones instead, ``overlap="both"`` none.
- Band flags: ``List_Cw_*_Flags`` = 0 sets ``good = False``; a product whose every band is flagged opens
  with ``good`` all False (the central band selection then reports that nothing is left).
- Fill: a pixel whose DN is 0 in every band read (outside the acquired swath on the L2D map grid; EnMAP-Box
  masks pixels that are 0 in every band) reads as NaN.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..engine import Source
from ..errors import FileError, InputError
from .base import Product, Reader, head, is_hdf5, require, to_nanometres

__all__ = ["PrismaReader", "PrismaSource", "READER"]

#: the hyperspectral swath: HCO (coregistered cube) preferred over HRC
_SWATH = re.compile(r"^PRS_(L1|L2[BCD])_H(CO|RC)$")
_SWATH_BYTES = re.compile(rb"PRS_(L1|L2[BCD])_H(CO|RC)")
#: nominal ground sampling of the hyperspectral cubes on the L2D grid (EnMAP-Box: spatialInfo(metadata, 30))
PIXEL_SIZE = 30.0
CUBES = ("VNIR", "SWIR")
_CAP = {"VNIR": "Vnir", "SWIR": "Swir"}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else type(exc).__name__


def _find_swath(f) -> Optional[str]:
    """``PRS_<level>_HCO`` (or ``_HRC``) under ``HDFEOS/SWATHS``, or None."""
    try:
        g = f.get("HDFEOS/SWATHS")
        names = list(g.keys()) if g is not None and hasattr(g, "keys") else []
    except Exception:
        return None
    found = sorted((n for n in names if _SWATH.match(n)), key=lambda n: (not n.endswith("HCO"), n))
    return found[0] if found else None


def _attr(f, name: str):
    return f.attrs[name] if name in f.attrs else None


def _numbers(f, name: str, path: str) -> Optional[np.ndarray]:
    """A numeric root attribute as a flat float64 array (strings of numbers are parsed), None if absent."""
    v = _attr(f, name)
    if v is None:
        return None
    try:
        if isinstance(v, (bytes, str)) or (isinstance(v, np.ndarray) and v.dtype.kind in "SUO"):
            text = v.decode() if isinstance(v, bytes) else " ".join(
                x.decode() if isinstance(x, bytes) else str(x) for x in np.ravel(v))
            return np.array([float(t) for t in text.replace(",", " ").split()], dtype=np.float64)
        return np.asarray(v, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise FileError(f"{path}: PRISMA attribute {name} is not a list of numbers") from None


def _scalar(f, name: str, path: str) -> Optional[float]:
    v = _numbers(f, name, path)
    if v is None:
        return None
    if v.size != 1 or not np.isfinite(v[0]):
        raise FileError(f"{path}: PRISMA attribute {name} should be one finite number, it holds {v.size} values")
    return float(v[0])


def _text(f, name: str) -> str:
    v = _attr(f, name)
    if v is None:
        return ""
    if isinstance(v, np.ndarray):
        v = v.ravel()[0] if v.size else ""
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


class _Part:
    """The bands one source reads from one cube: file slots, their places in the output, DN -> value."""

    __slots__ = ("dataset", "slots", "out", "gain", "offset")

    def __init__(self, dataset: str, slots, out, gain: float, offset: float):
        self.dataset = dataset
        self.slots = np.asarray(slots, dtype=np.intp)
        self.out = np.asarray(out, dtype=np.intp)
        self.gain = np.float32(gain)
        self.offset = np.float32(offset)


class PrismaSource(Source):
    """Windows of a PRISMA cube pair as float32 physical values, bands in the order asked for.

    The file is opened on the first read in each process and dropped when pickled. Each cube is read as one
    hyperslab (rows ``r0:r1``, the slot range of the bands asked for, columns ``c0:c1``), the bands are picked
    and the (h, bands, w) block is transposed to (h, w, bands).
    """

    #: bytes per band and pixel of a read as the engine counts them (the float32 result)
    read_bytes = 4

    def __init__(self, path, parts: Sequence[_Part], shape, block_shape=None):
        self.path = str(path)
        self.parts = list(parts)
        self.shape = (int(shape[0]), int(shape[1]), int(sum(p.out.size for p in self.parts)))
        self.nodata = None
        self.block_shape = block_shape
        self.name = Path(path).name
        self._f = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_f"] = None
        return d

    def _file(self):
        if self._f is None:
            h5py = require("h5py", "PRISMA products")
            try:
                self._f = h5py.File(self.path, "r")
            except Exception as exc:
                raise FileError(f"{self.path}: cannot open the PRISMA product (corrupt or truncated file: "
                                f"{_one_line(exc)})") from None
        return self._f

    def close(self):
        if self._f is not None:
            try:
                self._f.close()
            finally:
                self._f = None

    def read(self, r0, r1, c0, c1):
        H, W, B = self.shape
        if not (0 <= r0 < r1 <= H and 0 <= c0 < c1 <= W):
            raise InputError(f"{self.name}: window rows {r0}-{r1}, columns {c0}-{c1} is outside the "
                             f"{H} x {W} image")
        f = self._file()
        h, w = r1 - r0, c1 - c0
        out = np.empty((h, w, B), dtype=np.float32)
        empty = np.ones((h, w), dtype=bool)  # DN 0 in every band read so far
        for p in self.parts:
            lo, hi = int(p.slots.min()), int(p.slots.max()) + 1
            try:
                dn = f[p.dataset][r0:r1, lo:hi, c0:c1]
            except Exception as exc:  # h5py raises OSError / RuntimeError for undecodable or missing chunks
                raise FileError(f"{self.path}: cannot read {p.dataset.rsplit('/', 1)[-1]} at rows {r0}-{r1 - 1}, "
                                f"columns {c0}-{c1 - 1} (corrupt or truncated file: {_one_line(exc)})") from None
            if hi - lo != p.slots.size or np.any(np.diff(p.slots) != 1):
                dn = dn[:, p.slots - lo, :]
            empty &= ~dn.any(axis=1)
            # (h, k, w) DN -> (h, w, k) float32 values, straight into ``out`` when this part is every band
            whole = len(self.parts) == 1
            vals = out if whole else np.empty((h, w, p.out.size), dtype=np.float32)
            np.multiply(np.transpose(dn, (0, 2, 1)), p.gain, out=vals, casting="unsafe")
            vals += p.offset
            if not whole:
                out[:, :, p.out] = vals
        if empty.any():
            out[empty] = np.nan
        return out


class PrismaReader(Reader):
    """PRISMA L1 / L2B / L2C / L2D ``.he5`` products; ``overlap`` says which spectrometer's bands stay good
    where VNIR and SWIR overlap: ``"vnir"`` (default), ``"swir"`` or ``"both"``."""

    name = "PRISMA"
    suffixes = (".he5",)

    def __init__(self, overlap: str = "vnir"):
        if overlap not in ("vnir", "swir", "both"):
            raise ValueError(f"overlap must be 'vnir', 'swir' or 'both', not {overlap!r}")
        self.overlap = overlap

    # ------------------------------------------------------------------------------------------ sniffing
    def sniff(self, path: Path) -> bool:
        """An HDF5 file with a ``HDFEOS/SWATHS/PRS_<level>_HCO`` swath (by content, not by suffix). A file
        HDF5 cannot open (truncated) is claimed when its first MB names such a swath, so that opening it
        reports the damage."""
        path = Path(path)
        if not path.is_file() or not is_hdf5(path):
            return False
        try:
            import h5py
        except ImportError:  # open() then says what to install
            return bool(_SWATH_BYTES.search(head(path, 1 << 20)))
        try:
            with h5py.File(path, "r") as f:
                return _find_swath(f) is not None
        except Exception:
            return bool(_SWATH_BYTES.search(head(path, 1 << 20)))

    # ------------------------------------------------------------------------------------------ opening
    def open(self, path: Path) -> Product:
        path = Path(path)
        h5py = require("h5py", "PRISMA products")
        try:
            f = h5py.File(path, "r")
        except FileNotFoundError:
            raise FileError(f"{path}: no such file") from None
        except Exception as exc:
            raise FileError(f"{path}: cannot open the PRISMA product (corrupt or truncated HDF5 file: "
                            f"{_one_line(exc)})") from None
        try:
            with f:
                return self._open(f, path)
        except FileError:
            raise
        except Exception as exc:  # anything h5py raises on damaged metadata
            raise FileError(f"{path}: cannot read the PRISMA product (corrupt file: {_one_line(exc)})") from None

    def _open(self, f, path: Path) -> Product:
        swath = _find_swath(f)
        if swath is None:
            raise FileError(f"{path}: not a PRISMA product (no HDFEOS/SWATHS/PRS_<level>_HCO swath)")
        level = _SWATH.match(swath).group(1)
        base = f"HDFEOS/SWATHS/{swath}/Data Fields"
        notes: List[str] = []

        # ---- the two cubes
        dsets: Dict[str, object] = {}
        for cube in CUBES:
            key = f"{base}/{cube}_Cube"
            ds = f.get(key)
            if ds is None or not hasattr(ds, "shape"):
                raise FileError(f"{path}: PRISMA {level} product without {key}")
            if len(ds.shape) != 3 or ds.dtype.kind not in "ui":
                raise FileError(f"{path}: {key} is {ds.dtype} of shape {ds.shape}, expected integer DN "
                                f"(rows, bands, columns)")
            dsets[cube] = ds
        rows, _, cols = dsets["VNIR"].shape
        if (dsets["SWIR"].shape[0], dsets["SWIR"].shape[2]) != (rows, cols):
            raise FileError(f"{path}: VNIR_Cube is {rows} x {cols} pixels but SWIR_Cube is "
                            f"{dsets['SWIR'].shape[0]} x {dsets['SWIR'].shape[2]}")

        # ---- band metadata, scale rule
        per: Dict[str, dict] = {}
        for cube in CUBES:
            cap = _CAP[cube]
            nslots = dsets[cube].shape[1]
            cw = _numbers(f, f"List_Cw_{cap}", str(path))
            if cw is None:
                raise FileError(f"{path}: PRISMA product without the wavelength attribute List_Cw_{cap}")
            if cw.size != nslots:
                raise FileError(f"{path}: List_Cw_{cap} has {cw.size} values for the {nslots} bands of {cube}_Cube")
            fw = _numbers(f, f"List_Fwhm_{cap}", str(path))
            if fw is not None and fw.size != nslots:
                raise FileError(f"{path}: List_Fwhm_{cap} has {fw.size} values for the {nslots} bands of {cube}_Cube")
            flags = _numbers(f, f"List_Cw_{cap}_Flags", str(path))
            if flags is not None and flags.size != nslots:
                notes.append(f"List_Cw_{cap}_Flags ignored: {flags.size} values for {nslots} bands")
                flags = None
            if level == "L1":
                sf = _scalar(f, f"ScaleFactor_{cap}", str(path))
                if sf is None:
                    raise FileError(f"{path}: PRISMA L1 product without the attribute ScaleFactor_{cap}")
                if sf <= 0:
                    raise FileError(f"{path}: ScaleFactor_{cap} is {sf:g}, not a positive scale factor")
                off = _scalar(f, f"Offset_{cap}", str(path))
                gain, offset = 1.0 / sf, (0.0 if off is None else off)
            else:
                lo = _scalar(f, f"L2Scale{cap}Min", str(path))
                hi = _scalar(f, f"L2Scale{cap}Max", str(path))
                if lo is None or hi is None:
                    missing = f"L2Scale{cap}Min" if lo is None else f"L2Scale{cap}Max"
                    raise FileError(f"{path}: PRISMA {level} product without the scale attribute {missing}")
                gain, offset = (hi - lo) / 65535.0, lo
            real = np.isfinite(cw) & (cw > 0)
            slots = np.flatnonzero(real)
            slots = slots[np.argsort(cw[slots], kind="stable")]  # ascending wavelength
            good = np.ones(slots.size, dtype=bool)
            if flags is not None:
                good &= flags[slots] != 0
            if fw is not None:
                fw_sel = fw[slots]
            else:
                fw_sel = None
            per[cube] = dict(slots=slots, cw=cw[slots], fwhm=fw_sel, good=good, gain=gain, offset=offset,
                             placeholders=int(nslots - slots.size), nslots=nslots)

        nv, ns = per["VNIR"]["slots"].size, per["SWIR"]["slots"].size
        if nv + ns == 0:
            raise FileError(f"{path}: every band slot of VNIR_Cube and SWIR_Cube is a placeholder "
                            f"(List_Cw_Vnir / List_Cw_Swir are all 0)")

        # ---- VNIR/SWIR overlap
        gv, gs = per["VNIR"]["good"], per["SWIR"]["good"]
        n_overlap = 0
        if self.overlap == "vnir" and gv.any() and gs.any():
            top = per["VNIR"]["cw"][gv].max()
            drop = gs & (per["SWIR"]["cw"] <= top)
            n_overlap = int(drop.sum())
            gs &= ~drop
            if n_overlap:
                notes.append(f"{n_overlap} SWIR bands at or below the longest VNIR band ({top:.1f} nm) flagged "
                             f"bad (VNIR/SWIR overlap, VNIR kept)")
        elif self.overlap == "swir" and gv.any() and gs.any():
            bottom = per["SWIR"]["cw"][gs].min()
            drop = gv & (per["VNIR"]["cw"] >= bottom)
            n_overlap = int(drop.sum())
            gv &= ~drop
            if n_overlap:
                notes.append(f"{n_overlap} VNIR bands at or above the shortest SWIR band ({bottom:.1f} nm) "
                             f"flagged bad (VNIR/SWIR overlap, SWIR kept)")

        wavelengths = to_nanometres(np.concatenate([per["VNIR"]["cw"], per["SWIR"]["cw"]]), "nm")
        if per["VNIR"]["fwhm"] is not None and per["SWIR"]["fwhm"] is not None:
            fwhm = to_nanometres(np.concatenate([per["VNIR"]["fwhm"], per["SWIR"]["fwhm"]]), "nm")
        else:
            fwhm = None
            notes.append("no List_Fwhm_Vnir / List_Fwhm_Swir: FWHM unknown")
        good = np.concatenate([gv, gs])
        band_names = [f"{cube} slot {int(s) + 1} ({w:.2f} nm)"
                      for cube in CUBES for s, w in zip(per[cube]["slots"], per[cube]["cw"])]
        placeholders = per["VNIR"]["placeholders"] + per["SWIR"]["placeholders"]
        notes.insert(0, f"PRISMA {level} ({swath}): {nv} VNIR then {ns} SWIR bands, each in ascending "
                        f"wavelength (the file stores them descending); {placeholders} zero placeholder slots "
                        f"left out")
        if level == "L1":
            notes.append("values: TOA radiance (W m-2 sr-1 um-1) = DN / ScaleFactor + Offset")
        else:
            notes.append(f"values: {'radiance' if level == 'L2B' else 'reflectance'} = L2ScaleMin + "
                         f"DN * (L2ScaleMax - L2ScaleMin) / 65535")
        notes.append("pixels with DN 0 in every band read are NaN (outside the swath)")

        # ---- storage blocks: the chunk of the cubes when both agree
        chunks = [dsets[c].chunks for c in CUBES]
        block_shape = None
        if all(ch is not None for ch in chunks) and chunks[0][0::2] == chunks[1][0::2]:
            block_shape = (int(chunks[0][0]), int(chunks[0][2]))

        # ---- georeference
        crs = transform = None
        if level == "L2D":
            crs, transform = self._georef(f, path, rows, cols, notes)
        else:
            notes.append(f"{level} is in swath (sensor) geometry: no map grid")

        gt = path.with_name(path.stem + "_gt.tif")  # hadcore's sibling ground-truth convention
        parts_spec = {c: (f"{base}/{c}_Cube", per[c]["slots"], per[c]["gain"], per[c]["offset"]) for c in CUBES}
        return Product(
            kind=f"PRISMA {level}",
            path=str(path),
            shape=(int(rows), int(cols), int(nv + ns)),
            source=_SourceFactory(str(path), parts_spec, nv, (int(rows), int(cols)), block_shape),
            wavelengths=wavelengths,
            fwhm=fwhm,
            good=good,
            reflective=True,
            crs=crs,
            transform=transform,
            nodata=None,
            band_names=band_names,
            notes=notes,
            gt_path=str(gt) if gt.is_file() else None,
        )

    @staticmethod
    def _georef(f, path: Path, rows: int, cols: int, notes: List[str]):
        epsg = _scalar(f, "Epsg_Code", str(path))
        ul_e = _scalar(f, "Product_ULcorner_easting", str(path))
        ul_n = _scalar(f, "Product_ULcorner_northing", str(path))
        if epsg is None or ul_e is None or ul_n is None:
            notes.append("L2D without Epsg_Code / Product_ULcorner_easting / _northing: no georeference")
            return None, None
        # the west and north edges from the corner pixel centres (prismaread pr_get_geoloc.R takes the min /
        # max over the corners; on the north-up grid they are the UL ones)
        ll_e = _scalar(f, "Product_LLcorner_easting", str(path))
        ur_n = _scalar(f, "Product_URcorner_northing", str(path))
        x_west = min(ul_e, ll_e) if ll_e is not None else ul_e
        y_north = max(ul_n, ur_n) if ur_n is not None else ul_n
        lr_e = _scalar(f, "Product_LRcorner_easting", str(path))
        lr_n = _scalar(f, "Product_LRcorner_northing", str(path))
        if lr_e is not None and lr_n is not None and cols > 1 and rows > 1:
            dx, dy = (lr_e - ul_e) / (cols - 1), (ul_n - lr_n) / (rows - 1)
            if abs(dx - PIXEL_SIZE) > 0.01 * PIXEL_SIZE or abs(dy - PIXEL_SIZE) > 0.01 * PIXEL_SIZE:
                notes.append(f"corner attributes imply {dx:.2f} x {dy:.2f} m pixels; the 30 m grid is used")
        try:
            from affine import Affine
            from rasterio.crs import CRS
        except ImportError:
            notes.append("rasterio not installed: the L2D georeference is not set")
            return None, None
        try:
            crs = CRS.from_epsg(int(epsg))
        except Exception:
            notes.append(f"Epsg_Code {epsg:g} is not a known EPSG code: no CRS")
            return None, None
        half = PIXEL_SIZE / 2.0
        transform = Affine(PIXEL_SIZE, 0.0, x_west - half, 0.0, -PIXEL_SIZE, y_north + half)
        notes.append(f"grid: EPSG:{int(epsg)}, 30 m pixels, corner attributes taken as pixel centres")
        return crs, transform


class _SourceFactory:
    """``Product.source``: a picklable callable turning 0-based band indexes into a :class:`PrismaSource`."""

    def __init__(self, path: str, parts_spec: dict, nv: int, hw: Tuple[int, int], block_shape):
        self.path = path
        self.parts_spec = parts_spec
        self.nv = int(nv)
        self.hw = hw
        self.block_shape = block_shape
        self.nb = int(nv + parts_spec["SWIR"][1].size)

    def __call__(self, indexes: Sequence[int]) -> PrismaSource:
        idx = np.asarray(list(indexes), dtype=np.int64).ravel()
        if idx.size == 0:
            raise InputError(f"{Path(self.path).name}: no bands selected")
        bad = idx[(idx < 0) | (idx >= self.nb)]
        if bad.size:
            raise InputError(f"{Path(self.path).name}: band index {int(bad[0])} is outside 0-{self.nb - 1}")
        parts = []
        for cube, sel in (("VNIR", idx < self.nv), ("SWIR", idx >= self.nv)):
            if not sel.any():
                continue
            dataset, slots, gain, offset = self.parts_spec[cube]
            local = idx[sel] - (0 if cube == "VNIR" else self.nv)
            parts.append(_Part(dataset, slots[local], np.flatnonzero(sel), gain, offset))
        return PrismaSource(self.path, parts, self.hw, self.block_shape)


READER = PrismaReader()
