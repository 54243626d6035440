"""Shared statistics used by several detectors (float64 throughout)."""

from __future__ import annotations

import numpy as np

__all__ = ["mean_cov", "inv_psd", "mahalanobis_sq"]


def mean_cov(X: np.ndarray):
    """Mean (B,) and sample covariance (B, B) of the rows of X (N, B), ``ddof=1`` (N-1 divisor)."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    mu = X.mean(axis=0)
    Xc = X - mu
    cov = (Xc.T @ Xc) / max(n - 1, 1)
    return mu, cov


def inv_psd(C: np.ndarray, ridge: float = 0.0, rcond: float = 1e-15) -> np.ndarray:
    """Inverse of a symmetric positive semi-definite matrix.

    ``ridge`` > 0 adds ``ridge * trace(C)/B`` to the diagonal (scale-free Tikhonov term) and then inverts;
    ``ridge == 0`` uses the Moore-Penrose pseudo-inverse (eigenvalues below ``rcond`` times the largest are
    dropped), so a singular covariance (constant band, more bands than pixels) is handled.
    """
    C = np.asarray(C, dtype=np.float64)
    C = 0.5 * (C + C.T)
    B = C.shape[0]
    if ridge > 0:
        scale = np.trace(C) / B
        if not np.isfinite(scale) or scale <= 0:
            scale = 1.0
        C = C + (ridge * scale) * np.eye(B)
    w, V = np.linalg.eigh(C)
    wmax = w.max() if w.size else 0.0
    if wmax <= 0:
        return np.zeros_like(C)
    keep = w > rcond * wmax
    Vk = V[:, keep]
    return (Vk / w[keep]) @ Vk.T


def mahalanobis_sq(X: np.ndarray, mu: np.ndarray, icov: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Squared Mahalanobis distance of every row of X (N, B) to ``mu`` under ``icov``; chunked."""
    n = X.shape[0]
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, chunk):
        D = np.asarray(X[s : s + chunk], dtype=np.float64) - mu
        out[s : s + chunk] = np.einsum("ij,ij->i", D @ icov, D)
    return out
