"""ACE: the adaptive coherence (cosine) estimator of a target spectrum."""

from __future__ import annotations

from ..params import Param
from ..targets import ace_scores
from .target_base import WhitenedTargetDetector, ridge_param, target_param

__all__ = ["ACE"]


class ACE(WhitenedTargetDetector):
    r"""ACE (Kraut, Scharf & McWhorter 2001; Manolakis, Marden & Shaw 2003, sec. "ACE"): the squared cosine of
    the angle between a pixel and the target after whitening by the background,
    :math:`(s^T z)^2 / (s^T s \, z^T z)` with :math:`z = L^{-1}(x - \mu)`, :math:`s = L^{-1}(t - \mu)`,
    :math:`C = L L^T` (:func:`hadcore.targets.ace`). 1 = the target's direction, 0 = orthogonal to it.

    Choices: the background mean and covariance are the whole scene's (the statistics pass: exact under
    streaming and on Dask); the targets themselves enter them, as in the published detector, which is robust to
    that because it normalises by the pixel's own whitened energy. ``signed`` keeps the sign of :math:`s^T z`
    (the cosine), so that pixels anti-correlated with the target score lowest; the default is the published,
    squared statistic (SPy's ``ace`` computes the same to 1e-6, ``tests/test_targets.py``).
    """

    name = "ace"
    title = "ACE (adaptive coherence estimator, target)"
    summary = "Squared cosine between each pixel and the target spectrum, both whitened by the background."
    reference = ("S. Kraut, L. L. Scharf and L. T. McWhorter, 'Adaptive subspace detectors', IEEE Trans. Signal "
                 "Process., 49(1):1-16, 2001, doi:10.1109/78.890324.")
    params = (
        target_param(),
        Param("signed", "bool", False, "Keep the sign of the correlation (the cosine): anti-target pixels score "
              "lowest."),
        ridge_param(),
    )

    def _whitened_scores(self, pixels):
        return ace_scores(self.whitener_, pixels, self.target_, signed=self.signed)
