"""ACE: the adaptive coherence (cosine) estimator of a target spectrum."""

from __future__ import annotations

import numpy as np

from ..base import Context
from ..params import Param
from ..targets import Whitener, ace as ace_scores
from .target_base import TargetDetector, target_param

__all__ = ["ACE"]


class ACE(TargetDetector):
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
        Param("ridge", "float", 1e-6, "Diagonal loading of a singular background covariance, relative to its mean "
              "variance.", min=1e-12, max=1.0),
    )
    test_params = {"target": ",".join(["1.5"] * 24)}

    def context(self):
        return Context(global_stats=True)

    def _fit(self, data, progress):
        B = data.shape[2]
        self.target_ = self.spectrum("target", B)
        self.mean_ = data.moments.mean
        self.cov_ = data.moments.cov()
        Whitener(self.mean_, self.cov_, self.ridge)  # a singular covariance fails here, once

    def _score(self, block, mask, progress):
        out = np.zeros(mask.shape)
        out[mask] = ace_scores(block[mask], self.target_, self.mean_, self.cov_, self.ridge, signed=self.signed)
        return out
