"""Detections as polygons (rasterio.features + geopandas; imported only when used).

The label image and attributes come from :func:`hadcore.components.label_detections`; this module draws the
polygons of the label image (never of raw scores, which would give one polygon per pixel) and writes them to
GeoPackage, GeoJSON or Shapefile, chosen by extension.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from .components import label_detections
from .errors import FileError
from .io import atomic_output

__all__ = ["detections_to_frame", "write_detections", "VECTOR_DRIVERS"]

VECTOR_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile"}
COLUMNS = ["id", "pixels", "area", "peak", "mean", "peak_x", "peak_y", "threshold"]


def detections_to_frame(
    scores: np.ndarray,
    threshold,
    *,
    transform=None,
    crs=None,
    connectivity: int = 8,
    min_size: int = 1,
    n_bands: Optional[int] = None,
):
    """A GeoDataFrame with one polygon per detection.

    Columns: ``id`` (1 = highest peak), ``pixels``, ``area`` (pixels x pixel area, CRS units squared),
    ``peak`` and ``mean`` score, ``peak_x``/``peak_y`` (centre of the peak pixel in CRS coordinates),
    ``threshold`` (the score value used).
    """
    import geopandas as gpd
    from affine import Affine
    from rasterio import features
    from shapely.geometry import shape
    from shapely.ops import unary_union

    T = transform if transform is not None else Affine.identity()
    labels, table = label_detections(scores, threshold, connectivity=connectivity, min_size=min_size, n_bands=n_bands)
    pixel_area = abs(T.a * T.e - T.b * T.d)
    geoms = {}
    if table:
        for geom, value in features.shapes(labels, mask=labels > 0, transform=T, connectivity=connectivity):
            geoms.setdefault(int(value), []).append(shape(geom))
    rows = []
    for d in table:
        col, row = d["peak_col"] + 0.5, d["peak_row"] + 0.5  # centre of the peak pixel
        x, y = T.c + T.a * col + T.b * row, T.f + T.d * col + T.e * row
        parts = geoms[d["id"]]
        rows.append(
            {
                "id": d["id"],
                "pixels": d["pixels"],
                "area": d["pixels"] * pixel_area,
                "peak": d["peak"],
                "mean": d["mean"],
                "peak_x": float(x),
                "peak_y": float(y),
                "threshold": d["threshold"],
                "geometry": parts[0] if len(parts) == 1 else unary_union(parts),
            }
        )
    if rows:
        return gpd.GeoDataFrame(rows, columns=COLUMNS + ["geometry"], geometry="geometry", crs=crs)
    empty = {c: np.array([], dtype=np.int64 if c in ("id", "pixels") else np.float64) for c in COLUMNS}
    return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def write_detections(frame, path, overwrite: bool = False) -> Path:
    """Write detections by extension (.gpkg, .geojson/.json, .shp); an empty frame gives a valid empty layer."""
    p = Path(path)
    driver = VECTOR_DRIVERS.get(p.suffix.lower())
    if driver is None:
        raise FileError(f"unknown vector format {p.suffix!r} for {p.name}; use one of {', '.join(VECTOR_DRIVERS)}")
    with atomic_output(p, overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        kwargs = {"layer": "detections"} if driver == "GPKG" else {}
        if frame.empty:
            kwargs["geometry_type"] = "Polygon"
        frame.to_file(tmp, driver=driver, engine="pyogrio", **kwargs)
    return p
