"""CEM: constrained energy minimisation for a target spectrum."""

from __future__ import annotations

import numpy as np

from ..base import Context
from ..params import Param
from ..targets import Whitener, cem
from .target_base import TargetDetector, target_param

__all__ = ["CEMF"]


class CEMF(TargetDetector):
    r"""CEM (Harsanyi 1993; Chang, "Hyperspectral Imaging", 2003, ch. 2): the FIR filter that passes the target
    with gain 1 and minimises the output energy over the scene, :math:`w = R^{-1} t / t^T R^{-1} t` with the
    uncentred correlation matrix :math:`R = E[x x^T]` (:func:`hadcore.targets.cem`).

    Choices: :math:`R` from the statistics pass (``cov (n - 1) / n + mu mu^T``: exact under streaming); no
    background mean is removed, as in the published filter (the difference from the matched filter).
    """

    name = "cemf"
    title = "CEM (constrained energy minimisation, target)"
    summary = "Filter with unit gain on the target that minimises the scene's output energy."
    reference = ("J. C. Harsanyi, 'Detection and classification of subpixel spectral signatures in hyperspectral "
                 "image sequences', PhD thesis, University of Maryland Baltimore County, 1993; C.-I Chang, "
                 "'Hyperspectral Imaging', Kluwer, 2003, ch. 2.")
    params = (
        target_param(),
        Param("ridge", "float", 1e-6, "Diagonal loading of a singular correlation matrix, relative to its mean "
              "diagonal.", min=1e-12, max=1.0),
    )
    test_params = {"target": ",".join(["1.5"] * 24)}

    def context(self):
        return Context(global_stats=True)

    def _fit(self, data, progress):
        self.target_ = self.spectrum("target", data.shape[2])
        m = data.moments
        mu = m.mean
        self.R_ = m.cov(ddof=0) + np.outer(mu, mu)
        Whitener(np.zeros_like(mu), self.R_, self.ridge)

    def _score(self, block, mask, progress):
        out = np.zeros(mask.shape)
        out[mask] = cem(block[mask], self.target_, self.R_, self.ridge)
        return out
