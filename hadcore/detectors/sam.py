"""SAM: the spectral angle to a target spectrum."""

from __future__ import annotations

import numpy as np

from ..base import Context
from ..targets import spectral_angle
from .target_base import TargetDetector, target_param

__all__ = ["SAM"]


class SAM(TargetDetector):
    r"""Spectral angle mapper (Kruse et al. 1993): the cosine of the angle between each pixel and the target,
    :math:`x^T t / \|x\| \|t\|` (:func:`hadcore.targets.spectral_angle`): 1 = the same spectral shape, at any
    brightness. No background statistics: each pixel on its own (exact on any tiling).

    Choice: the cosine rather than the angle, so that higher means more target-like (hadcore's convention);
    the angle in radians is ``arccos`` of the score.
    """

    name = "sam"
    title = "SAM (spectral angle, target)"
    summary = "Cosine of the spectral angle between each pixel and the target spectrum."
    reference = ("F. A. Kruse et al., 'The spectral image processing system (SIPS): interactive visualization and "
                 "analysis of imaging spectrometer data', Remote Sens. Environ., 44(2-3):145-163, 1993.")
    params = (target_param(),)

    def context(self):
        return Context()

    def _score(self, block, mask, progress):
        t = self.spectrum("target", block.shape[2])
        out = np.zeros(mask.shape)
        out[mask] = np.cos(spectral_angle(block[mask], t))
        return out
