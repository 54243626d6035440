"""MF: the clutter-matched filter of a target spectrum."""

from __future__ import annotations

from ..params import Param
from ..targets import mf_scores
from .target_base import WhitenedTargetDetector, ridge_param, target_param

__all__ = ["MF"]


class MF(WhitenedTargetDetector):
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
        ridge_param(),
    )

    def _whitened_scores(self, pixels):
        return mf_scores(self.whitener_, pixels, self.target_, zscore=self.scale == "zscore")
