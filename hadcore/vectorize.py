"""Detections as polygons (rasterio.features + geopandas; imported only when used).

The label image and attributes come from :func:`hadcore.components.label_detections`; this module draws the
polygons of the label image (never of raw scores, which would give one polygon per pixel) and writes them to
GeoPackage, GeoJSON or Shapefile, chosen by extension.

The spectra of the detections (:class:`hadcore.spectra.DetectionSpectra`) travel with them: in a GeoPackage as
the attribute table ``detection_spectra`` beside the ``detections`` layer, keyed by ``id`` (one row per
detection and band, id 0 the background; :data:`hadcore.spectra.SPECTRA_COLUMNS`); beside a GeoJSON or
Shapefile as ``<name>_spectra.csv`` with the same columns.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from .components import label_detections
from .errors import FileError, InputError
from .io import atomic_output, check_output

__all__ = ["detections_to_frame", "frame_from_labels", "write_detections", "VECTOR_DRIVERS", "spectra_csv_path",
           "rasterize_layer", "read_detection_spectra", "has_detection_spectra", "SPECTRA_LAYER"]

SPECTRA_LAYER = "detection_spectra"

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
    null=None,
):
    """A GeoDataFrame with one polygon per detection.

    Columns: ``id`` (1 = highest peak), ``pixels``, ``area`` (pixels x pixel area, CRS units squared),
    ``peak`` and ``mean`` score, ``peak_x``/``peak_y`` (centre of the peak pixel in CRS coordinates),
    ``threshold`` (the score value used). ``null``: the scores' :class:`hadcore.threshold.NullLaw` for ``fpr:``.
    """
    labels, table = label_detections(scores, threshold, connectivity=connectivity, min_size=min_size, n_bands=n_bands,
                                     null=null)
    return frame_from_labels(labels, table, transform=transform, crs=crs, connectivity=connectivity)


def frame_from_labels(labels, table, *, transform=None, crs=None, connectivity: int = 8, extra=None):
    """The GeoDataFrame of :func:`detections_to_frame` from a label image and its table
    (:func:`hadcore.components.label_detections`); ``extra`` one dict of more attributes per row of ``table``
    (library matches)."""
    import geopandas as gpd
    from affine import Affine
    from rasterio import features
    from shapely.geometry import shape
    from shapely.ops import unary_union

    T = transform if transform is not None else Affine.identity()
    pixel_area = abs(T.a * T.e - T.b * T.d)
    geoms = {}
    if table:
        for geom, value in features.shapes(labels, mask=labels > 0, transform=T, connectivity=connectivity):
            geoms.setdefault(int(value), []).append(shape(geom))
    rows = []
    for k, d in enumerate(table):
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
                **(extra[k] if extra else {}),
                "geometry": parts[0] if len(parts) == 1 else unary_union(parts),
            }
        )
    more = list(extra[0]) if extra else []
    if rows:
        return gpd.GeoDataFrame(rows, columns=COLUMNS + more + ["geometry"], geometry="geometry", crs=crs)
    empty = {c: np.array([], dtype=np.int64 if c in ("id", "pixels") else np.float64) for c in COLUMNS}
    return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def rasterize_layer(path, height: int, width: int, transform=None, crs=None, all_touched: bool = False):
    """The polygons of a vector file burnt onto a grid: (height, width) int32, 0 outside, else the feature's
    ``id`` attribute when it holds unique whole numbers >= 1, or its index + 1. Features in another CRS are
    reprojected to ``crs``; a layer that covers no pixel is a one-line error."""
    import geopandas as gpd
    from affine import Affine
    from rasterio import features

    p = Path(path)
    if not p.exists():
        raise FileError(f"vector file not found: {p}")
    try:
        frame = gpd.read_file(p, engine="pyogrio", layer="detections" if p.suffix.lower() == ".gpkg" and
                              "detections" in _layers(p) else None)
    except Exception as exc:  # noqa: BLE001 - a corrupt file: one line
        raise FileError(f"cannot read {p.name}: {str(exc).splitlines()[0]}") from None
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    if frame.empty:
        raise InputError(f"{p.name} holds no polygon")
    if crs is not None and frame.crs is not None and frame.crs != crs:
        frame = frame.to_crs(crs)
    ids = None
    if "id" in frame.columns:
        vals = np.asarray(frame["id"])
        if np.issubdtype(vals.dtype, np.integer) and vals.min() >= 1 and np.unique(vals).size == vals.size:
            ids = vals.astype(np.int64)
    if ids is None:
        ids = np.arange(1, len(frame) + 1)
    T = transform if transform is not None else Affine.identity()
    out = features.rasterize(zip(frame.geometry, ids.tolist()), out_shape=(int(height), int(width)), transform=T,
                             fill=0, all_touched=all_touched, dtype="int32")
    if not out.any():
        raise InputError(f"the polygons of {p.name} cover no pixel of the scene (another area, or another CRS "
                         "without one declared?)")
    return out


def _layers(p: Path):
    import pyogrio

    return [name for name, _ in pyogrio.list_layers(p)]


def spectra_csv_path(vector_path) -> Path:
    """Where the spectra of a GeoJSON or Shapefile's detections go: ``<name>_spectra.csv`` beside it."""
    p = Path(vector_path)
    return p.with_name(p.stem + "_spectra.csv")


def write_detections(frame, path, overwrite: bool = False, spectra=None) -> Path:
    """Write detections by extension (.gpkg, .geojson/.json, .shp); an empty frame gives a valid empty layer.

    ``spectra`` (:class:`hadcore.spectra.DetectionSpectra`): into the GeoPackage as the ``detection_spectra``
    table, or as the CSV beside (:func:`spectra_csv_path`); every file is written under a temporary name and
    renamed, and an existing one is refused without ``overwrite`` before anything is written."""
    import pandas as pd

    p = Path(path)
    driver = VECTOR_DRIVERS.get(p.suffix.lower())
    if driver is None:
        raise FileError(f"unknown vector format {p.suffix!r} for {p.name}; use one of {', '.join(VECTOR_DRIVERS)}")
    csv_path = spectra_csv_path(p) if spectra is not None and driver != "GPKG" else None
    if csv_path is not None:
        check_output(csv_path, overwrite)
    with atomic_output(p, overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        kwargs = {"layer": "detections"} if driver == "GPKG" else {}
        if frame.empty:
            kwargs["geometry_type"] = "Polygon"
        frame.to_file(tmp, driver=driver, engine="pyogrio", **kwargs)
        # the long table in parts of 2000 detections (a table of detections x bands rows is never held whole)
        if spectra is not None and driver == "GPKG":
            import pyogrio

            for i, part in enumerate(spectra.iter_columns()):
                pyogrio.write_dataframe(pd.DataFrame(part), tmp, layer=SPECTRA_LAYER, driver="GPKG", append=i > 0)
        if csv_path is not None:
            with atomic_output(csv_path, overwrite) as tmp_csv:
                for i, part in enumerate(spectra.iter_columns()):  # full precision: the values read back exactly
                    pd.DataFrame(part).to_csv(tmp_csv, index=False, mode="a" if i else "w", header=i == 0)
    return p


def read_detection_spectra(path):
    """The :class:`hadcore.spectra.DetectionSpectra` stored with detections: a GeoPackage's spectra table
    (``detection_spectra``, or any table with the columns of :data:`hadcore.spectra.SPECTRA_COLUMNS`, as the QGIS
    algorithms' SPECTRA output saved into a GeoPackage), the ``<name>_spectra.csv`` beside a GeoJSON or
    Shapefile, or such a CSV itself. Reads with the standard library only (a GeoPackage is an SQLite file), so it
    works in QGIS's Python as well."""
    from .spectra import SPECTRA_COLUMNS, DetectionSpectra

    p = Path(path)
    if not p.exists():
        raise FileError(f"detections not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".gpkg":
        cols = _gpkg_spectra(p, SPECTRA_COLUMNS)
    else:
        csv_path = p if suffix == ".csv" else spectra_csv_path(p)
        if not csv_path.exists():
            raise FileError(f"{p.name} has no detection spectra beside it ({csv_path.name} not found)")
        cols = _csv_columns(csv_path)
    return DetectionSpectra.from_columns(cols)


def _spectra_table(con, columns):
    """The name of a GeoPackage's spectra table (an attribute table holding ``columns``; ours first), or None."""
    tables = [r[0] for r in con.execute("SELECT table_name FROM gpkg_contents WHERE data_type = 'attributes'")]
    tables.sort(key=lambda t: t != SPECTRA_LAYER)
    for t in tables:
        if set(columns) <= {r[1] for r in con.execute(f'PRAGMA table_info("{t}")')}:
            return t
    return None


def has_detection_spectra(path) -> bool:
    """Whether :func:`read_detection_spectra` finds spectra for ``path`` (a GeoPackage's spectra table, the CSV
    beside a GeoJSON/Shapefile, or a CSV itself); an unreadable GeoPackage has none."""
    import sqlite3

    from .spectra import SPECTRA_COLUMNS

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return True
    if suffix != ".gpkg":
        return spectra_csv_path(p).exists()
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            return _spectra_table(con, SPECTRA_COLUMNS) is not None
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False


def _gpkg_spectra(p: Path, columns):
    """The spectra table's columns (dict of float arrays) from a GeoPackage, through sqlite3."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            t = _spectra_table(con, columns)
            if t is not None:
                # the table name comes from the file's own catalogue, the columns are ours; both quoted
                query = f'SELECT {", ".join(chr(34) + c + chr(34) for c in columns)} FROM "{t}"'  # nosec B608
                rows = con.execute(query)
                data = np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=np.float64)
                data = data.reshape(-1, len(columns))
                return {c: data[:, i] for i, c in enumerate(columns)}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise FileError(f"cannot read {p.name}: {exc}") from None
    raise FileError(f"{p.name} holds no detection spectra (no '{SPECTRA_LAYER}' table); write it with hadcore "
                    f"detect ... --vector FILE.gpkg, or compute them: hadcore spectra {p.name} SCENE --csv OUT.csv")


def _csv_columns(csv_path: Path):
    """A spectra CSV's columns (dict of float arrays; empty cells NaN), with the csv module."""
    import csv

    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise FileError(f"cannot read {csv_path.name}: {exc}") from None
    if not rows:
        raise FileError(f"{csv_path.name} is empty")
    head = [h.strip() for h in rows[0]]
    try:
        data = np.array([[float(v) if v.strip() else np.nan for v in r] for r in rows[1:] if r], dtype=np.float64)
    except ValueError as exc:
        raise FileError(f"cannot read {csv_path.name}: {exc}") from None
    data = data.reshape(-1, len(head))
    return {h: data[:, i] for i, h in enumerate(head)}
