r"""Target detection statistics (issue 26): given a target spectrum and the background's statistics, how
target-like each pixel is. Numpy only; the statistics are the exact ones of the streaming statistics pass
(mean and covariance, or the correlation matrix for CEM), so a streamed scene scores as in memory.

Notation: background mean :math:`\mu`, covariance :math:`C = L L^T` (Cholesky), pixel :math:`x`, target
:math:`t`; whitened :math:`z = L^{-1}(x - \mu)` and :math:`s = L^{-1}(t - \mu)`.

- Matched filter, clutter-matched and normalised so that the target itself scores 1 (Manolakis, Marden & Shaw,
  "Hyperspectral image processing for automatic target detection applications", Lincoln Lab. J. 14(1), 2003,
  sec. "Matched filter"): :math:`y = s^T z / s^T s`. Under a Gaussian background, :math:`s^T z / \sqrt{s^T s}`
  is standard normal (:func:`mf_zscore`).
- ACE, the adaptive coherence (cosine) estimator (Kraut, Scharf & McWhorter, IEEE TSP 49(1), 2001; same
  reference, sec. "ACE"): the squared cosine of the angle between :math:`z` and :math:`s`,
  :math:`(s^T z)^2 / (s^T s \, z^T z)`, in [0, 1]; with several targets (a subspace :math:`S`), the share of
  :math:`z`'s energy in the span of :math:`S`: :math:`z^T P_S z / z^T z`. ``signed=True`` keeps the sign of
  :math:`s^T z` (the cosine itself), so that a pixel anti-correlated with the target scores low; the squared form
  is the published statistic and what SPy's ``ace`` computes.
- CEM, constrained energy minimisation (Harsanyi, PhD thesis, UMBC, 1993; Chang, "Hyperspectral Imaging",
  2003, ch. 2): the filter :math:`w = R^{-1} t / t^T R^{-1} t` on the uncentred correlation matrix
  :math:`R = E[x x^T]`, score :math:`w^T x` (the target scores 1).
- SAM, the spectral angle (Kruse et al., Remote Sens. Environ. 44, 1993): :math:`\arccos(x^T t / \|x\| \|t\|)`
  in radians (lower = more alike).
- SID, spectral information divergence (Chang, IEEE TIT 46(5), 2000): the symmetric Kullback-Leibler
  divergence of the spectra normalised to sum 1 (lower = more alike; spectra must be positive).
- OSP, orthogonal subspace projection (Harsanyi & Chang, IEEE TGRS 32(4), 1994, sec. III): the projector
  :math:`P = I - U U^+` annihilates the undesired (background) signatures, the columns of :math:`U`; the
  operator :math:`d^T P` then matches the target. Here on the background's affine subspace: :math:`d = t - \mu`
  and :math:`y = d^T P (x - \mu) / d^T P d`, so the target scores 1 and the background mean 0 (the
  least-squares abundance of the target, Chang, IEEE TGRS 43(3), 2005); :math:`U` is given
  (:func:`osp_scores`), or the leading eigenvectors of the background covariance (:func:`osp`,
  :func:`background_subspace`).

Covariances are regularised only when singular: a diagonal load of ``ridge`` times their mean variance.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import InputError, ParameterError

__all__ = ["Whitener", "matched_filter", "mf_zscore", "mf_scores", "ace", "ace_scores", "cem", "cem_scores",
           "spectral_angle", "sid", "background_subspace", "osp_filter", "osp_scores", "osp"]


class Whitener:
    """:math:`z = L^{-1}(x - \\mu)` for background statistics ``mean`` and ``cov`` (Cholesky, loaded by
    ``ridge`` x the mean variance when ``cov`` is not positive definite)."""

    def __init__(self, mean, cov, ridge: float = 1e-6):
        self.mean = np.asarray(mean, dtype=np.float64)
        C = np.asarray(cov, dtype=np.float64)
        if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[0] != self.mean.size:
            raise ParameterError(f"background statistics disagree: mean of {self.mean.size} bands, covariance "
                                 f"{C.shape}")
        try:
            self.L = np.linalg.cholesky(C)
        except np.linalg.LinAlgError:
            load = ridge * max(float(np.trace(C)) / C.shape[0], np.finfo(float).tiny)
            try:
                self.L = np.linalg.cholesky(C + load * np.eye(C.shape[0]))
            except np.linalg.LinAlgError:
                raise InputError("the background covariance is singular even after diagonal loading "
                                 "(constant or duplicated bands?)") from None

    def __call__(self, X) -> np.ndarray:
        """Whitened rows of ``X`` (N, B) (or a single spectrum (B,))."""
        from scipy.linalg import solve_triangular

        D = np.asarray(X, dtype=np.float64) - self.mean
        one = D.ndim == 1
        out = solve_triangular(self.L, np.atleast_2d(D).T, lower=True, check_finite=False).T
        return out[0] if one else out


def _target_direction(w: Whitener, target) -> np.ndarray:
    s = w(np.asarray(target, dtype=np.float64))
    if not np.all(np.isfinite(s)) or float(s @ s) <= 1e-24 * max(1.0, float(np.abs(s).max(initial=0.0))):
        raise ParameterError("the target equals the background mean (a zero vector after whitening): nothing "
                             "to detect; choose another target spectrum")
    return s


def _filter(w: Whitener, s: np.ndarray) -> np.ndarray:
    """The vector ``f`` with ``f^T (x - mu) = s^T z``: ``L^{-T} s`` (one solve; no pixel is whitened)."""
    from scipy.linalg import solve_triangular

    return solve_triangular(w.L, s, lower=True, trans="T", check_finite=False)


def mf_scores(w: Whitener, X, target, zscore: bool = False) -> np.ndarray:
    """Matched-filter scores of the rows of ``X`` against a prepared background ``w``: 1 at the target (or, with
    ``zscore``, in background standard deviations). The detectors fit ``w`` once and call this per block."""
    s = _target_direction(w, target)
    ss = float(s @ s)
    return (np.asarray(X, dtype=np.float64) - w.mean) @ (_filter(w, s) / (np.sqrt(ss) if zscore else ss))


def matched_filter(X, target, mean, cov, ridge: float = 1e-6) -> np.ndarray:
    """Matched-filter scores of the rows of ``X`` (N, B): 1 at the target, 0 at the background mean."""
    return mf_scores(Whitener(mean, cov, ridge), X, target)


def mf_zscore(X, target, mean, cov, ridge: float = 1e-6) -> np.ndarray:
    r"""The matched filter in units of its background standard deviation (standard normal under a Gaussian
    background): :math:`s^T z / \sqrt{s^T s}`."""
    return mf_scores(Whitener(mean, cov, ridge), X, target, zscore=True)


def ace_scores(w: Whitener, X, target, signed: bool = False) -> np.ndarray:
    """ACE scores of the rows of ``X`` against a prepared background ``w`` (see :func:`ace`)."""
    Z = w(X)
    zz = np.einsum("ij,ij->i", Z, Z)
    T = np.asarray(target, dtype=np.float64)
    if T.ndim == 1 or T.shape[0] == 1:
        s = _target_direction(w, T.reshape(-1))
        proj = Z @ s
        with np.errstate(invalid="ignore", divide="ignore"):
            cos2 = np.where(zz > 0, proj * proj / (float(s @ s) * zz), 0.0)
        return np.sign(proj) * np.sqrt(cos2) if signed else cos2
    if signed:
        raise ParameterError("a signed ACE needs one target spectrum, not a subspace")
    S = np.stack([_target_direction(w, t) for t in T], axis=1)  # (B, D) whitened targets
    Q, _ = np.linalg.qr(S)  # an orthonormal basis of their span: P_S = Q Q^T
    P = Z @ Q
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(zz > 0, np.einsum("ij,ij->i", P, P) / zz, 0.0)


def ace(X, target, mean, cov, ridge: float = 1e-6, signed: bool = False) -> np.ndarray:
    """ACE scores of the rows of ``X`` (N, B); ``target`` one spectrum (B,) or a subspace (D, B)."""
    return ace_scores(Whitener(mean, cov, ridge), X, target, signed)


def cem_scores(w: Whitener, X, target) -> np.ndarray:
    """CEM scores against a prepared ``w`` = ``Whitener(0, R)`` (see :func:`cem`): ``w^T x`` with
    ``w = R^-1 t / t^T R^-1 t``, i.e. ``(L^-1 t)^T (L^-1 x) / |L^-1 t|^2`` for ``R = L L^T``."""
    s = w(np.asarray(target, dtype=np.float64))
    ss = float(s @ s)
    if ss <= 0:
        raise ParameterError("the target is a zero vector")
    return np.asarray(X, dtype=np.float64) @ (_filter(w, s) / ss)


def cem(X, target, R, ridge: float = 1e-6) -> np.ndarray:
    """CEM scores of the rows of ``X`` with the uncentred correlation matrix ``R`` (B, B): 1 at the target."""
    return cem_scores(Whitener(np.zeros(np.shape(R)[0]), R, ridge), X, target)


def spectral_angle(X, target) -> np.ndarray:
    """Angle (radians, 0 to pi) between each row of ``X`` and ``target``; NaN for a zero pixel."""
    X = np.asarray(X, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    nt = np.linalg.norm(t)
    if nt == 0:
        raise ParameterError("the target is a zero vector")
    nx = np.linalg.norm(X, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (X @ t) / (nx * nt)
    return np.arccos(np.clip(c, -1.0, 1.0))


def sid(X, target, eps: Optional[float] = None) -> np.ndarray:
    """Spectral information divergence between each row of ``X`` and ``target`` (both positive spectra)."""
    X = np.asarray(X, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if np.any(t <= 0) or np.any(X[np.isfinite(X)] < 0):
        raise ParameterError("SID needs positive spectra (reflectance or radiance), not centred or negative values")
    e = np.finfo(float).tiny if eps is None else eps
    p = X / np.maximum(X.sum(axis=-1, keepdims=True), e)
    q = t / t.sum()
    p = np.maximum(p, e)
    return np.sum(p * np.log(p / q), axis=-1) + np.sum(q * np.log(q / p), axis=-1)


def background_subspace(cov, n_background: int) -> np.ndarray:
    """The leading eigenvectors of a background covariance ``cov`` (B, B): an orthonormal (B, k) basis of the
    background's ``k`` largest-variance directions, the largest first, with ``k = min(n_background, B - 1,
    rank)``: at most B - 1, so that :math:`P = I - U U^T` keeps a direction to score along; and no direction of
    zero variance (below ``B * eps`` of the largest eigenvalue), which holds no background to annihilate and
    whose basis would be arbitrary (a constant band, fewer pixels than bands)."""
    C = np.asarray(cov, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ParameterError(f"the background covariance must be square, got shape {C.shape}")
    if int(n_background) < 0:
        raise ParameterError(f"n_background must be 0 or more, got {n_background}")
    lam, V = np.linalg.eigh(0.5 * (C + C.T))
    lam, V = lam[::-1], V[:, ::-1]
    top = float(lam[0]) if lam.size else 0.0
    rank = int(np.count_nonzero(lam > max(top, 0.0) * C.shape[0] * np.finfo(float).eps)) if top > 0 else 0
    k = max(0, min(int(n_background), C.shape[0] - 1, rank))
    return np.ascontiguousarray(V[:, :k])


def osp_filter(target, mean, U, rtol: float = 1e-6) -> np.ndarray:
    r"""The vector ``f`` with OSP score ``(x - mean) @ f``: :math:`f = P d / d^T P d`, :math:`d = t - \mu`,
    :math:`P = I - U U^+` for undesired signatures ``U`` (B, k) (any full or deficient rank; an orthonormal
    ``U`` gives :math:`P = I - U U^T`). :math:`d^T P d` is computed as :math:`\|P d\|^2` (equal, as :math:`P`
    is a symmetric idempotent; never negative in floating point).

    A target whose difference from the mean keeps less than ``rtol`` of its energy outside the span of ``U``
    (:math:`\|P d\|^2 < rtol \, \|d\|^2`) lies in the background subspace: its scores would be noise divided
    by nearly zero, so it raises a one-line :class:`~hadcore.errors.InputError`."""
    t = np.asarray(target, dtype=np.float64).ravel()
    mu = np.asarray(mean, dtype=np.float64).ravel()
    U = np.asarray(U, dtype=np.float64)
    if U.ndim == 1:
        U = U[:, None]
    if t.size != mu.size or U.shape[0] != mu.size:
        raise ParameterError(f"OSP inputs disagree: target of {t.size} bands, mean of {mu.size}, background "
                             f"signatures {U.shape}")
    d = t - mu
    dd = float(d @ d)
    if not np.all(np.isfinite(d)) or dd <= 1e-24 * max(1.0, float(np.abs(mu).max(initial=0.0))) ** 2:
        raise ParameterError("the target equals the background mean (a zero vector after removing it): nothing "
                             "to detect; choose another target spectrum")
    Pd = d - U @ np.linalg.lstsq(U, d, rcond=None)[0] if U.shape[1] else d
    dPd = float(Pd @ Pd)
    if not dPd > rtol * dd:
        raise InputError(f"the target lies in the background subspace: only {dPd / dd:.1e} of its energy (above "
                         f"the background mean) is outside the {U.shape[1]} background components, below the "
                         f"tolerance {rtol:g}; lower n_background")
    return Pd / dPd


def osp_scores(X, target, mean, U, rtol: float = 1e-6) -> np.ndarray:
    r"""OSP scores of the rows of ``X`` (N, B): :math:`d^T P (x - \mu) / d^T P d` with :math:`d = t - \mu` and
    :math:`P = I - U U^+` for undesired signatures ``U`` (B, k): 1 at the target, 0 at the background mean and
    on any :math:`\mu + U \gamma` (see :func:`osp_filter`)."""
    return (np.asarray(X, dtype=np.float64) - np.asarray(mean, dtype=np.float64)) @ osp_filter(target, mean, U,
                                                                                                 rtol)


def osp(X, target, mean, cov, n_background: int = 10, rtol: float = 1e-6) -> np.ndarray:
    """OSP scores of the rows of ``X`` (N, B) against a background of mean ``mean`` whose ``n_background``
    leading principal components (of ``cov``, :func:`background_subspace`) are annihilated: 1 at the target."""
    return osp_scores(X, target, mean, background_subspace(cov, n_background), rtol)
