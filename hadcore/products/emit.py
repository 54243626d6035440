"""NASA EMIT L1B radiance (EMIT_L1B_RAD) and L2A reflectance (EMIT_L2A_RFL) granules, netCDF-4.

Layout (as written by NASA's EMIT Science Data System, ``emit-sds/emit-sds-l1b`` and ``emit-sds/emit-sds-l2a``
``output_conversion.py`` with ``emit-sds/emit-utils`` ``emit_utils/daac_converter.py``; read the same way by
``nasa/EMIT-Data-Resources`` ``python/modules/emit_tools.py``):

- root variable ``radiance`` (L1B, uW/cm^2/SR/nm) or ``reflectance`` (L2A, unitless), float32, dimensions
  (downtrack, crosstrack, bands), ``_FillValue`` -9999, uncompressed;
- group ``sensor_band_parameters``: ``wavelengths`` and ``fwhm`` (float32, nm, one per band; early L1B
  files named them ``radiance_wl`` / ``radiance_fwhm``: emit-sds-l1b at 11dff3b), and in L2A files
  ``good_wavelengths`` (uint8, 1 = usable, 0 = not, fill 241);
- group ``location``: ``lon`` / ``lat`` / ``elev`` (float64, downtrack x crosstrack) and the geometry lookup table
  ``glt_x`` / ``glt_y`` (int32, dimensions ortho_y x ortho_x): for each pixel of a north-up map grid, the
  1-based crosstrack sample / downtrack line of the swath pixel to show there, 0 where none;
- root attributes ``geotransform`` (the map grid's 6 GDAL coefficients) and ``spatial_ref`` (its WKT, WGS 84).

The cube is in swath (sensor) geometry: the Product has no crs / transform; its ``output_factory`` builds the
:class:`~hadcore.products.base.OutputGrid` from the GLT, so scores are written on the map grid (nearest
neighbour, as NASA's own ``apply_glt``). Files are recognised by content (HDF5 signature + EMIT's groups and
variables), not by their ``.nc`` suffix.

Windows are read with h5py (netCDF-4 files are HDF5 files): a hyperslab ``var[r0:r1, c0:c1, b0:b1]`` reads only
the window (``read_direct`` into reused buffers on the engine's path), a source is pickled as its path (the handle
is reopened in each process), and h5py serves every HDF5 product alike; netCDF4-python would bring a second HDF5
library for nothing the reader needs (EMIT stores plain float32 with a ``_FillValue``: no packing to decode).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from ..base import valid_mask
from ..engine import Source, scratch_buffer
from ..errors import FileError, InputError
from .base import OutputGrid, Product, Reader, head, is_hdf5, require, to_nanometres

__all__ = ["READER", "EmitReader", "EmitSource"]

#: the data variable of each product level, and the Product.kind it gives
VARIABLES = {"reflectance": "EMIT L2A reflectance", "radiance": "EMIT L1B radiance"}
#: band-parameter variable names (current files; first-release L1B files)
WAVELENGTH_NAMES = ("wavelengths", "radiance_wl")
FWHM_NAMES = ("fwhm", "radiance_fwhm")
#: names of the band dimension (current files; first-release L1B files)
BAND_DIMS = ("bands", "number_of_bands")
#: EMIT-specific strings looked for in the first bytes of a file h5py cannot open (truncated / corrupt)
_MARKERS = (b"sensor_band_parameters", b"glt_x")
#: HDF5 raw-data chunk cache per open file: whole compressed chunks stay decoded across adjacent windows
_CHUNK_CACHE = 32 * 2 ** 20


def _text(value) -> str:
    """An HDF5 attribute as str (netCDF-4 writes text attributes as fixed-length byte strings)."""
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return ""
        value = value.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", "replace")
    return str(value)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def _h5open(h5py, path):
    """h5py.File read-only, without HDF5 file locking (read-only access needs none, and locking fails on
    some network file systems Dask workers read from)."""
    try:
        return h5py.File(path, "r", locking=False, rdcc_nbytes=_CHUNK_CACHE)
    except TypeError:  # pragma: no cover - h5py < 3.5
        return h5py.File(path, "r", rdcc_nbytes=_CHUNK_CACHE)


def _open_file(path):
    h5py = require("h5py", "EMIT products")
    try:
        return _h5open(h5py, path)
    except Exception as exc:
        raise FileError(f"cannot read {path} as an EMIT netCDF-4 file (corrupt or truncated file: "
                        f"{_one_line(exc)})") from None


def _dataset(group, name):
    """``group[name]`` when it is an HDF5 dataset, else None (a missing name, a group, a broken link)."""
    import h5py

    try:
        obj = group.get(name)
    except Exception:
        return None
    return obj if isinstance(obj, h5py.Dataset) else None


def _group(group, name):
    import h5py

    try:
        obj = group.get(name)
    except Exception:
        return None
    return obj if isinstance(obj, h5py.Group) else None


def _dim_names(ds) -> list:
    """The netCDF dimension names of a dataset's axes (from its HDF5 dimension scales), None where unknown."""
    names = []
    for k in range(ds.ndim):
        try:
            scales = ds.dims[k]
            names.append(scales[0].name.rsplit("/", 1)[-1] if len(scales) else None)
        except Exception:
            names.append(None)
    return names


def _is_emit(f) -> bool:
    """True for the HDF5 file ``f`` when it is an EMIT granule: an EMIT data variable with EMIT's band-parameter
    group, or the EMIT instrument / title attributes with EMIT's groups (other EMIT products too: ``open``
    then says which products it reads)."""
    sbp = _group(f, "sensor_band_parameters") is not None
    loc = _group(f, "location") is not None
    data = any(ds is not None and ds.ndim == 3 for ds in (_dataset(f, v) for v in VARIABLES))
    if sbp and data:
        return True
    instrument = _text(f.attrs.get("instrument")).strip().upper() == "EMIT"
    title = _text(f.attrs.get("title")).strip().upper().startswith("EMIT ")
    return (instrument or title) and (sbp or loc)


def _band_values(sbp, names, B, what, path, dtype=np.float64):
    """(values, attrs) of the first of ``names`` in sensor_band_parameters, or (None, None)."""
    for n in names:
        ds = _dataset(sbp, n) if sbp is not None else None
        if ds is None:
            continue
        try:
            v = np.asarray(ds[()], dtype=dtype).reshape(-1)
        except Exception as exc:
            raise FileError(f"{path}: cannot read sensor_band_parameters/{n} ({_one_line(exc)})") from None
        if v.size != B:
            raise FileError(f"{path}: sensor_band_parameters/{n} has {v.size} values for {B} bands ({what})")
        return v, ds.attrs
    return None, None


def _fill_of(attrs):
    fv = attrs.get("_FillValue")
    if fv is None:
        return None
    fv = np.asarray(fv).reshape(-1)
    return fv[0] if fv.size else None


class EmitSource(Source):
    """Windows of an EMIT granule's radiance / reflectance (:class:`hadcore.engine.Source`).

    ``bands``: 0-based indexes into the file's band axis, in the order the source returns them. ``read`` returns
    (h, w, B) float32 with fill values as NaN. The file is opened on first read in each process; pickling drops
    the handle. A window reads the band range ``min(bands)..max(bands)`` in one hyperslab (EMIT stores pixels
    band-interleaved: a pixel's bands are adjacent, so a narrower range would not read less) and picks the
    bands in memory.
    """

    read_bytes = 4

    def __init__(self, path, variable: str, bands: Sequence[int], shape, fill=None, scale=None, offset=None,
                 block_shape=None):
        self.path = str(path)
        self.variable = variable
        self.bands = np.asarray(bands, dtype=np.int64).reshape(-1)
        self.shape = (int(shape[0]), int(shape[1]), int(self.bands.size))
        self.nodata = None  # fill values are returned as NaN
        self.block_shape = block_shape
        self.name = Path(path).name
        self.fill = fill
        self.scale = scale
        self.offset = offset
        self._lo = int(self.bands.min())
        self._hi = int(self.bands.max()) + 1
        rel = self.bands - self._lo
        self._sel = None if np.array_equal(rel, np.arange(self._hi - self._lo)) else rel
        self._file = None
        self._ds = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_file"] = None
        d["_ds"] = None
        return d

    def _data(self):
        if self._ds is None:
            f = _open_file(self.path)
            ds = _dataset(f, self.variable)
            if ds is None:
                f.close()
                raise FileError(f"{self.path}: no '{self.variable}' variable")
            self._file, self._ds = f, ds
        return self._ds

    def close(self):
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = self._ds = None

    def read(self, r0, r1, c0, c1, reuse=False):
        """(h, w, B) float32 window, fill values as NaN. ``reuse=True`` reads into this thread's read buffers
        (:func:`hadcore.engine.scratch_buffer`), valid until the thread's next reused read (as
        :class:`hadcore.io.RasterSource`: fresh memory for every block costs page faults)."""
        ds = self._data()
        h, w, n = r1 - r0, c1 - c0, self._hi - self._lo
        try:
            if reuse and h > 0 and w > 0 and ds.dtype.kind == "f":
                raw = scratch_buffer((h, w, n), np.float32, slot="read")  # HDF5 converts to float32 as it reads
                ds.read_direct(raw, np.s_[r0:r1, c0:c1, self._lo:self._hi])
            else:
                raw = ds[r0:r1, c0:c1, self._lo:self._hi]
        except Exception as exc:
            raise FileError(f"{self.path}: cannot read {self.variable} at rows {r0}-{r1 - 1}, columns {c0}-{c1 - 1} "
                            f"(corrupt or truncated file: {_one_line(exc)})") from None
        if self._sel is not None:
            if reuse and raw.size:
                picked = scratch_buffer((h, w, self._sel.size), raw.dtype, slot="emit_bands")
                raw = np.take(raw, self._sel, axis=2, out=picked, mode="clip")
            else:
                raw = raw[..., self._sel]
        bad = None
        if self.fill is not None and not (isinstance(self.fill, float) and np.isnan(self.fill)):
            bad = raw == self.fill
        out = raw.astype(np.float32, copy=False)
        if self.scale is not None or self.offset is not None:
            out = out * np.float32(1.0 if self.scale is None else self.scale) + np.float32(self.offset or 0.0)
        if bad is not None and bad.any():
            out[bad] = np.nan
        return out

    def raw_block(self, r0, r1, c0, c1):
        raw = self.read(r0, r1, c0, c1, reuse=True)  # consumed before the next block (statistics, float64 copy)
        return raw, valid_mask(raw, self.nodata, self.user_mask(r0, r1, c0, c1))


def _make_source(path, variable, order, shape, fill, scale, offset, block_shape, indexes):
    """``Product.source``: a :class:`EmitSource` over the Product's 0-based band ``indexes``."""
    B = len(order)
    try:
        idx = np.asarray(list(indexes), dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{Path(path).name}: band indexes must be integers, got {indexes!r}") from None
    if idx.size == 0:
        raise InputError(f"{Path(path).name}: no bands selected")
    if idx.min() < 0 or idx.max() >= B:
        raise InputError(f"{Path(path).name}: band indexes must lie in 0..{B - 1}, "
                         f"got {int(idx.min())}..{int(idx.max())}")
    return EmitSource(path, variable, np.asarray(order)[idx], shape, fill, scale, offset, block_shape)


def _glt_grid(path, swath_shape, crs, transform) -> OutputGrid:
    """The OutputGrid of ``location/glt_x`` / ``glt_y``: 0-based swath row / column per map pixel, -1 for none."""
    H, W = swath_shape
    f = _open_file(path)
    with f:
        loc = _group(f, "location")
        gx = _dataset(loc, "glt_x") if loc is not None else None
        gy = _dataset(loc, "glt_y") if loc is not None else None
        if gx is None or gy is None:
            raise FileError(f"{path}: no location/glt_x and glt_y")
        try:
            glt_x = np.asarray(gx[()], dtype=np.int64)
            glt_y = np.asarray(gy[()], dtype=np.int64)
        except Exception as exc:
            raise FileError(f"{path}: cannot read the GLT (location/glt_x, glt_y): {_one_line(exc)}") from None
    # 1-based indexes, 0 = no swath pixel (emit_tools.apply_glt: GLT_NODATA_VALUE=0); negative values mark none too
    ok = (glt_x > 0) & (glt_y > 0)
    if ok.any():
        if glt_x[ok].max() > W or glt_y[ok].max() > H:
            raise FileError(f"{path}: the GLT points outside the {H} x {W} swath (glt_x up to {int(glt_x[ok].max())}, "
                            f"glt_y up to {int(glt_y[ok].max())}): corrupt location group")
    rows = np.where(ok, glt_y - 1, -1).astype(np.int32)
    cols = np.where(ok, glt_x - 1, -1).astype(np.int32)
    return OutputGrid(height=int(rows.shape[0]), width=int(rows.shape[1]), crs=crs, transform=transform, rows=rows,
                      cols=cols, description="EMIT geometry lookup table (location/glt_x, glt_y)")


class EmitReader(Reader):
    """EMIT L1B RAD / L2A RFL netCDF-4 granules."""

    name = "emit"
    suffixes = (".nc",)

    def sniff(self, path) -> bool:
        p = Path(path)
        try:
            if not p.is_file() or not is_hdf5(p):
                return False
        except OSError:
            return False
        try:
            import h5py
        except ImportError:
            # cannot look inside: claim files whose header names EMIT's groups, so open() asks for h5py
            return self._markers(p)
        try:
            f = _h5open(h5py, p)
        except Exception:
            # HDF5 signature but unreadable (truncated, corrupt): claim it when EMIT's names are in its header,
            # so that open() reports the damage instead of another reader or GDAL failing obscurely
            return self._markers(p)
        try:
            with f:
                return _is_emit(f)
        except Exception:
            return False

    @staticmethod
    def _markers(p) -> bool:
        data = head(p, 1 << 20)
        return all(m in data for m in _MARKERS) or b"sensor_band_parameters" in data and any(
            v.encode() in data for v in VARIABLES)

    def open(self, path) -> Product:
        p = Path(path)
        if not p.exists():
            raise FileError(f"input not found: {path}")
        f = _open_file(p)
        with f:
            return self._product(f, p)

    def _product(self, f, p: Path) -> Product:
        var = next((v for v in VARIABLES if _dataset(f, v) is not None), None)
        if var is None:
            held = sorted(k for k in f.keys() if _dataset(f, k) is not None and f[k].ndim >= 2)
            what = f" (its data variables: {', '.join(held)})" if held else ""
            raise FileError(f"{p}: no 'reflectance' (EMIT L2A RFL) or 'radiance' (EMIT L1B RAD) variable{what}; "
                            f"hadcore reads EMIT L1B radiance and L2A reflectance granules")
        ds = f[var]
        if ds.ndim != 3:
            raise FileError(f"{p}: '{var}' has {ds.ndim} dimensions, EMIT's has 3 (downtrack, crosstrack, bands)")
        H, W, B = (int(s) for s in ds.shape)
        dims = _dim_names(ds)
        if dims[2] is not None and dims[2] not in BAND_DIMS and any(d in BAND_DIMS for d in dims[:2]):
            raise FileError(f"{p}: unexpected layout of '{var}': dimensions {tuple(dims)}, EMIT stores "
                            f"(downtrack, crosstrack, bands)")

        sbp = _group(f, "sensor_band_parameters")
        wl, wl_attrs = _band_values(sbp, WAVELENGTH_NAMES, B, "band centres", p)
        if wl is None:
            raise FileError(f"{p}: no sensor_band_parameters/wavelengths (the band centres of its {B} bands)")
        wl_fill = _fill_of(wl_attrs)
        wl_bad = ~np.isfinite(wl) | (wl <= 0) | ((wl == wl_fill) if wl_fill is not None else False)
        wl = np.where(wl_bad, np.nan, wl)
        wl_nm = to_nanometres(wl, _text(wl_attrs.get("units")) or None)
        if wl_nm is None:
            raise FileError(f"{p}: sensor_band_parameters/wavelengths are not wavelengths "
                            f"(units {_text(wl_attrs.get('units'))!r})")
        fw, fw_attrs = _band_values(sbp, FWHM_NAMES, B, "band widths", p)
        fw_nm = None
        if fw is not None:
            fw_fill = _fill_of(fw_attrs)
            fw = np.where(~np.isfinite(fw) | (fw <= 0) | ((fw == fw_fill) if fw_fill is not None else False),
                          np.nan, fw)
            fw_nm = to_nanometres(fw, _text(fw_attrs.get("units")) or "nm")
        gv, gv_attrs = _band_values(sbp, ("good_wavelengths",), B, "good-band flags", p)
        good = np.ones(B, dtype=bool)
        notes = []
        if gv is not None:
            g_fill = _fill_of(gv_attrs)
            good = (gv != 0) & np.isfinite(gv)
            if g_fill is not None:
                good &= gv != float(g_fill)
        good &= ~wl_bad

        # bands in ascending wavelength (EMIT's are: nothing moves; a file stored otherwise is reordered)
        order = np.arange(B)
        fin = np.isfinite(wl_nm)
        if fin.sum() > 1 and not np.all(np.diff(wl_nm[fin]) > 0):
            order = np.argsort(np.where(fin, wl_nm, np.inf), kind="stable")
            notes.append("bands reordered by ascending wavelength (the file stores them otherwise)")
        wl_nm, good = wl_nm[order], good[order]
        fw_nm = None if fw_nm is None else fw_nm[order]

        attrs = ds.attrs
        fill = _fill_of(attrs)
        if fill is not None:
            fill = fill.item() if hasattr(fill, "item") else fill
        scale = attrs.get("scale_factor")
        offset = attrs.get("add_offset")
        scale = None if scale is None else float(np.asarray(scale).reshape(-1)[0])
        offset = None if offset is None else float(np.asarray(offset).reshape(-1)[0])
        block_shape = tuple(int(c) for c in ds.chunks[:2]) if ds.chunks else None

        factory = self._grid_factory(f, p, (H, W), notes)
        source = functools.partial(_make_source, str(p), var, order, (H, W), fill, scale, offset, block_shape)
        gt = p.with_name(p.stem + "_gt.tif")
        units = _text(attrs.get("units"))
        notes.insert(0, f"'{var}' ({units or 'no units'}), {H} downtrack x {W} crosstrack x {B} bands, "
                        f"swath (sensor) geometry")
        return Product(kind=VARIABLES[var], path=str(p), shape=(H, W, B), source=source, wavelengths=wl_nm,
                       fwhm=fw_nm, good=good, reflective=True, crs=None, transform=None, nodata=None,
                       output_factory=factory,
                       band_names=[f"{w:.2f} nm" if np.isfinite(w) else f"band {i + 1}"
                                   for i, w in zip(order, wl_nm)],
                       notes=notes, gt_path=str(gt) if gt.exists() and gt != p else None)

    @staticmethod
    def _grid_factory(f, p: Path, swath_shape, notes):
        """The output_factory of the GLT grid (georeference checked now, the GLT read on first use), or None
        when the file has no GLT."""
        loc = _group(f, "location")
        gx = _dataset(loc, "glt_x") if loc is not None else None
        gy = _dataset(loc, "glt_y") if loc is not None else None
        if gx is None and gy is None:
            notes.append("no GLT (location/glt_x, glt_y): the scores stay in swath geometry")
            return None
        if gx is None or gy is None or gx.ndim != 2 or gx.shape != gy.shape:
            raise FileError(f"{p}: incomplete GLT: location/glt_x and glt_y must be two 2-D arrays of one shape")
        raw_gt = f.attrs.get("geotransform")
        try:
            gt = np.asarray(raw_gt, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            gt = np.empty(0)
        if gt.size != 6 or not np.all(np.isfinite(gt)) or gt[1] == 0 or gt[5] == 0:
            got = "none" if raw_gt is None else " ".join(str(raw_gt).split())[:100]
            raise FileError(f"{p}: the root attribute 'geotransform' must hold the 6 GDAL coefficients of the GLT's "
                            f"map grid, got {got}")
        require("rasterio", "EMIT georeference")
        from rasterio import crs as rasterio_crs
        from rasterio.transform import Affine

        wkt = _text(f.attrs.get("spatial_ref")).strip()
        if wkt:
            try:
                crs = rasterio_crs.CRS.from_wkt(wkt)
            except Exception as exc:
                raise FileError(f"{p}: cannot parse the root attribute 'spatial_ref' as a CRS: "
                                f"{_one_line(exc)}") from None
        else:
            crs = rasterio_crs.CRS.from_epsg(4326)
            notes.append("no 'spatial_ref' attribute: the GLT grid is taken as EPSG:4326 (EMIT's WGS-84 lat/lon)")
        transform = Affine.from_gdal(*gt.tolist())
        notes.append(f"scores are written on the GLT's {gx.shape[0]} x {gx.shape[1]} map grid ({crs.to_string()}), "
                     f"nearest swath pixel per map pixel")
        return functools.partial(_glt_grid, str(p), tuple(swath_shape), crs, transform)


READER = EmitReader()
