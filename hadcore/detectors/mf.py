"""MF: the clutter-matched filter of a target spectrum."""

from __future__ import annotations

import numpy as np

from ..params import Param
from ..targets import mf_scores
from .target_base import WhitenedTargetDetector, background_param, ridge_param, target_param

__all__ = ["MF"]


class MF(WhitenedTargetDetector):
    r"""Matched filter (Manolakis, Marden & Shaw 2003, sec. "Matched filter"): the projection of the whitened
    pixel on the whitened target, :math:`s^T z / s^T s` (:func:`hadcore.targets.matched_filter`): 1 at the
    target, 0 at the background mean, linear in the fill fraction of a sub-pixel target (an abundance estimate).

    Choices: background statistics from the whole scene (exact under streaming). ``scale`` ``zscore`` divides by
    the filter's background standard deviation instead (:func:`hadcore.targets.mf_zscore`): standard normal
    scores under a Gaussian background, the scale of methane matched-filter practice. SPy's ``matched_filter``
    computes the ``target`` scale to 1e-6 (``tests/test_targets.py``).

    Null law (:meth:`null_law`, the ``fpr:R`` threshold): on a Gaussian background whose mean and covariance are
    the ones whitened by, :math:`z \sim N(0, I_B)`, so :math:`s^T z \sim N(0, s^T s)` for the fixed whitened
    target :math:`s` (Manolakis, Marden & Shaw 2003, sec. "Matched filter": the filter output is Gaussian under
    H0; Kraut, Scharf & McWhorter 2001, the matched subspace detector with known covariance). Hence ``zscore``,
    :math:`s^T z / \sqrt{s^T s}`, is **standard normal** (``normal:0:1``), and ``target``,
    :math:`s^T z / s^T s`, is **normal(0, 1/sqrt(s^T s))**: its scale depends on the fitted background and
    target, so :meth:`null_law` on the ``target`` scale raises a one-line ParameterError before :meth:`fit` (or a
    run) and gives the law of the last fit after it. With the scene's own estimated statistics the mean and
    variance of the scores over the pixels of the fit are exactly 0 and the law's (to the (N-1)/N of the
    covariance estimate); the Gaussian shape is the assumption, and real backgrounds' heavier tails flag more
    than R.
    """

    name = "mf"
    null_distribution = "normal"  # N(0, 1) on the zscore scale, N(0, 1/(s^T s)) on the target scale
    title = "MF (matched filter, target)"
    summary = "Whitened projection of each pixel on the target spectrum: 1 at the target, 0 at the background mean."
    reference = ("D. Manolakis, D. Marden and G. A. Shaw, 'Hyperspectral image processing for automatic target "
                 "detection applications', Lincoln Laboratory Journal, 14(1):79-116, 2003.")
    params = (
        target_param(),
        Param("scale", "choice", "target", "target: 1 at the target spectrum; zscore: in background standard "
              "deviations.", choices=("target", "zscore")),
        background_param(),
        ridge_param(),
    )

    def _whitened_scores(self, pixels, w=None):
        return mf_scores(self.whitener_ if w is None else w, pixels, self.target_, zscore=self.scale == "zscore")

    def null_law(self, n_bands=None):
        """``normal:0:1`` on the ``zscore`` scale; ``normal:0:1/sqrt(s^T s)`` on the ``target`` scale, from the
        fitted background and target (a ParameterError before the fit). ``n_bands`` does not enter."""
        from ..errors import ParameterError
        from ..threshold import NullLaw

        if self.scale == "zscore":
            return NullLaw.normal(0.0, 1.0)
        if self._columns():
            raise ParameterError(f"{self.name}: with background=columns the target scale's null law differs from "
                                 "column to column; use scale=zscore for fpr: thresholds")
        w, t = getattr(self, "whitener_", None), getattr(self, "target_", None)
        if w is None or t is None:
            raise ParameterError(f"{self.name}: the null law of scale=target depends on the background; it is "
                                 "known after fit (or a run), or use scale=zscore")
        s = w(t)
        ss = float(s @ s)
        if not ss > 0 or not np.isfinite(ss):
            raise ParameterError(f"{self.name}: the target equals the background mean: no null law")
        return NullLaw.normal(0.0, 1.0 / np.sqrt(ss))

    def run_report(self, clear: bool = False):
        """The scores' null law from the run's fit, as the layer tag ``null_law`` (:mod:`hadcore.tags`)."""
        if self.scale == "target" and (getattr(self, "whitener_", None) is None or self._columns()):
            return {}
        return {"null_law": str(self.null_law())}
