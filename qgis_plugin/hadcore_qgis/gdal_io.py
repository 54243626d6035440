"""Raster and vector I/O for the plugin, through GDAL/OGR and QGIS only.

No rasterio, shapely, pyproj or pyogrio here: their wheels bundle their own GDAL/GEOS/PROJ and crash
inside QGIS (see docs/qgis.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal, ogr, osr

# GDAL's exception mode is process-wide state shared with QGIS and other plugins: not switched on here;
# return values are checked instead.

GTIFF_OPTIONS = ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=3", "BIGTIFF=IF_SAFER"]


class RasterIOError(Exception):
    """A raster that cannot be opened, read or written (message is user-facing)."""


@dataclass
class RasterInfo:
    path: str
    width: int
    height: int
    count: int
    geotransform: Optional[Tuple[float, ...]]
    projection: str

    @property
    def pixel_area(self) -> float:
        gt = self.geotransform
        if gt is None:
            return 1.0
        return abs(gt[1] * gt[5] - gt[2] * gt[4])

    def pixel_centre(self, row: int, col: int) -> Tuple[float, float]:
        gt = self.geotransform
        if gt is None:
            return col + 0.5, row + 0.5
        x = gt[0] + (col + 0.5) * gt[1] + (row + 0.5) * gt[2]
        y = gt[3] + (col + 0.5) * gt[4] + (row + 0.5) * gt[5]
        return x, y


def open_raster(path: str):
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:  # when some other code switched exceptions on
        raise RasterIOError(f"cannot open raster {path!r} with GDAL: {exc}") from None
    if ds is None:
        raise RasterIOError(f"cannot open raster {path!r} with GDAL: {gdal.GetLastErrorMsg() or 'unknown format'}")
    return ds


class limited_block_cache:
    """``with`` block holding GDAL's block cache to ``mb`` MB, restored after: GDAL's default (5 % of the RAM)
    would fill with the input's blocks during a streamed run and count against the memory budget (a
    1000 x 1000 x 224 layer under MEM_LIMIT=1024 peaked 1194 MB above QGIS's own 348 MB without it)."""

    def __init__(self, mb: int = 64):
        self.mb = int(mb)
        self.old = None

    def __enter__(self):
        self.old = gdal.GetCacheMax()
        gdal.SetCacheMax(self.mb * 2**20)
        return self

    def __exit__(self, *exc):
        gdal.SetCacheMax(self.old)
        return False


def raster_info(ds) -> RasterInfo:
    gt = ds.GetGeoTransform(can_return_null=True)
    return RasterInfo(
        path=ds.GetDescription(),
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        count=ds.RasterCount,
        geotransform=tuple(gt) if gt is not None else None,
        projection=ds.GetProjection() or "",
    )


def _band_valid(band) -> Optional[np.ndarray]:
    """Valid-pixel mask of a band from GDAL's mask band (nodata, alpha, per-dataset mask), or None = all."""
    if band.GetMaskFlags() & gdal.GMF_ALL_VALID:
        return None
    return band.GetMaskBand().ReadAsArray() > 0


def read_cube(ds, bands: Sequence[int], progress=None) -> Tuple[np.ndarray, np.ndarray]:
    """Bands (0-based indices) as a float32 (H, W, B) cube, and the (H, W) valid mask.

    A pixel is valid when it is valid (GDAL mask band: nodata, alpha) in every selected band.
    ``progress(fraction)`` is called after each band.
    """
    H, W = ds.RasterYSize, ds.RasterXSize
    cube = np.empty((H, W, len(bands)), dtype=np.float32)
    valid = np.ones((H, W), dtype=bool)
    for k, b in enumerate(bands):
        band = ds.GetRasterBand(int(b) + 1)
        cube[:, :, k] = band.ReadAsArray()
        m = _band_valid(band)
        if m is not None:
            valid &= m
        if progress is not None:
            progress((k + 1) / len(bands))
    return cube, valid


def read_band(ds, band_number: int) -> np.ndarray:
    """One band (1-based) as float64 with NaN where GDAL's mask says invalid."""
    if not 1 <= band_number <= ds.RasterCount:
        raise RasterIOError(f"band {band_number} does not exist; the raster has {ds.RasterCount} band(s)")
    band = ds.GetRasterBand(band_number)
    a = band.ReadAsArray().astype(np.float64)
    m = _band_valid(band)
    if m is not None:
        a[~m] = np.nan
    return a


def driver_for(path: str) -> str:
    """GDAL driver name for an output path (by extension; GeoTIFF by default)."""
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if ext in ("", "tif", "tiff"):
        return "GTiff"
    try:
        from qgis.core import QgsRasterFileWriter

        name = QgsRasterFileWriter.driverForExtension(ext)
        if name:
            return name
    except Exception:  # pragma: no cover - outside QGIS
        pass
    return "GTiff"


def write_float_raster(path: str, array: np.ndarray, info: RasterInfo, description: str = "",
                       metadata: Optional[Dict[str, str]] = None) -> str:
    """Write (H, W) values as float32 with the CRS and geotransform of ``info``, NaN nodata.

    GeoTIFF is tiled and DEFLATE-compressed; other formats go through an in-memory copy.
    """
    a = np.asarray(array, dtype=np.float32)
    H, W = a.shape
    name = driver_for(path)
    if os.path.exists(path):
        os.remove(path)
    mem = gdal.GetDriverByName("MEM").Create("", W, H, 1, gdal.GDT_Float32)
    if info.geotransform is not None:
        mem.SetGeoTransform(info.geotransform)
    if info.projection:
        mem.SetProjection(info.projection)
    band = mem.GetRasterBand(1)
    band.SetNoDataValue(float("nan"))
    if description:
        band.SetDescription(description)
    band.WriteArray(a)
    if metadata:
        mem.SetMetadata({str(k): str(v) for k, v in metadata.items()})
    driver = gdal.GetDriverByName(name)
    if driver is None:
        raise RasterIOError(f"GDAL has no driver {name!r} for output {path!r}")
    options = GTIFF_OPTIONS if name == "GTiff" else []
    try:
        out = driver.CreateCopy(path, mem, 0, options)
    except RuntimeError as exc:
        raise RasterIOError(f"cannot write {path!r} with GDAL driver {name}: {exc}") from None
    if out is None:
        raise RasterIOError(f"cannot write {path!r} with GDAL driver {name}: {gdal.GetLastErrorMsg()}")
    out.FlushCache()
    out = None
    return path


def polygonize_labels(labels: np.ndarray, info: RasterInfo, connectivity: int = 8) -> Dict[int, List[str]]:
    """Polygons (WKT, in the raster's CRS) of every label > 0, grouped by label: ``{id: [wkt, ...]}``.

    ``gdal.Polygonize`` on the label image with the mask ``labels > 0``; with 8-connectivity, pixels that
    touch at a corner belong to one polygon, as in :func:`hadcore.components.label_detections`.
    """
    lab = np.asarray(labels, dtype=np.int32)
    H, W = lab.shape
    mem = gdal.GetDriverByName("MEM").Create("", W, H, 2, gdal.GDT_Int32)
    gt = info.geotransform if info.geotransform is not None else (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    mem.SetGeoTransform(gt)
    if info.projection:
        mem.SetProjection(info.projection)
    mem.GetRasterBand(1).WriteArray(lab)
    mem.GetRasterBand(2).WriteArray((lab > 0).astype(np.int32))
    vds = ogr.GetDriverByName("Memory").CreateDataSource("labels")
    srs = None
    if info.projection:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(info.projection)
    layer = vds.CreateLayer("labels", srs=srs, geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
    options = ["8CONNECTED=8"] if connectivity == 8 else []
    if gdal.Polygonize(mem.GetRasterBand(1), mem.GetRasterBand(2), layer, 0, options) != 0:
        raise RasterIOError(f"GDAL Polygonize failed: {gdal.GetLastErrorMsg()}")
    out: Dict[int, List[str]] = {}
    for feat in layer:
        out.setdefault(int(feat.GetField(0)), []).append(feat.GetGeometryRef().ExportToWkt())
    return out


# ------------------------------------------------------------------------------------------ streaming
class GdalSource:
    """A raster read by windows through GDAL, for hadcore's streaming engine (``hadcore.engine.Source``).

    ``bands`` are 0-based. A pixel is valid when GDAL's mask band (nodata, alpha) says so in every selected
    band, and when it is finite and not all zeros (the engine adds those). Values are read as float32.
    """

    def __init__(self, ds, bands: Sequence[int]):
        self.ds = ds
        self.bands = [int(b) for b in bands]
        self.shape = (ds.RasterYSize, ds.RasterXSize, len(self.bands))
        self.nodata = None
        bx, by = ds.GetRasterBand(self.bands[0] + 1).GetBlockSize()
        self.block_shape = (int(by), int(bx))
        self.name = os.path.basename(ds.GetDescription() or "raster")
        self._all_valid = all(ds.GetRasterBand(b + 1).GetMaskFlags() & gdal.GMF_ALL_VALID for b in self.bands)

    def read(self, r0, r1, c0, c1):
        out = np.empty((r1 - r0, c1 - c0, len(self.bands)), dtype=np.float32)
        for k, b in enumerate(self.bands):
            a = self.ds.GetRasterBand(b + 1).ReadAsArray(c0, r0, c1 - c0, r1 - r0)
            if a is None:
                raise RasterIOError(f"{self.name}: cannot read band {b + 1} at rows {r0}-{r1 - 1}: "
                                    f"{gdal.GetLastErrorMsg() or 'corrupt or truncated data'}")
            out[:, :, k] = a
        return out

    def user_mask(self, r0, r1, c0, c1):
        if self._all_valid:
            return None
        valid = np.ones((r1 - r0, c1 - c0), dtype=bool)
        for b in self.bands:
            band = self.ds.GetRasterBand(b + 1)
            if band.GetMaskFlags() & gdal.GMF_ALL_VALID:
                continue
            valid &= band.GetMaskBand().ReadAsArray(c0, r0, c1 - c0, r1 - r0) > 0
        return valid

    def block(self, r0, r1, c0, c1, scratch=False):
        from hadcore.engine import Source

        return Source.block(self, r0, r1, c0, c1, scratch=scratch)

    def raw_block(self, r0, r1, c0, c1):
        from hadcore.engine import Source

        return Source.raw_block(self, r0, r1, c0, c1)


class GdalTags:
    """A GDAL dataset's metadata read the way rasterio's dataset answers it (``tags``, ``tag_namespaces``,
    ``descriptions``), so that hadcore's one band rule (``hadcore.io.bands.raster_bands``) reads it unchanged."""

    def __init__(self, ds):
        self.ds = ds

    def _obj(self, bidx: int):
        return self.ds if not bidx else self.ds.GetRasterBand(int(bidx))

    def tags(self, bidx: int = 0, ns: Optional[str] = None) -> Dict[str, str]:
        md = self._obj(bidx).GetMetadata(ns or "")
        return dict(md) if isinstance(md, dict) else {}

    def tag_namespaces(self, bidx: int = 0) -> List[str]:
        return list(self._obj(bidx).GetMetadataDomainList() or [])

    @property
    def descriptions(self):
        return tuple(self.ds.GetRasterBand(b).GetDescription() or None for b in range(1, self.ds.RasterCount + 1))


class _NanMasked:
    """A :class:`GdalSource` whose reads carry NaN where GDAL's mask says nodata (for hadcore's constant-band
    test, which sees nodata only as a value)."""

    def __init__(self, source: "GdalSource"):
        self.source, self.shape, self.nodata = source, source.shape, None

    def read(self, r0, r1, c0, c1):
        a = self.source.read(r0, r1, c0, c1)
        for k, b in enumerate(self.source.bands):
            valid = _band_valid_window(self.source.ds.GetRasterBand(b + 1), r0, r1, c0, c1)
            if valid is not None:
                a[:, :, k][~valid] = np.nan
        return a


def _band_valid_window(band, r0, r1, c0, c1) -> Optional[np.ndarray]:
    if band.GetMaskFlags() & gdal.GMF_ALL_VALID:
        return None
    m = band.GetMaskBand().ReadAsArray(c0, r0, c1 - c0, r1 - r0)
    return None if m is None else m > 0


def choose_bands(ds, path: str, bands: Optional[str] = None, bad_bands: Optional[str] = None):
    """(0-based bands, notes) of a GDAL raster layer by hadcore's one rule (as the CLI and ``hadcore.detect``
    choose them): the file's ``bbl`` flags dropped by default, ``auto``/``none``/a list in ``bad_bands``."""
    idx, notes, _, _ = choose_bands_with_wavelengths(ds, path, bands, bad_bands)
    return idx, notes


def choose_bands_with_wavelengths(ds, path: str, bands: Optional[str] = None, bad_bands: Optional[str] = None):
    """:func:`choose_bands`, and the wavelengths and FWHM (nm) of the chosen bands (None where the file has
    none): what a target detector's library spectrum is resampled to."""
    from hadcore.scene import constant_bands, raster_bands

    def constant(cand):
        return constant_bands(_NanMasked(GdalSource(ds, cand)))

    idx, notes, wl, fw, _ = raster_bands(GdalTags(ds), ds.RasterCount, path, bands=bands or None,
                                         bad_bands=bad_bands or None, constant=constant)
    return idx, notes, None if wl is None else wl[idx], None if fw is None else fw[idx]


class FloatRasterSink:
    """The score layer written block by block (``hadcore.engine.Sink``): float32, NaN nodata, the CRS and
    geotransform of ``info``. GeoTIFF is written directly (tiled, DEFLATE, BigTIFF if needed) under a
    temporary name and renamed when complete; other formats are converted from it at the end."""

    def __init__(self, path: str, info: RasterInfo, description: str = "", metadata: Optional[Dict[str, str]] = None):
        self.path = path
        self.info = info
        self.description = description
        self.metadata = metadata or {}
        self.tmp = f"{path}.hadcore-{os.getpid()}.tmp.tif"
        drv = gdal.GetDriverByName("GTiff")
        self.ds = drv.Create(self.tmp, info.width, info.height, 1, gdal.GDT_Float32, GTIFF_OPTIONS)
        if self.ds is None:
            raise RasterIOError(f"cannot create {path!r}: {gdal.GetLastErrorMsg()}")
        if info.geotransform is not None:
            self.ds.SetGeoTransform(info.geotransform)
        if info.projection:
            self.ds.SetProjection(info.projection)
        band = self.ds.GetRasterBand(1)
        band.SetNoDataValue(float("nan"))
        if description:
            band.SetDescription(description)
        self.lo, self.hi = np.inf, -np.inf

    def write(self, r0, c0, scores):
        s = np.asarray(scores, dtype=np.float32)
        ok = np.isfinite(s)
        if ok.any():
            self.lo = min(self.lo, float(s[ok].min()))
            self.hi = max(self.hi, float(s[ok].max()))
        if self.ds.GetRasterBand(1).WriteArray(s, int(c0), int(r0)) != 0:
            raise RasterIOError(f"cannot write {self.path!r}: {gdal.GetLastErrorMsg()}")

    def rescale(self):
        """Scale the written scores to 0-1 in place, block row by block row."""
        band = self.ds.GetRasterBand(1)
        span = self.hi - self.lo
        H, W = self.info.height, self.info.width
        step = 256
        for r in range(0, H, step):
            h = min(step, H - r)
            a = band.ReadAsArray(0, r, W, h).astype(np.float64)
            ok = np.isfinite(a)
            a[ok] = (a[ok] - self.lo) / span if span > 0 else 0.0
            band.WriteArray(a.astype(np.float32), 0, r)

    def close(self) -> str:
        if self.metadata:
            self.ds.SetMetadata({str(k): str(v) for k, v in self.metadata.items()})
        self.ds.FlushCache()
        self.ds = None
        name = driver_for(self.path)
        if os.path.exists(self.path):
            os.remove(self.path)
        if name == "GTiff":
            os.replace(self.tmp, self.path)
        else:
            src = gdal.Open(self.tmp)
            out = gdal.GetDriverByName(name).CreateCopy(self.path, src, 0, [])
            src = None
            if out is None:
                self.abort()
                raise RasterIOError(f"cannot write {self.path!r} with GDAL driver {name}: {gdal.GetLastErrorMsg()}")
            out.FlushCache()
            out = None
            os.remove(self.tmp)
        return self.path

    def abort(self):
        self.ds = None
        if os.path.exists(self.tmp):
            os.remove(self.tmp)
