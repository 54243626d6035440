"""OSP: orthogonal subspace projection of a target spectrum against the background's principal components."""

from __future__ import annotations

import numpy as np

from ..params import Param
from ..targets import background_subspace, osp_filter
from .target_base import TargetDetector, target_param

__all__ = ["OSP"]


class OSP(TargetDetector):
    r"""Orthogonal subspace projection (Harsanyi & Chang 1994, sec. III, "Hyperspectral pixel classification":
    interference rejection by the projector :math:`P = I - U U^+`, then signal-to-noise maximisation by the
    operator :math:`d^T P`). Each pixel's difference from the background mean is projected on the complement of
    the background subspace :math:`U`, and matched with the target projected likewise:
    :math:`y = d^T P (x - \mu) / d^T P d` with :math:`d = t - \mu` (:func:`hadcore.targets.osp`).
    1 at the target, 0 at the background mean and on any pure background variation :math:`\mu + U\gamma`, linear
    in the fill fraction of a sub-pixel target (an abundance estimate).

    Choices:

    - :math:`U`, the undesired signatures, are the ``n_background`` leading eigenvectors of the whole scene's
      covariance (the statistics pass: exact under streaming and on Dask), not endmembers picked by hand as in
      the paper: the background's dominant variation is what interferes with the target. The targets enter
      these statistics, as in ACE and MF (unless the family's exclusion mask leaves them out, where the
      application sets one); a target common enough to own a leading component is annihilated with the
      background (then lower ``n_background``).
    - The mean is removed from pixel and target (the background is the affine subspace
      :math:`\mu + \mathrm{span}\,U`; the paper's signatures are uncentred endmembers), and the score is
      divided by :math:`d^T P d` (the least-squares abundance of Chang 2005, "OSP revisited"): the target
      scores 1 on any scene, whatever its units. Higher = more target-like.
    - ``n_background`` is clipped at fit time to B - 1 (so that :math:`P` keeps a direction to score along)
      and to the covariance's numerical rank (a direction of zero variance holds no background to annihilate
      and its eigenvector is arbitrary). Default 10: with 40 pixels of an implanted target on abu-urban-1 and
      abu-airport-1, one component leaves the clutter in (AUC 0.69 and 0.76 at 10 % fill) and 10 remove it
      (AUC 1.0), while at 30 % fill 20 to 40 components begin to take the implanted target's own direction
      (AUC 0.999 down to 0.89).
    - A target with less than 1e-6 of its energy (above the mean) outside the background subspace
      (:math:`d^T P d < 10^{-6} d^T d`) is a one-line :class:`~hadcore.errors.InputError` rather than scores
      of noise divided by almost zero; the remedy is fewer background components.
    - One target spectrum (the paper's extension to k targets classifies; ACE covers several targets).
    """

    name = "osp"
    title = "OSP (orthogonal subspace projection, target)"
    summary = ("Projects out the background's leading principal components, then matches the target: 1 at the "
               "target, 0 at the background mean.")
    reference = ("J. C. Harsanyi and C.-I Chang, 'Hyperspectral image classification and dimensionality reduction: "
                 "an orthogonal subspace projection approach', IEEE Trans. Geosci. Remote Sens., 32(4):779-785, "
                 "1994, doi:10.1109/36.298007.")
    params = (
        target_param(),
        Param("n_background", "int", 10, "Leading principal components of the background annihilated before "
              "matching (clipped to the bands less one).", min=1),
    )

    def context(self):
        # the statistics pass, without the pixels --exclude leaves out of the background (TargetDetector._context)
        return self._context(global_stats=True)

    def _fit(self, data, progress):
        target = self.spectrum("target", data.shape[2])
        self.mean_ = np.asarray(data.moments.mean, dtype=np.float64)
        self.background_ = background_subspace(data.moments.cov(), self.n_background)
        self.filter_ = osp_filter(target, self.mean_, self.background_)

    def _score(self, block, mask, progress):
        out = np.zeros(mask.shape)
        out[mask] = (block[mask] - self.mean_) @ self.filter_
        return out
