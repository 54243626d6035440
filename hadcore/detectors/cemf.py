"""CEM: constrained energy minimisation for a target spectrum."""

from __future__ import annotations

import numpy as np

from ..targets import cem_scores
from .target_base import WhitenedTargetDetector, background_param, ridge_param, target_param

__all__ = ["CEMF"]


class CEMF(WhitenedTargetDetector):
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
        background_param(),
        ridge_param("correlation matrix, relative to its mean diagonal"),
    )

    def _background(self, moments):
        mu = moments.mean
        return np.zeros_like(mu), moments.cov(ddof=0) + np.outer(mu, mu)

    def _whitened_scores(self, pixels, w=None):
        return cem_scores(self.whitener_ if w is None else w, pixels, self.target_)
