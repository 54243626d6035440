"""Detections as connected components of a thresholded score map (pure numpy/scipy).

The polygons themselves are drawn from the label image by the I/O layer (rasterio in the CLI, GDAL in the
QGIS plugin); this module computes the labels and each detection's attributes once for both.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage

from .errors import InputError, ParameterError
from .threshold import NullLaw, threshold_value

__all__ = ["label_detections"]


def label_detections(
    scores,
    threshold,
    connectivity: int = 8,
    min_size: int = 1,
    n_bands: Optional[int] = None,
    valid=None,
    null: Optional[NullLaw] = None,
) -> Tuple[np.ndarray, List[Dict]]:
    """Label connected detections.

    Parameters
    ----------
    scores : (H, W) array; NaN = invalid.
    threshold : threshold spec (see :mod:`hadcore.threshold`); pixels with score ``>=`` it are detections.
    connectivity : 4 or 8 neighbours.
    min_size : components with fewer pixels are dropped.
    n_bands : band count of the detector's input (for ``fpr:`` thresholds without ``null``: chi-square).
    valid : optional (H, W) bool; pixels outside it are never detections.
    null : the scores' null law (:class:`hadcore.threshold.NullLaw` or its text) that ``fpr:`` thresholds
        invert: :meth:`hadcore.base.Detector.null_law`, or :func:`hadcore.tags.check_fpr` of a layer's tags.

    Returns
    -------
    labels : (H, W) int32, 0 = no detection, 1..n = detections ordered by decreasing peak score.
    table : list of dicts ``id, pixels, peak, mean, peak_row, peak_col, threshold``.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise InputError(f"expected a 2-D score map, got shape {s.shape}")
    if connectivity not in (4, 8):
        raise ParameterError(f"connectivity must be 4 or 8, got {connectivity!r}")
    if int(min_size) < 1:
        raise ParameterError(f"min_size must be >= 1, got {min_size!r}")
    ok = np.isfinite(s)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    thr = threshold_value(s[ok], threshold, n_bands=n_bands, null=null)
    hit = ok & (np.where(ok, s, -np.inf) >= thr)
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    raw, n = ndimage.label(hit, structure=structure)
    labels = np.zeros(s.shape, dtype=np.int32)
    if n == 0:
        return labels, []
    idx = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(hit, raw, idx).astype(np.int64)
    sv = np.where(hit, s, 0.0)
    peaks = ndimage.maximum(sv, raw, idx)
    means = ndimage.mean(sv, raw, idx)
    peak_pos = ndimage.maximum_position(sv, raw, idx)
    keep = np.flatnonzero(sizes >= int(min_size))
    keep = keep[np.argsort(-peaks[keep], kind="stable")]
    remap = np.zeros(n + 1, dtype=np.int32)
    remap[keep + 1] = np.arange(1, keep.size + 1, dtype=np.int32)
    labels = remap[raw]
    table = [
        {
            "id": int(new_id),
            "pixels": int(sizes[k]),
            "peak": float(peaks[k]),
            "mean": float(means[k]),
            "peak_row": int(peak_pos[k][0]),
            "peak_col": int(peak_pos[k][1]),
            "threshold": float(thr),
        }
        for new_id, k in enumerate(keep, start=1)
    ]
    return labels, table
