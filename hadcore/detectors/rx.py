"""Global RX (Reed-Xiaoli) detector."""

from __future__ import annotations

import numpy as np

from ..base import Context, Detector
from ..linalg import inv_psd, mahalanobis_sq
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

    Scaling: two passes, exact under tiling. The fit takes the mean and covariance from the mergeable
    statistics of the first pass (:class:`hadcore.stats.Moments`, float64); the score pass scores each block
    on its own (no halo). Streamed scores equal in-memory ones to float rounding.
    """

    name = "rx"
    title = "RX (global Reed-Xiaoli)"
    summary = "Squared Mahalanobis distance to the global mean under the global covariance."
    reference = (
        "I. S. Reed and X. Yu, 'Adaptive multiple-band CFAR detection of an optical pattern with unknown "
        "spectral distribution', IEEE Trans. Acoust., Speech, Signal Process., 38(10):1760-1770, 1990."
    )
    family = "statistical"
    null_distribution = "chi2"  # Mahalanobis distance of Gaussian background: chi-square with B dof (Sec. II)
    params = (
        Param("ridge", "float", 0.0, "Diagonal loading relative to mean variance (0 = pseudo-inverse).",
              min=0.0, max=1.0),
    )

    def context(self) -> Context:
        return Context(global_stats=True)

    def _fit(self, data, progress):
        self.mean_ = data.moments.mean
        self.icov_ = inv_psd(data.moments.cov(), ridge=self.ridge)

    def _score(self, block, mask, progress):
        if mask.all():  # no gathered copy of the block
            return mahalanobis_sq(block.reshape(-1, block.shape[2]), self.mean_, self.icov_).reshape(mask.shape)
        scores = np.zeros(mask.shape)
        scores[mask] = mahalanobis_sq(block[mask], self.mean_, self.icov_)
        return scores

    def working_bytes(self, h, w, bands):
        # the valid pixels gathered (N x B; none when all are valid, but the plan cannot know) plus one
        # 16384-row chunk of D and D @ icov
        return h * w * bands * 8 + 2 * min(h * w, 16384) * bands * 8
