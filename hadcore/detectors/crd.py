"""Collaborative Representation Detector (CRD)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..params import Param
from ..threads import thread_budget
from .windows import DualWindowDetector, chunks, ring_index, ring_offsets

__all__ = ["CRD"]


class CRD(DualWindowDetector):
    r"""Collaborative Representation Detector: how badly the local background ring represents a pixel.

    Li & Du (2015), the CRD of the method section (Sec. III; section and equation numbers not
    re-checked against the published PDF). Each pixel :math:`y` (B,) is approximated by a
    linear combination of the :math:`s` pixels :math:`X_s` (B, s) of its dual-window ring, with a
    distance-weighted Tikhonov penalty:

    .. math::

        \hat\alpha = \arg\min_\alpha \|y - X_s\alpha\|_2^2 + \lambda\|\Gamma_y\alpha\|_2^2
                   = (X_s^T X_s + \lambda\,\Gamma_y^T\Gamma_y)^{-1} X_s^T y,
        \qquad \Gamma_y = \mathrm{diag}(\|y - x_1\|_2, \dots, \|y - x_s\|_2),

    and the score is the residual norm :math:`r = \|y - X_s\hat\alpha\|_2` (higher = more anomalous).
    Ring pixels that resemble :math:`y` are cheap to use, dissimilar ones are penalised.

    Choices where the paper is silent:

    - ``lam`` is dimensionless (both quadratic terms scale with the square of the data), so raw DN and
      [0, 1] cubes give the same scores up to a global factor; no rescaling is done.
    - Sum-to-one (``sum_to_one``, off by default): the weights are pushed towards
      :math:`\sum_i\alpha_i = 1` by appending a constant row :math:`c` to :math:`X_s` and to :math:`y`,
      as the comparison code of the authors' group does (a row of ones on a cube min-max scaled to
      [0, 1]). Here :math:`c` is the value range (max - min) of the valid pixels, which is that same
      row in the cube's own units; the score is still the residual of the spectral part only. Off by
      default: on the nine shared scenes it lowers the mean AUC (see ``bench/public_reference.tsv``).
    - A scale-free jitter of ``1e-12 * trace(G)/s`` is added to the Gram matrix so a degenerate ring
      (constant image, duplicated pixels equal to :math:`y`) still gives a finite answer.
    - Defaults: outer 11, inner 3, ``lam = 1e-2``. The paper sweeps windows and lambda per scene; comparison
      code by the authors' group uses ``lam = 1e-6`` with per-scene windows. On the nine shared scenes,
      3 / 11 with ``lam = 1e-6`` gives a mean AUC(PD,PF) of 0.889, with ``1e-2`` 0.973 and with ``1`` 0.973
      (global RX: 0.941): with ``lam`` that small the ring (112 pixels, fewer than the bands) acts as
      an almost unpenalised least-squares basis that absorbs too much of an anomaly.

    Scaling: local, exact under tiling (a halo of ``outer // 2`` pixels).

    Window and border rule: the ring is the ``outer`` x ``outer`` square minus the ``inner`` x ``inner``
    square around the pixel; windows are clipped at the image border; the ring holds only valid pixels
    inside the image (:mod:`hadcore.detectors.windows`). A valid pixel whose ring is empty scores :math:`\|y\|_2`.

    Computation, float64: every entry of a ring's Gram matrix :math:`X_s^T X_s`, of :math:`X_s^T y` and
    :math:`\|y\|^2` is an inner product of two pixels at most ``outer - 1`` apart, so these are computed once
    per pixel and lag (small GEMMs along image rows) and each ring's Gram matrix is gathered from them;
    the residual norm follows from the same products, :math:`\|y\|^2 - 2\hat\alpha^T X_s^T y +
    \hat\alpha^T X_s^T X_s \hat\alpha`. One LAPACK Cholesky solve per pixel, in worker threads with one
    BLAS thread each. On a 100 x 100 x 205 scene this is 19 s -> 1.2 s (2 cores, loaded) against gathered
    spectra and numpy's batched solve; windows over 21 pixels gather spectra (the lags would outgrow the
    block).
    """

    name = "crd"
    title = "CRD (collaborative representation)"
    summary = "Residual of each pixel's distance-weighted ridge representation by its dual-window ring."
    reference = (
        "W. Li and Q. Du, 'Collaborative representation for hyperspectral anomaly detection', IEEE Trans. "
        "Geosci. Remote Sens., 53(3):1463-1474, 2015, doi:10.1109/TGRS.2014.2343955."
    )
    family = "representation"
    params = (
        Param("inner", "int", 3, "Inner (guard) window size in pixels, odd.", min=1, max=99, odd=True),
        Param("outer", "int", 11, "Outer window size in pixels, odd, larger than inner.", min=3, max=101,
              odd=True),
        Param("lam", "float", 1e-2, "Tikhonov regularisation weight lambda (dimensionless).", min=0.0,
              max=1e6),
        Param("sum_to_one", "bool", False, "Push the representation weights to sum to one (an appended "
              "constant row, as in the authors' group's code).", ),
    )

    #: the lag-product path holds (2h + 1) (4h + 1) float64 per pixel (h = outer // 2): 231 at 3 / 11;
    #: beyond this many it falls back to gathering the ring's spectra (windows over 21 pixels)
    MAX_LAGS = 1024

    def _lags(self) -> int:
        h = self.outer // 2
        return (2 * h + 1) * (4 * h + 1)

    def working_bytes(self, h, w, bands):
        ho = self.outer // 2
        L = self.outer ** 2 - self.inner ** 2
        if self._lags() <= self.MAX_LAGS:
            # the zero-padded copy, the lag products, the (chunk, L, L) Gram matrices of each worker
            return ((h + 4 * ho) * (w + 6 * ho) * bands * 8 + (h + 2 * ho) * (w + 2 * ho) * self._lags() * 8
                    + 2 * thread_budget(_MAX_WORKERS) * _CHUNK * L * L * 8 + 16 * h * w)
        return super().working_bytes(h, w, bands)

    def _detect(self, cube, mask, progress):
        H, W, B = cube.shape
        # scipy.linalg imported before threadpool_limits so that its BLAS is limited too
        import scipy.linalg.blas  # noqa: F401
        import scipy.linalg.lapack  # noqa: F401
        from threadpoolctl import threadpool_limits

        c2 = 0.0
        if self.sum_to_one and mask.any():
            c2 = float(np.ptp(cube[mask])) ** 2
        with threadpool_limits(1):  # many small BLAS/LAPACK calls: threads per call only contend
            if self._lags() <= self.MAX_LAGS:
                return self._detect_lags(cube, mask, c2, progress)
            return self._detect_gather(cube, mask, c2, progress)

    def _solve(self, G, Xy, yy, okb, c2, out):
        """Scores of a chunk from its Gram matrices G (n, L, L) (overwritten), X^T y (n, L) and ||y||^2 (n,):
        one LAPACK Cholesky solve per pixel (numpy's batched solve was 28 x slower here)."""
        from scipy.linalg.lapack import dposv

        L = G.shape[1]
        Gd = np.diagonal(G, axis1=1, axis2=2)
        d2 = np.maximum(Gd - 2.0 * Xy + yy[:, None], 0.0) * okb
        tr = Gd.sum(axis=1) / L
        jitter = 1e-12 * np.where(tr > 0, tr, 1.0)
        # missing members: identity row/column and zero right-hand side -> alpha = 0
        diag = self.lam * d2 + jitter[:, None] + (~okb)
        Xs = Xy  # the spectral part of X^T y (the residual is of the spectral part only)
        rhs = Xy
        if c2:  # the appended constant row, on present ring members only
            wgt = okb.astype(float)
            rhs = Xy + c2 * wgt
        Gspec = G.copy() if c2 else None
        if c2:
            G += c2 * wgt[:, :, None] * wgt[:, None, :]
        G[:, np.arange(L), np.arange(L)] += diag
        alpha = np.empty_like(rhs)
        for i in range(G.shape[0]):
            _, x, info = dposv(G[i], rhs[i], lower=1)
            if info != 0:  # not positive definite to working precision: a general solve
                x = np.linalg.lstsq(G[i], rhs[i], rcond=None)[0]
            alpha[i] = x
        # ||y - X a||^2 = ||y||^2 - 2 a.X^T y + a.(X^T X) a, with X^T X = (regularised G) - diag(...)
        if c2:
            quad = np.einsum("nl,nlm,nm->n", alpha, Gspec, alpha)
        else:
            G[:, np.arange(L), np.arange(L)] -= diag
            quad = np.einsum("nl,nlm,nm->n", alpha, G, alpha)
        r2 = yy - 2.0 * np.einsum("nl,nl->n", alpha, Xs) + quad
        out[:] = np.sqrt(np.maximum(r2, 0.0))

    def _detect_lags(self, cube, mask, c2, progress):
        """Gram matrices assembled from lag products, never from gathered spectra.

        Every entry of a ring's Gram matrix, of X^T y and of ||y||^2 is an inner product of two pixels at
        most 2h apart (h = outer // 2). Those products are computed once per pixel and lag
        (:func:`_lag_products`: small GEMMs along image rows), (2h + 1)(4h + 1) of them, and each ring's
        L x L Gram matrix is a gather from them: about 13 x fewer flops than L^2 B per pixel and no
        (L, B) copy of every ring (a 3 / 11 ring of a 224-band scene: 112 x 224 values per pixel).
        """
        H, W, B = cube.shape
        h = self.outer // 2
        dy, dx = ring_offsets(self.inner, self.outer)
        L = dy.size
        K = _lag_products(cube, h)  # (H + 2h, W + 2h, 2h + 1, 4h + 1)
        Wk, nR, nC = K.shape[1], K.shape[2], K.shape[3]
        S = nR * nC
        Kf = K.reshape(-1)
        # offsets into Kf of every Gram entry (i, j), anchored at the member with the smaller row offset
        a_first = dy[:, None] <= dy[None, :]
        ay = np.where(a_first, dy[:, None], dy[None, :])
        ax = np.where(a_first, dx[:, None], dx[None, :])
        ddy = np.abs(dy[None, :] - dy[:, None])
        ddx = np.where(a_first, dx[None, :] - dx[:, None], dx[:, None] - dx[None, :])
        off_g = ((ay * Wk + ax) * S + ddy * nC + ddx + 2 * h).ravel()
        # X^T y: anchored at the member when it lies above (or on) the centre's row, else at the centre
        up = dy <= 0
        off_xy = np.where(up, (dy * Wk + dx) * S + (-dy) * nC + (-dx + 2 * h), dy * nC + dx + 2 * h)
        off_yy = 2 * h
        maskp = np.zeros((H + 2 * h, W + 2 * h), dtype=bool)
        maskp[h:h + H, h:h + W] = mask
        centres = np.flatnonzero(mask)
        rows, cols = centres // W, centres % W
        base = ((rows + h) * Wk + (cols + h)) * S
        n = centres.size
        scores = np.zeros(H * W)
        jobs = list(chunks(n, _CHUNK))
        done = [0]

        def run(sl):
            b = base[sl]
            G = Kf[b[:, None] + off_g[None, :]].reshape(-1, L, L)
            Xy = Kf[b[:, None] + off_xy[None, :]]
            yy = Kf[b + off_yy]
            okb = maskp[rows[sl, None] + h + dy[None, :], cols[sl, None] + h + dx[None, :]]
            out = np.empty(b.size)
            self._solve(G, Xy, yy, okb, c2, out)
            scores[centres[sl]] = out
            done[0] += b.size
            progress.update(done[0] / max(n, 1))

        _run_jobs(run, jobs)
        return scores.reshape(H, W)

    def _detect_gather(self, cube, mask, c2, progress):
        """Large windows: gather each ring's spectra and form its Gram matrix directly."""
        H, W, B = cube.shape
        flat = cube.reshape(H * W, B)
        centres = np.flatnonzero(mask)
        scores = np.zeros(H * W)
        idx, ok = ring_index(mask, self.inner, self.outer, centres)
        L = idx.shape[1]
        n = centres.size
        done = [0]
        step = max(1, min(_CHUNK, int(4_000_000 // (L * B))))

        def run(sl):
            y = flat[centres[sl]]  # (n, B)
            okb = ok[sl]
            X = flat[idx[sl]] * okb[:, :, None]  # (n, L, B), missing members zeroed
            G = np.matmul(X, X.transpose(0, 2, 1))  # (n, L, L)
            Xy = np.matmul(X, y[:, :, None])[:, :, 0]
            out = np.empty(y.shape[0])
            self._solve(G, Xy, np.einsum("nb,nb->n", y, y), okb, c2, out)
            scores[centres[sl]] = out
            done[0] += y.shape[0]
            progress.update(done[0] / max(n, 1))

        _run_jobs(run, list(chunks(n, step)))
        return scores.reshape(H, W)


#: pixels per chunk of Gram matrices (256 x 112 x 112 float64: 26 MB); at most 8 worker threads (LAPACK
#: releases the GIL; one BLAS thread each), fewer when the engine's thread budget is smaller
_CHUNK = 256
_MAX_WORKERS = 8


def _run_jobs(run, jobs):
    n_workers = thread_budget(_MAX_WORKERS)
    if len(jobs) <= 1 or n_workers == 1:
        for j in jobs:
            run(j)
        return
    with ThreadPoolExecutor(max_workers=min(n_workers, len(jobs))) as ex:
        for _ in ex.map(run, jobs):
            pass


def _lag_products(X: np.ndarray, h: int, cols: int = 48) -> np.ndarray:
    """K[R, C, dr, dc + 2h] = <x(R - h, C - h), x(R - h + dr, C - h + dc)> for the (H + 2h) x (W + 2h) anchors
    around a (H, W, B) image (zeros outside it), 0 <= dr <= 2h, |dc| <= 2h.

    Per anchor row and lag row, the products of ``cols`` anchors with the ``cols + 4h`` pixels they reach
    are one small GEMM, whose 4h + 1 diagonals are the wanted lags.
    """
    H, W, B = X.shape
    Xp = np.zeros((H + 4 * h, W + 6 * h, B))
    Xp[h:h + H, 3 * h:3 * h + W] = X
    Hk, Wk = H + 2 * h, W + 2 * h
    nR, nC = 2 * h + 1, 4 * h + 1
    K = np.empty((Hk, Wk, nR, nC))
    for R in range(Hk):
        A = Xp[R, 2 * h:2 * h + Wk]  # (Wk, B) anchors
        for dr in range(nR):
            Bm = Xp[R + dr]  # (W + 6h, B)
            for k0 in range(0, Wk, cols):
                k1 = min(k0 + cols, Wk)
                M = A[k0:k1] @ Bm[k0:k1 + 4 * h].T  # (s, s + 4h): M[k, m] = <A[k0 + k], Bm[k0 + m]>
                s = k1 - k0
                D = np.lib.stride_tricks.as_strided(M, shape=(s, nC), strides=(M.strides[0] + M.strides[1],
                                                                               M.strides[1]))
                K[R, k0:k1, dr] = D  # D[k, j] = M[k, k + j]: lag dc = j - 2h
    return K
