"""Raster input and output (rasterio; imported only when used): :mod:`~hadcore.io.read` (whole rasters),
:mod:`~hadcore.io.gdal` (GDAL rasters by windows for the engine), :mod:`~hadcore.io.write` (GeoTIFF outputs).
Opening a scene for a run, sensor products included, is :mod:`hadcore.scene`.


Reads any raster GDAL reads (GeoTIFF, ENVI, ...) and the benchmark formats ``.npz`` (``cube``, ``gt``) and
``.mat`` (``data``, ``map``) into (H, W, B); writes score layers and cubes as GeoTIFF. Every file is written
under a temporary name in the target folder and renamed when complete, so a failure never leaves a half
-written output, and an existing output is kept unless ``overwrite`` is set.
"""


from .bands import _parse_wavelengths, band_metadata, constant_bands, raster_bands
from .gdal import GDAL_CACHE_MB, RasterSource, _gdal_env, _gdal_error_text
from .read import (
    ARRAY_SUFFIXES,
    Raster,
    _open_dataset,
    _read_array_file,
    ground_truth_path,
    read_ground_truth,
    read_raster,
    read_scores,
)
from .write import (
    TMP_TAG,
    ScoreWriter,
    _CStderr,
    atomic_output,
    check_output,
    remove_stale_temporaries,
    score_nodata,
    write_cube,
    write_scores,
)

__all__ = [
    "Raster", "read_raster", "read_ground_truth", "read_scores", "write_scores", "write_cube", "atomic_output",
    "check_output", "ground_truth_path", "RasterSource", "ScoreWriter", "score_nodata", "remove_stale_temporaries",
    "TMP_TAG", "ARRAY_SUFFIXES", "GDAL_CACHE_MB", "_gdal_env", "_gdal_error_text", "_open_dataset",
    "_parse_wavelengths", "_read_array_file", "_CStderr", "band_metadata", "constant_bands", "raster_bands",
]
