"""Spectral resampling: spectra measured on one band set, seen through another sensor's band responses.

A sensor band ``j`` with centre :math:`c_j` and full width at half maximum :math:`f_j` records the spectrum
weighted by its spectral response function (SRF), modelled as a Gaussian of standard deviation
:math:`f_j / (2\\sqrt{2 \\ln 2})`. The source spectrum is known only at its own band centres; between them it is
taken as piecewise linear, so the resampled band is the SRF-weighted integral of that interpolant, computed on a
1 nm grid. This is the usual simulation of one sensor from another's data (e.g. the ENVI "Spectral Resampling"
tool with FWHM, and spectral-library convolution in EnMAP-Box), written once here so that the benchmark's sensor
variants and the library matching resample the same way.

Nothing is extrapolated: a target band whose response reaches beyond the source's first or last band centre (by
more than half its FWHM), or whose centre falls in a gap of the source grid wider than ``max_gap`` nm (the water
-vapour windows that a processed scene has removed), is reported as not covered and dropped by the caller.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import ParameterError

__all__ = ["response_matrix", "resample_spectra", "FWHM_TO_SIGMA"]

#: a Gaussian's standard deviation per unit FWHM
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def response_matrix(src_nm: Sequence[float], dst_nm: Sequence[float], dst_fwhm_nm: Optional[Sequence[float]] = None,
                    max_gap: float = 30.0, step: float = 1.0,
                    edges: str = "whole") -> Tuple[np.ndarray, np.ndarray]:
    """The (n_dst, n_src) matrix ``M`` such that ``M @ spectrum_src`` is the spectrum on the destination bands,
    and a boolean ``covered`` per destination band (rows of uncovered bands are zero).

    ``dst_fwhm_nm`` None: linear interpolation at the destination centres (no band response known).
    ``src_nm`` must be strictly increasing. ``edges``: ``"whole"`` (a band whose response's half-maximum points
    lie outside the source range is not covered: the sensor simulations of the benchmark) or ``"centre"`` (a band
    whose centre lies inside the range is covered, its response truncated at the range's end and renormalised:
    at least half of it is measured; a library sampled on the scene's own band centres covers every band).
    """
    src = np.asarray(src_nm, dtype=float)
    dst = np.asarray(dst_nm, dtype=float)
    if src.ndim != 1 or src.size < 2 or np.any(np.diff(src) <= 0):
        raise ParameterError("spectral resampling needs at least 2 source wavelengths, strictly increasing")
    fwhm = None if dst_fwhm_nm is None else np.broadcast_to(np.asarray(dst_fwhm_nm, dtype=float), dst.shape)
    # interval of the source grid each destination centre falls in, and whether that interval is a gap
    k = np.clip(np.searchsorted(src, dst) - 1, 0, src.size - 2)
    in_gap = (src[k + 1] - src[k]) > max_gap
    half = np.zeros_like(dst) if fwhm is None else fwhm / 2.0
    if edges == "centre":
        tol = 0.01  # nm: wavelengths written to a header with fewer decimals than the scene's
        covered = (dst >= src[0] - tol) & (dst <= src[-1] + tol) & ~in_gap
    else:
        covered = (dst - half >= src[0] - 1e-9) & (dst + half <= src[-1] + 1e-9) & ~in_gap
    M = np.zeros((dst.size, src.size))
    if fwhm is None:
        t = (dst - src[k]) / (src[k + 1] - src[k])
        rows = np.flatnonzero(covered)
        M[rows, k[rows]] = 1.0 - t[rows]
        M[rows, k[rows] + 1] = t[rows]
        return M, covered
    grid = np.arange(src[0], src[-1] + step / 2, step)
    # linear-interpolation weights of every grid point on the source bands: (n_grid, n_src), two per row
    g = np.clip(np.searchsorted(src, grid, side="right") - 1, 0, src.size - 2)
    t = (grid - src[g]) / (src[g + 1] - src[g])
    L = np.zeros((grid.size, src.size))
    L[np.arange(grid.size), g] = 1.0 - t
    L[np.arange(grid.size), g + 1] += t
    for j in np.flatnonzero(covered):
        s = fwhm[j] * FWHM_TO_SIGMA
        w = np.exp(-0.5 * ((grid - dst[j]) / s) ** 2)
        w[w < 1e-4] = 0.0
        M[j] = (w @ L) / w.sum()
    return M, covered


def resample_spectra(values: np.ndarray, src_nm, dst_nm, dst_fwhm_nm=None, max_gap: float = 30.0):
    """Spectra on the last axis of ``values`` resampled to the covered destination bands; returns
    ``(resampled, covered)`` where ``resampled`` has ``covered.sum()`` bands (dtype of ``values`` if floating)."""
    M, covered = response_matrix(src_nm, dst_nm, dst_fwhm_nm, max_gap=max_gap)
    v = np.asarray(values)
    if v.shape[-1] != M.shape[1]:
        raise ParameterError(f"spectra have {v.shape[-1]} bands but {M.shape[1]} source wavelengths were given")
    out = v @ M[covered].T.astype(v.dtype if np.issubdtype(v.dtype, np.floating) else np.float64)
    return out, covered
