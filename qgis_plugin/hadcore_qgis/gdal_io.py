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
