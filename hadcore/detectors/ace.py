"""ACE: the adaptive coherence (cosine) estimator of a target spectrum."""

from __future__ import annotations

from ..params import Param
from ..targets import ace_scores
from .target_base import WhitenedTargetDetector, background_param, ridge_param, target_param

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

    Null law (:meth:`null_law`, the ``fpr:R`` threshold): on a Gaussian background whose mean and covariance are
    the ones whitened by, :math:`z \sim N(0, I_B)` is isotropic: :math:`z = r u` with :math:`u` uniform on the
    unit sphere, independent of :math:`r = \|z\|`, so ACE, :math:`\cos^2 = (s^T u)^2 / s^T s`, is the squared
    first coordinate of :math:`u` after a rotation taking :math:`s` to the first axis:
    :math:`z_1^2 / (z_1^2 + \sum_{i \ge 2} z_i^2)`, a ratio of independent :math:`\chi^2_1` and
    :math:`\chi^2_{B-1}`, i.e. **Beta(1/2, (B-1)/2)** whatever the target (Kraut, Scharf & McWhorter 2001,
    sec. IV, the CFAR property of the adaptive coherence estimator; Manolakis, Marden & Shaw 2003, sec. "ACE",
    its distribution under H0). ``signed``: the cosine :math:`c = u_1` is symmetric about 0 with
    :math:`c^2 \sim` Beta(1/2, (B-1)/2), so :math:`P(c > t) = P(c^2 > t^2) / 2` for :math:`t \ge 0` (the
    ``signed-beta`` law). The scene's own estimated statistics make the law approximate, closer as the pixel
    count grows beyond the band count; real backgrounds' heavier tails flag more than R.
    """

    name = "ace"
    null_distribution = "beta"  # Beta(1/2, (B-1)/2) on a Gaussian background; signed: its signed-beta law
    title = "ACE (adaptive coherence estimator, target)"
    summary = "Squared cosine between each pixel and the target spectrum, both whitened by the background."
    reference = ("S. Kraut, L. L. Scharf and L. T. McWhorter, 'Adaptive subspace detectors', IEEE Trans. Signal "
                 "Process., 49(1):1-16, 2001, doi:10.1109/78.890324.")
    params = (
        target_param(),
        Param("signed", "bool", False, "Keep the sign of the correlation (the cosine): anti-target pixels score "
              "lowest."),
        background_param(),
        ridge_param(),
    )

    def _whitened_scores(self, pixels, w=None):
        return ace_scores(self.whitener_ if w is None else w, pixels, self.target_, signed=self.signed)

    def null_law(self, n_bands=None):
        """``beta:0.5:(B-1)/2`` (``signed-beta`` with ``signed``) for ``n_bands`` = B bands (default: the bands
        it was fitted on); needs no fitted state, only B (see the class docstring)."""
        from ..errors import ParameterError
        from ..threshold import NullLaw

        B = n_bands or getattr(self, "fitted_bands_", None)
        if not B or int(B) < 2:
            raise ParameterError(f"{self.name}: the null law needs the band count of the input (2 or more), "
                                 f"got {B!r}")
        a, b = 0.5, 0.5 * (int(B) - 1)
        return NullLaw.signed_beta(a, b) if self.signed else NullLaw.beta(a, b)

    def run_report(self, clear: bool = False):
        """The scores' null law on the bands of the run, as the layer tag ``null_law`` (:mod:`hadcore.tags`)."""
        B = getattr(self, "fitted_bands_", None)
        return {"null_law": str(self.null_law(B))} if B else {}
