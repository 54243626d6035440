"""Global RX (Reed-Xiaoli) detector."""

from __future__ import annotations

import numpy as np

from ..base import Context, Detector
from ..linalg import inv_psd, mahalanobis_sq, mean_cov
from ..params import Param

__all__ = ["RX"]


class RX(Detector):
    r"""Global RX: squared Mahalanobis distance of each pixel to the scene's background model.

    .. math:: \delta_{RX}(x) = (x - \mu)^T \Sigma^{-1} (x - \mu)

    with :math:`\mu` the mean and :math:`\Sigma` the sample covariance (N-1 divisor) of all valid pixels,
    accumulated in float64 (Reed & Yu 1990, eq. 5 in its global form).

    Singular covariances (a constant band, more bands than pixels) are handled: with ``ridge = 0`` (default)
    the Moore-Penrose pseudo-inverse is used, which reproduces the manifest's reference AUCs; ``ridge > 0``
    adds ``ridge * trace(Sigma)/B`` to the diagonal instead. Under a Gaussian background the score of a
    background pixel follows a chi-square law with B degrees of freedom, which ``fpr:`` thresholds use.

    Context: whole-image statistics (mean and covariance), no spatial halo.
    """

    name = "rx"
    title = "RX (global Reed-Xiaoli)"
    summary = "Squared Mahalanobis distance to the global mean under the global covariance."
    reference = (
        "I. S. Reed and X. Yu, 'Adaptive multiple-band CFAR detection of an optical pattern with unknown "
        "spectral distribution', IEEE Trans. Acoust., Speech, Signal Process., 38(10):1760-1770, 1990."
    )
    family = "statistical"
    params = (
        Param("ridge", "float", 0.0, "Diagonal loading relative to mean variance (0 = pseudo-inverse).",
              min=0.0, max=1.0),
    )

    def context(self) -> Context:
        return Context(global_stats=True)

    def _detect(self, cube, mask, progress):
        H, W, B = cube.shape
        pixels = cube[mask]
        mu, cov = mean_cov(pixels)
        progress.update(0.3)
        icov = inv_psd(cov, ridge=self.ridge)
        scores = np.zeros((H, W))
        scores[mask] = mahalanobis_sq(pixels, mu, icov)
        return scores
