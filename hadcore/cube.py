"""Cubes and blocks as the detectors and the engine receive them: validation, the valid-pixel mask, and the
float64 copy with zeros at invalid pixels (numpy only; the lowest layer with :mod:`hadcore.errors`)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import InputError

__all__ = ["check_cube", "prepare_cube", "prepare_block", "valid_mask"]


def check_cube(cube, mask=None, *, min_bands: int = 2, min_pixels: int = 3, who: str = "detector"):
    """Validate a cube without copying it; returns ``(X, valid)`` with X the caller's array (as an ndarray,
    2-D input gets a band axis when ``min_bands <= 1``) and valid the (H, W) bool mask.

    Raises :class:`InputError` with a one-line message for unusable input.
    """
    X = np.asarray(cube)
    if X.ndim == 2 and min_bands <= 1:
        X = X[:, :, None]
    if X.ndim != 3:
        raise InputError(f"{who}: expected a cube of shape (H, W, B), got an array of shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer) or X.dtype == bool):
        raise InputError(f"{who}: expected real numbers, got dtype {X.dtype}")
    H, W, B = X.shape
    if B < min_bands:
        raise InputError(f"{who}: needs at least {min_bands} bands, got {B}")
    if H == 0 or W == 0:
        raise InputError(f"{who}: the image is empty ({H} x {W} pixels)")
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != (H, W):
            raise InputError(f"{who}: mask shape {m.shape} does not match the image ({H}, {W})")
    valid = valid_mask(X, None, mask)
    n_valid = int(valid.sum())
    if n_valid < min_pixels:
        raise InputError(f"{who}: needs at least {min_pixels} valid pixels, got {n_valid}")
    return X, valid


def prepare_cube(cube, mask=None, *, min_bands: int = 2, min_pixels: int = 3, who: str = "detector"):
    """Validate a cube and build the valid-pixel mask.

    Returns ``(X, valid)``: X float64 C-contiguous (H, W, B) with 0 at invalid pixels, valid (H, W) bool.
    Raises :class:`InputError` with a one-line message for unusable input.
    """
    X, valid = check_cube(cube, mask, min_bands=min_bands, min_pixels=min_pixels, who=who)
    return prepare_block(X, valid), valid


def prepare_block(X: np.ndarray, valid: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """float64 C-contiguous copy of a block with 0 at invalid pixels (never the caller's array); into
    ``out`` (float64, C-contiguous, X's shape) when given."""
    if out is None:
        out = np.array(X, dtype=np.float64, order="C", copy=True)
    else:
        out[...] = X
    if not valid.all():
        out[~valid] = 0.0
    return out


def valid_mask(cube: np.ndarray, nodata: Optional[float] = None, mask=None) -> np.ndarray:
    """(h, w) bool: finite in every band, not all zeros, not nodata in every band, and ``mask``.

    Computed a few rows at a time, so the temporary (h, w, B) booleans stay small.
    """
    H, W = cube.shape[:2]
    valid = np.empty((H, W), dtype=bool)
    step = max(1, (16 * 2**20) // max(1, W * cube.shape[2]))
    nd = None if nodata is None or np.isnan(nodata) else nodata
    for r in range(0, H, step):
        X = np.asarray(cube[r:r + step])
        v = np.isfinite(X).all(axis=2) & (X != 0).any(axis=2)
        if nd is not None:
            v &= ~(X == nd).all(axis=2)
        valid[r:r + step] = v
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    return valid
