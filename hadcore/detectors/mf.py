"""MF: the clutter-matched filter of a target spectrum."""

from __future__ import annotations

import numpy as np

from ..base import Context
from ..params import Param
from ..targets import Whitener, matched_filter, mf_zscore
from .target_base import TargetDetector, target_param

__all__ = ["MF"]


class MF(TargetDetector):
    r"""Matched filter (Manolakis, Marden & Shaw 2003, sec. "Matched filter"): the projection of the whitened
    pixel on the whitened target, :math:`s^T z / s^T s` (:func:`hadcore.targets.matched_filter`): 1 at the
    target, 0 at the background mean, linear in the fill fraction of a sub-pixel target (an abundance estimate).

    Choices: background statistics from the whole scene (exact under streaming). ``scale`` ``zscore`` divides by
    the filter's background standard deviation instead (:func:`hadcore.targets.mf_zscore`): standard normal
    scores under a Gaussian background, the scale of methane matched-filter practice. SPy's ``matched_filter``
    computes the ``target`` scale to 1e-6 (``tests/test_targets.py``).
    """

    name = "mf"
    title = "MF (matched filter, target)"
    summary = "Whitened projection of each pixel on the target spectrum: 1 at the target, 0 at the background mean."
    reference = ("D. Manolakis, D. Marden and G. A. Shaw, 'Hyperspectral image processing for automatic target "
                 "detection applications', Lincoln Laboratory Journal, 14(1):79-116, 2003.")
    params = (
        target_param(),
        Param("scale", "choice", "target", "target: 1 at the target spectrum; zscore: in background standard "
              "deviations.", choices=("target", "zscore")),
        Param("ridge", "float", 1e-6, "Diagonal loading of a singular background covariance, relative to its mean "
              "variance.", min=1e-12, max=1.0),
    )
    test_params = {"target": ",".join(["1.5"] * 24)}

    def context(self):
        return Context(global_stats=True)

    def _fit(self, data, progress):
        self.target_ = self.spectrum("target", data.shape[2])
        self.mean_ = data.moments.mean
        self.cov_ = data.moments.cov()
        Whitener(self.mean_, self.cov_, self.ridge)

    def _score(self, block, mask, progress):
        out = np.zeros(mask.shape)
        fn = mf_zscore if self.scale == "zscore" else matched_filter
        out[mask] = fn(block[mask], self.target_, self.mean_, self.cov_, self.ridge)
        return out
