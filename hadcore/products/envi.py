"""ENVI-format sensor products: AVIRIS-NG, AVIRIS-3 (and classic AVIRIS), HyTES L1, DESIS L1B/L1C/L2A, and
any other ENVI raster whose header carries band metadata (``wavelength`` or ``bbl``).

ENVI products are a raw image (BSQ, BIL or BIP) and a detached ASCII header, ``x.hdr`` or ``x.img.hdr``
beside image ``x.img`` (AVIRIS-NG's images have no extension: ``angYYYYMMDDtHHNNSS_rfl_VVV_img`` and
``..._img.hdr``). Either file may be given. The header is parsed here (band metadata, ``map info``) and the
image is read through GDAL's ENVI driver (:class:`hadcore.io.RasterSource`: windowed, one-line errors for
truncated files), with the header's scaling applied:

- ``data gain values`` / ``data offset values``: physical = raw * gain + offset (per band);
- ``reflectance scale factor``: "the value that, when divided into your data, would scale it from 0-1
  reflectance" (ENVI header documentation, https://www.nv5geospatialsoftware.com/docs/ENVIHeaderFiles.html):
  physical = value / factor;
- ``data ignore value``: raw samples equal to it are NaN;
- ``bbl``: bad band multipliers, 0 = bad (``Product.good`` False), 1 = good;
- ``wavelength`` / ``fwhm`` in ``wavelength units`` (FWHM in the same units as the wavelengths, ENVI header
  documentation), converted to nm; bands are put in ascending wavelength order when the header is not.

Georeference: ``map info = {proj, xref, yref, E, N, dx, dy, zone, North, datum, units=..., rotation=R}``.
The reference (tie point) pixel (xref, yref) is in 1-based file coordinates (ENVI header documentation,
"map info"), (1.0, 1.0) the upper-left corner of the upper-left pixel and (1.5, 1.5) its centre (ENVI's
Map Info dialog as explained on comp.lang.idl-pvwave, "Projection Parameters in ENVI", 2004; GDAL's
envidataset.cpp subtracts 1 from both). A rotated grid is kept as a rotated :class:`affine.Affine` (no
resampling). The sign convention is GDAL's (``ProcessMapinfo`` in
https://github.com/OSGeo/gdal/blob/master/frmts/raw/envidataset.cpp, which negates R and builds
``[cos R dx, sin R dx, E; sin R dy, -cos R dy, N]``): the pixel grid is rotated counter-clockwise by R
degrees, so the column axis points along (cos R, sin R) in map coordinates. The ORNL DAAC tutorial
"Understanding AVIRIS-NG data in ENVI format with rotated grid" (github.com/ornldaac/AVIRIS-NG_ENVI-rotatedgrid)
shows GDAL (>= 2.2) places rotated AVIRIS-NG lines correctly with it. We build the Affine from the header
ourselves: it equals GDAL's for the AVIRIS-NG case (reference pixel (1, 1), square pixels) and stays a
proper rotation when the tie point is not the corner pixel or dx != dy (GDAL then offsets the tie point
unrotated and puts dx in the row term).

Which files are claimed (``sniff``), by content: a header whose first line is ``ENVI`` (ENVI header
documentation: "The file must start with the text string ENVI") beside a raw image (not a TIFF or HDF5
file), and either the sensor's naming / header fields (AVIRIS-NG ``angYYYYMMDDtHHMMSS``, AVIRIS-3
``AV3YYYYMMDDtHHMMSS``, classic AVIRIS ``fYYMMDDtNNpNNrNN``, HyTES ``...-level_1a`` / ``..._L1_...`` or "HyTES"
in the description / sensor type) or, for any other ENVI raster, a ``wavelength`` or ``bbl`` field (the
generic "ENVI" product, so bbl, data ignore value, fwhm and scale factors are honoured for it too). Files of
an EnMAP product (a ``*METADATA.XML`` with EnMAP content beside them, or an ``ENMAP*`` name) are left to
the EnMAP reader. DESIS products (``DESIS-HSI-<level>-DT<take>_<tile>-<time>-V<ver>-{METADATA.xml,
SPECTRAL_IMAGE.tif, SPECTRAL_IMAGE.hdr}``) are claimed from any of their three files.

This module imports only numpy and the standard library at import time.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..engine import Source
from .base import Product, Reader, head, is_hdf5, require, to_nanometres

__all__ = ["READER", "EnviReader", "EnviBandSource", "parse_header", "find_header", "find_image",
           "map_info_transform"]

#: image-file extensions tried beside a header (ENVI writes none, .img, .dat; others are common)
IMAGE_EXTS = ("", ".img", ".dat", ".bsq", ".bil", ".bip", ".raw", ".bin", ".envi")

#: ENVI ``data type`` codes (ENVI header documentation, "data type") -> numpy dtypes
ENVI_DTYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}

_AVIRIS_NG = re.compile(r"^ang\d{8}t\d{6}", re.I)  # AVIRIS-NG Distribution Document: angYYYYMMDDtHHNNSS
_AVIRIS_3 = re.compile(r"^av3\d{8}t\d{6}", re.I)  # AVIRIS-3 flight lines: AV3YYYYMMDDtHHNNSS
_AVIRIS_C = re.compile(r"^f\d{6}t\d{2}p\d{2}r\d{2}", re.I)  # classic AVIRIS: fYYMMDDtNNpNNrNN
_HYTES = re.compile(r"(level_1a|^\d{8}t\d{6}_.+_l1(_b\d+_v\d+)?(\.|$)|hytes)", re.I)
_DESIS = re.compile(r"^(DESIS-HSI-(L1B|L1C|L2A)-DT\d+_\d+-\d{8}T\d{6}-V\d+)-"
                    r"(METADATA\.xml|SPECTRAL_IMAGE\.(tif|tiff|hdr))$", re.I)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


# ============================================================================================ header parsing
def parse_header(path) -> Dict[str, str]:
    """The fields of an ENVI header as ``{lower-case key: raw value}`` (braces kept for list values).

    Raises :class:`FileError` when the file is unreadable or does not start with ``ENVI``.
    """
    from ..errors import FileError

    p = Path(path)
    try:
        text = p.read_bytes().decode("latin-1")
    except OSError as exc:
        raise FileError(f"cannot read the ENVI header {p}: {exc.strerror or exc}") from None
    lines = text.splitlines()
    if not lines or lines[0].strip().upper() != "ENVI":
        raise FileError(f"{p} is not an ENVI header (its first line is not 'ENVI')")
    fields: Dict[str, str] = {}
    i = 1
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith(";") or "=" not in line:
            continue  # ENVI header documentation: ";" starts a comment line
        key, _, value = line.partition("=")
        value = value.strip()
        if value.startswith("{"):
            depth = value.count("{") - value.count("}")
            parts = [value]
            while depth > 0 and i < len(lines):
                parts.append(lines[i].strip())
                depth += lines[i].count("{") - lines[i].count("}")
                i += 1
            if depth > 0:
                raise FileError(f"{p}: the ENVI field '{key.strip()}' has no closing brace (truncated header?)")
            value = " ".join(parts)
        fields[" ".join(key.strip().lower().split())] = value
    return fields


def _list(value: Optional[str]) -> List[str]:
    if value is None:
        return []
    v = value.strip()
    if v.startswith("{"):
        v = v[1:]
    if v.endswith("}"):
        v = v[:-1]
    return [s.strip() for s in v.split(",") if s.strip()]


def _numbers(hdr_path, fields, key) -> Optional[np.ndarray]:
    if key not in fields:
        return None
    from ..errors import FileError

    items = _list(fields[key])
    try:
        return np.asarray([float(s) for s in items], dtype=np.float64)
    except ValueError:
        raise FileError(f"{hdr_path}: the ENVI field '{key}' holds a value that is not a number") from None


def _int_field(hdr_path, fields, key, default=None) -> int:
    from ..errors import FileError

    if key not in fields:
        if default is not None:
            return default
        raise FileError(f"{hdr_path}: the ENVI header has no '{key}' field")
    try:
        return int(float(fields[key]))
    except ValueError:
        raise FileError(f"{hdr_path}: the ENVI field '{key}' is not a number: {fields[key]!r}") from None


def _first_line(path) -> bytes:
    return head(path, 64).lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].strip()


def _is_header(path) -> bool:
    return _first_line(path).upper() == b"ENVI"


def find_header(path) -> Optional[Path]:
    """The ENVI header of ``path`` (the header itself, ``x.hdr`` or ``x.img.hdr``), or None."""
    p = Path(path)
    if p.is_file() and _is_header(p):
        return p
    for cand in (p.with_name(p.name + ".hdr"), p.with_suffix(".hdr"), p.with_name(p.name + ".HDR"),
                 p.with_suffix(".HDR")):
        if cand != p and cand.is_file() and _is_header(cand):
            return cand
    return None


def find_image(hdr) -> Optional[Path]:
    """The image file a header describes: ``x`` for ``x.hdr`` (``x.img.hdr`` -> ``x.img``), else ``x.<ext>``
    for the usual extensions, case-insensitively; None when there is none."""
    h = Path(hdr)
    base = h.with_suffix("")
    cands = [base] + [h.with_suffix(e) for e in IMAGE_EXTS if e]
    for c in cands:
        if c != h and c.is_file() and not _is_header(c):
            return c
    try:
        names = {n.lower(): n for n in os.listdir(h.parent or ".")}
    except OSError:
        return None
    for e in IMAGE_EXTS:
        n = names.get((base.name + e).lower())
        if n and (h.parent / n) != h and (h.parent / n).is_file() and not _is_header(h.parent / n):
            return h.parent / n
    return None


def _is_enmap(path: Path) -> bool:
    """True for a file of an EnMAP product: an ``ENMAP*`` name, or a sibling ``*METADATA*.XML`` with EnMAP
    content whose product prefix the file shares (EnMAP products may be ENVI-formatted; the EnMAP reader
    opens them)."""
    if path.name.lower().startswith("enmap"):
        return True
    try:
        names = os.listdir(path.parent or ".")
    except OSError:
        return False
    for n in names:
        low = n.lower()
        if "metadata" in low and low.endswith(".xml"):
            prefix = n[: low.index("metadata")].rstrip("-_")
            if prefix and not path.name.lower().startswith(prefix.lower()):
                continue
            if b"enmap" in head(path.parent / n, 8192).lower():
                return True
    return False


# =============================================================================================== geometry
def map_info_transform(map_info: str):
    """The :class:`affine.Affine` of an ENVI ``map info`` value (see the module docstring for the
    convention), or None when it has fewer than 7 fields or is not numeric."""
    from affine import Affine

    fields = _list(map_info)
    if len(fields) < 7:
        return None
    try:
        xref, yref, east, north, dx, dy = (float(v) for v in fields[1:7])
    except ValueError:
        return None
    rot = 0.0
    for f in fields[7:]:
        k, _, v = f.partition("=")
        if k.strip().lower() == "rotation":
            try:
                rot = float(v)
            except ValueError:
                return None
    t = math.radians(rot)
    c, s = math.cos(t), math.sin(t)
    if rot % 90 == 0:  # exact zeros for multiples of 90 degrees
        c, s = round(c), round(s)
    a, b, d, e = c * dx, s * dy, s * dx, -c * dy
    # the tie point (xref, yref), 1-based with (1, 1) the upper-left corner, maps to (east, north)
    x0, y0 = xref - 1.0, yref - 1.0
    return Affine(a, b, east - a * x0 - b * y0, d, e, north - d * x0 - e * y0)


def _map_rotation(map_info: Optional[str]) -> float:
    for f in _list(map_info)[7:]:
        k, _, v = f.partition("=")
        if k.strip().lower() == "rotation":
            try:
                return float(v)
            except ValueError:
                return 0.0
    return 0.0


# ================================================================================================ sources
class EnviBandSource(Source):
    """Windows of a GDAL raster's bands in physical units: ``read`` -> (h, w, B) float32 with
    ``raw == ignore`` -> NaN, then ``raw * gain + offset`` and ``/ divide``.

    ``bands`` are the 1-based file bands in the order wanted. Wraps :class:`hadcore.io.RasterSource` (which
    opens the dataset lazily in each process, drops it when pickled, and turns undecodable or truncated
    blocks into a one-line :class:`FileError`).
    """

    read_bytes = 4

    def __init__(self, path, bands: Sequence[int], hw: Tuple[int, int], *, gain=None, offset=None,
                 divide: Optional[float] = None, ignore: Optional[float] = None, block_shape=None,
                 name: Optional[str] = None):
        self.path = str(path)
        self.bands = [int(b) for b in bands]
        self.shape = (int(hw[0]), int(hw[1]), len(self.bands))
        self.nodata = None  # fill values are NaN in what ``read`` returns
        self.block_shape = tuple(block_shape) if block_shape else None
        self.name = name or Path(path).name
        g = None if gain is None else np.asarray(gain, dtype=np.float64).reshape(-1)
        o = None if offset is None else np.asarray(offset, dtype=np.float64).reshape(-1)
        if divide not in (None, 0, 1):
            g = (np.ones(len(self.bands)) if g is None else g) / float(divide)
            o = None if o is None else o / float(divide)
        if g is not None and np.all(g == 1.0):
            g = None
        if o is not None and np.all(o == 0.0):
            o = None
        self.gain = None if g is None else g.astype(np.float32)
        self.offset = None if o is None else o.astype(np.float32)
        self.ignore = None if ignore is None or not np.isfinite(ignore) else np.float32(ignore)
        self._raster = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_raster"] = None
        return d

    def _inner(self):
        if self._raster is None:
            from ..io import RasterSource

            self._raster = RasterSource(self.path, self.bands, None, self.shape[:2], self.block_shape)
        return self._raster

    def close(self):
        if self._raster is not None:
            self._raster.close()
            self._raster = None

    def read(self, r0, r1, c0, c1):
        from ..errors import InputError

        H, W, _ = self.shape
        if not (0 <= r0 <= r1 <= H and 0 <= c0 <= c1 <= W):
            raise InputError(f"{self.name}: window rows {r0}-{r1}, columns {c0}-{c1} is outside the {H} x {W} image")
        raw = self._inner().read(r0, r1, c0, c1, reuse=True)  # (h, w, B) float32 view, copied at once
        out = np.array(raw, dtype=np.float32, copy=True)
        if self.gain is not None:
            out *= self.gain
        if self.offset is not None:
            out += self.offset
        if self.ignore is not None:
            out[raw == self.ignore] = np.nan
        return out


# ================================================================================================= reader
class EnviReader(Reader):
    name = "envi"
    suffixes = (".hdr", ".img", ".dat", ".bsq", ".bil", ".bip", ".xml", ".tif", ".tiff")

    # ------------------------------------------------------------------------------------------- sniffing
    def sniff(self, path) -> bool:
        try:
            return self._sniff(Path(path))
        except Exception:  # sniffing never fails: an unreadable file is simply not claimed
            return False

    def _sniff(self, p: Path) -> bool:
        if not p.is_file() or _is_enmap(p):
            return False
        if _desis_files(p) is not None:
            return True
        if p.suffix.lower() in (".tif", ".tiff", ".xml") or head(p, 4) in _TIFF_MAGIC or is_hdf5(p):
            return False
        hdr = find_header(p)
        if hdr is None:
            return False
        image = p if hdr != p else find_image(hdr)
        if image is not None and (head(image, 4) in _TIFF_MAGIC or is_hdf5(image)):
            return False  # an ENVI header beside a GeoTIFF/HDF5 file: GDAL reads that file itself
        fields = parse_header(hdr)
        if fields.get("file type", "").strip().lower().startswith("tiff"):
            return False
        if _family(image or hdr, hdr, fields) != "ENVI":
            return True
        return "wavelength" in fields or "bbl" in fields

    # -------------------------------------------------------------------------------------------- opening
    def open(self, path) -> Product:
        from ..errors import FileError

        p = Path(path)
        if not p.exists():
            raise FileError(f"input not found: {p}")
        desis = _desis_files(p)
        if desis is not None:
            return _open_desis(p, *desis)
        hdr = find_header(p)
        if hdr is None:
            raise FileError(f"{p}: no ENVI header found beside it (looked for {p.name}.hdr and {p.stem}.hdr)")
        image = p if hdr != p else find_image(hdr)
        if image is None:
            raise FileError(f"{hdr}: the image file this ENVI header describes is missing "
                            f"(looked for {hdr.with_suffix('').name} with the usual extensions)")
        return _open_envi(image, hdr)


def _family(image: Path, hdr: Path, fields) -> str:
    text = " ".join([image.name, hdr.name])
    desc = (fields.get("description", "") + " " + fields.get("sensor type", "")).lower()
    if _AVIRIS_NG.match(image.name) or _AVIRIS_NG.match(hdr.name) or "aviris-ng" in desc or "aviris ng" in desc:
        return "AVIRIS-NG"
    if _AVIRIS_3.match(image.name) or _AVIRIS_3.match(hdr.name) or "aviris-3" in desc or "aviris 3" in desc:
        return "AVIRIS-3"
    if _AVIRIS_C.match(image.name) or _AVIRIS_C.match(hdr.name) or "aviris" in desc:
        return "AVIRIS"
    if _HYTES.search(text) or "hytes" in desc:
        return "HyTES L1"
    return "ENVI"


def _open_dataset(image: Path, what: str):
    rasterio = require("rasterio", what)
    from rasterio.errors import RasterioIOError

    from ..errors import FileError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(image)
    except RasterioIOError as exc:
        raise FileError(f"cannot read {image} as {what}: {str(exc).splitlines()[0]}") from None


def _band_metadata(hdr, fields, n: int, kind: str, need_wavelengths: bool):
    """(order, wavelengths nm, fwhm nm, good, units, notes) in ascending-wavelength order."""
    from ..errors import FileError

    wl_raw = _numbers(hdr, fields, "wavelength")
    fwhm_raw = _numbers(hdr, fields, "fwhm")
    bbl = _numbers(hdr, fields, "bbl")
    units = fields.get("wavelength units")
    notes = []
    for key, arr in (("wavelength", wl_raw), ("fwhm", fwhm_raw), ("bbl", bbl)):
        if arr is not None and arr.size != n:
            raise FileError(f"{hdr}: the ENVI field '{key}' has {arr.size} values for {n} bands")
    if wl_raw is None and need_wavelengths:
        raise FileError(f"{hdr}: the {kind} header has no 'wavelength' field (band centre wavelengths are "
                        f"needed to select bands)")
    wl = to_nanometres(wl_raw, units) if wl_raw is not None else None
    if wl_raw is not None and wl is None and need_wavelengths:
        raise FileError(f"{hdr}: the {kind} header gives wavelengths in '{units}', not a wavelength unit")
    fwhm = None
    if fwhm_raw is not None and wl is not None:
        ref = np.abs(wl_raw) > 0
        factor = float(np.median(wl[ref] / wl_raw[ref])) if ref.any() else 1.0  # FWHM in the wavelengths' units
        fwhm = fwhm_raw * factor
    good = np.ones(n, dtype=bool) if bbl is None else (bbl != 0)
    order = np.arange(n)
    if wl is not None and np.any(np.diff(wl) < 0):
        order = np.argsort(wl, kind="stable")
        notes.append("bands reordered to ascending wavelength (the header lists them otherwise)")
    if not good.any():
        raise FileError(f"{hdr}: every band is flagged bad (bbl is 0 for all {n} bands)")
    take = (lambda a: None if a is None else np.asarray(a)[order])
    return order, take(wl), take(fwhm), take(good), units, notes


def _file_size_check(image: Path, hdr: Path, fields, H, W, B, dtype):
    from ..errors import FileError

    if fields.get("file compression", "0").strip() not in ("", "0"):
        return
    offset = _int_field(hdr, fields, "header offset", 0)
    need = offset + H * W * B * np.dtype(dtype).itemsize
    try:
        size = os.path.getsize(image)
    except OSError as exc:
        raise FileError(f"cannot read {image}: {exc.strerror or exc}") from None
    if size < need:
        raise FileError(f"{image}: truncated image file: it has {size} bytes, its header {hdr.name} describes "
                        f"{need} ({H} lines x {W} samples x {B} bands of {np.dtype(dtype).name})")


def _open_envi(image: Path, hdr: Path) -> Product:
    from ..errors import FileError

    fields = parse_header(hdr)
    kind = _family(image, hdr, fields)
    H = _int_field(hdr, fields, "lines")
    W = _int_field(hdr, fields, "samples")
    B = _int_field(hdr, fields, "bands")
    code = _int_field(hdr, fields, "data type")
    if code not in ENVI_DTYPES:
        raise FileError(f"{hdr}: ENVI data type {code} is not supported (complex or unknown)")
    if fields.get("interleave", "bsq").strip().lower() not in ("bsq", "bil", "bip"):
        raise FileError(f"{hdr}: unknown ENVI interleave {fields.get('interleave')!r}")
    if H <= 0 or W <= 0 or B <= 0:
        raise FileError(f"{hdr}: the ENVI header describes an empty image ({H} x {W} x {B})")
    _file_size_check(image, hdr, fields, H, W, B, ENVI_DTYPES[code])
    order, wl, fwhm, good, units, notes = _band_metadata(hdr, fields, B, kind, kind != "ENVI")

    what = f"an ENVI raster ({kind})" if kind != "ENVI" else "an ENVI raster"
    ds = _open_dataset(image, what)
    with ds:
        if ds.driver != "ENVI":
            raise FileError(f"{image}: GDAL reads it as {ds.driver}, not as the ENVI raster {hdr.name} describes")
        if (ds.height, ds.width, ds.count) != (H, W, B):
            raise FileError(f"{image}: GDAL sees {ds.height} x {ds.width} x {ds.count}, the header {H} x {W} x {B}")
        crs = ds.crs
        block = ds.block_shapes[0] if ds.block_shapes else None
        gdal_transform = ds.transform

    transform = None
    if "map info" in fields:
        transform = map_info_transform(fields["map info"])
        rot = _map_rotation(fields["map info"])
        if transform is not None and rot:
            notes.append(f"map info rotation {rot:g} deg kept in the geotransform (no resampling)")
    elif crs is not None and not gdal_transform.is_identity:
        transform = gdal_transform
    if transform is None:
        crs = None

    gain = _numbers(hdr, fields, "data gain values")
    off = _numbers(hdr, fields, "data offset values")
    for key, arr in (("data gain values", gain), ("data offset values", off)):
        if arr is not None and arr.size != B:
            raise FileError(f"{hdr}: the ENVI field '{key}' has {arr.size} values for {B} bands")
    rsf = None
    if "reflectance scale factor" in fields:
        try:
            rsf = float(fields["reflectance scale factor"])
        except ValueError:
            raise FileError(f"{hdr}: 'reflectance scale factor' is not a number") from None
        if rsf == 0:
            raise FileError(f"{hdr}: 'reflectance scale factor' is 0")
    ignore = None
    if "data ignore value" in fields:
        try:
            ignore = float(fields["data ignore value"])
        except ValueError:
            raise FileError(f"{hdr}: 'data ignore value' is not a number") from None
    reflective = kind != "HyTES L1"
    if kind == "ENVI" and wl is not None and np.all(wl >= 3000):
        reflective = False  # thermal infrared only: no water-vapour windows
    names = _list(fields.get("band names"))
    band_names = [names[i] for i in order] if len(names) == B else []
    image_s, bshape = str(image), block
    src_name = image.name

    def source(indexes):
        idx = _check_indexes(indexes, B, kind)
        fb = [int(order[i]) + 1 for i in idx]
        g = None if gain is None else gain[[b - 1 for b in fb]]
        o = None if off is None else off[[b - 1 for b in fb]]
        return EnviBandSource(image_s, fb, (H, W), gain=g, offset=o, divide=rsf, ignore=ignore,
                              block_shape=bshape, name=src_name)

    return Product(kind=kind, path=str(image), shape=(H, W, B), source=source, wavelengths=wl, fwhm=fwhm,
                   good=good, reflective=reflective, crs=crs, transform=transform, nodata=None,
                   band_names=band_names, notes=notes, gt_path=_gt_path(image))


def _check_indexes(indexes, B, kind):
    from ..errors import InputError

    idx = [int(i) for i in np.asarray(indexes).reshape(-1)]
    if not idx:
        raise InputError(f"{kind}: no bands selected")
    bad = [i for i in idx if not 0 <= i < B]
    if bad:
        raise InputError(f"{kind}: band index {bad[0]} is outside 0-{B - 1}")
    return idx


def _gt_path(image: Path) -> Optional[str]:
    from ..io import ground_truth_path

    gp = ground_truth_path(image)
    return str(gp) if gp else None


# ================================================================================================== DESIS
# DESIS product files (EnMAP-Box's DESIS importers, enmapboxprocessing/algorithm/importdesisl1c/l2aalgorithm.py;
# RemoteSensingToolbox.jl's DESIS naming regex; krttdkit's DESIS granule listing):
#   DESIS-HSI-<L1B|L1C|L2A>-DT<10 digits>_<3 digits>-<YYYYMMDDTHHMMSS>-V<4 digits>-<suffix>
#   suffixes METADATA.xml, SPECTRAL_IMAGE.tif (GeoTIFF, band interleaved by pixel, compressed),
#   SPECTRAL_IMAGE.hdr (an ENVI header for the TIFF: wavelength, fwhm, data gain / offset values),
#   QL_IMAGE.tif, QL_QUALITY.tif, QL_QUALITY-2.tif, HISTORY.xml.
def _desis_files(p: Path):
    """(xml, tif, hdr, level) of the DESIS product ``p`` belongs to, or None (any may be None but the tif)."""
    m = _DESIS.match(p.name)
    renamed = False
    if m is not None:
        base, level = m.group(1), m.group(2).upper()
    elif p.suffix.lower() == ".xml" and b"<hsi_doc" in head(p, 4096):  # a renamed METADATA.xml
        renamed = True
        base = p.name[: -len(p.suffix)]
        base = base[: -len("-METADATA")] if base.upper().endswith("-METADATA") else base
        found = re.search(rb"<productType>\s*(L1B|L1C|L2A)", head(p, 1 << 20))
        level = found.group(1).decode() if found else None
    else:
        return None
    folder = p.parent
    try:
        listing = {n.lower(): n for n in os.listdir(folder or ".")}
    except OSError:
        return None

    def find(*suffixes):
        for s in suffixes:
            n = listing.get((base + "-" + s).lower())
            if n:
                return folder / n
        return None

    xml = p if renamed else find("METADATA.xml")
    tif = find("SPECTRAL_IMAGE.tif", "SPECTRAL_IMAGE.tiff")
    hdr = find("SPECTRAL_IMAGE.hdr")
    # content: the XML's root is <hsi_doc> (krttdkit/SISTER parse xml["hsi_doc"]); the TIFF is a TIFF
    if xml is not None and b"<hsi_doc" not in head(xml, 4096):
        xml = None
    if p == xml or p == hdr or (p == tif and head(tif, 4) in _TIFF_MAGIC):
        return xml, tif, hdr, level
    return None


def _desis_xml(xml: Path):
    """Band table of a DESIS METADATA.xml: {bandNumber: (centre nm, fwhm nm, gain, offset)}, plus the
    background value and product type (None where absent)."""
    import xml.etree.ElementTree as ET

    from ..errors import FileError
    from ._xml import parse_xml

    try:
        root = parse_xml(xml)
    except (ET.ParseError, OSError) as exc:
        raise FileError(f"{xml}: cannot parse the DESIS metadata XML: {str(exc).splitlines()[0]}") from None
    # <band> appears under specific/bandCharacterisation (spectral) and under interiorOrientation
    # (geometric): only the former is the band table (SISTER desis.py, fluomapper DESISReader:
    # 'specific/bandCharacterisation/band' with bandNumber, wavelengthCenterOfBand, wavelengthWidthOfBand,
    # gainOfBand, offsetOfBand; acolite desis/metadata_QV.py reads the same tags)
    table = {}
    for bc in root.iter("bandCharacterisation"):
        for b in bc.findall("band"):
            try:
                num = int(b.findtext("bandNumber"))
                wl = float(b.findtext("wavelengthCenterOfBand"))
                fw = b.findtext("wavelengthWidthOfBand")
                gain = b.findtext("gainOfBand")
                off = b.findtext("offsetOfBand")
                table[num] = (wl, float(fw) if fw else np.nan, float(gain) if gain else 1.0,
                              float(off) if off else 0.0)
            except (TypeError, ValueError):
                raise FileError(f"{xml}: a <band> of <bandCharacterisation> lacks a numeric bandNumber or "
                                f"wavelengthCenterOfBand") from None
        break
    bg = root.findtext(".//backgroundValue")
    ptype = root.findtext(".//productType")
    try:
        bg = float(bg) if bg is not None and bg.strip() else None
    except ValueError:
        bg = None
    return table, bg, (ptype or "").strip() or None


def _open_desis(p: Path, xml, tif, hdr, level) -> Product:
    from ..errors import FileError

    if tif is None:
        raise FileError(f"{p}: the DESIS product's SPECTRAL_IMAGE.tif is missing beside it")
    kind = f"DESIS {level}" if level else "DESIS"
    ds = _open_dataset(tif, f"a DESIS {level or ''} spectral image".replace("  ", " "))
    with ds:
        H, W, B = ds.height, ds.width, ds.count
        crs, transform = ds.crs, ds.transform
        block = ds.block_shapes[0] if ds.block_shapes else None
        gdal_nodata = ds.nodata
    if crs is None or transform.is_identity:
        crs, transform = None, None  # L1B: not orthorectified
    table, bg, ptype = _desis_xml(xml) if xml is not None else ({}, None, None)
    fields = parse_header(hdr) if hdr is not None else {}
    notes = []
    if table:
        nums = sorted(table)
        if len(nums) < B:
            raise FileError(f"{xml}: the DESIS metadata describes {len(nums)} bands, {tif.name} has {B}")
        rows = np.asarray([table[k] for k in nums[:B]], dtype=np.float64)
        wl, fwhm, gain, off = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        if np.isnan(fwhm).all():
            fwhm = None
    elif fields.get("wavelength"):
        # EnMAP-Box reads the ENVI header beside the TIFF, whose lists may be longer than the band count
        # (importdesisl1calgorithm.py keeps wavelength[:RasterCount])
        wl = _numbers(hdr, fields, "wavelength")
        if wl.size < B:
            raise FileError(f"{hdr}: 'wavelength' has {wl.size} values for {B} bands")
        wl = to_nanometres(wl[:B], fields.get("wavelength units", "nanometers"))
        f = _numbers(hdr, fields, "fwhm")
        fwhm = None if f is None or f.size < B else f[:B] * (wl[0] / _numbers(hdr, fields, "wavelength")[0])
        g = _numbers(hdr, fields, "data gain values")
        o = _numbers(hdr, fields, "data offset values")
        gain = g[:B] if g is not None and g.size >= B else np.ones(B)
        off = o[:B] if o is not None and o.size >= B else np.zeros(B)
    else:
        raise FileError(f"{tif}: no DESIS band metadata found (neither a METADATA.xml with "
                        f"<bandCharacterisation> nor a SPECTRAL_IMAGE.hdr with 'wavelength' beside it)")
    if level == "L2A" and np.all(gain == 1.0) and np.all(off == 0.0):
        # L2A reflectance is stored as int16 scaled by 10000 (EnMAP-Box's L2A importer applies 0.0001;
        # RemoteSensingToolbox.jl dn_scale(DESIS) = 0.0001) when the metadata gives no gain
        gain = np.full(B, 1e-4)
        notes.append("no L2A gain in the metadata: reflectance = DN * 0.0001")
    ignore = None
    if fields.get("data ignore value"):
        try:
            ignore = float(fields["data ignore value"])
        except ValueError:
            ignore = None
    if ignore is None:
        ignore = bg if bg is not None else gdal_nodata
    order = np.arange(B)
    if np.any(np.diff(wl) < 0):
        order = np.argsort(wl, kind="stable")
        notes.append("bands reordered to ascending wavelength")
    tif_s = str(tif)

    def source(indexes):
        idx = _check_indexes(indexes, B, kind)
        fb = [int(order[i]) for i in idx]
        return EnviBandSource(tif_s, [b + 1 for b in fb], (H, W), gain=gain[fb], offset=off[fb], ignore=ignore,
                              block_shape=block, name=tif.name)

    return Product(kind=kind, path=str(tif), shape=(H, W, B), source=source, wavelengths=wl[order],
                   fwhm=None if fwhm is None else fwhm[order], good=np.ones(B, dtype=bool), reflective=True,
                   crs=crs, transform=transform, nodata=None, notes=notes, gt_path=_gt_path(tif))


READER = EnviReader()
