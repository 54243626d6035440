"""What the target detectors share: a target spectrum given as a parameter, resolved on the scene's bands."""

from __future__ import annotations

from typing import ClassVar, Dict, Optional, Tuple

import numpy as np

from ..base import Context, Detector
from ..errors import InputError, ParameterError
from ..params import Param
from ..targets import Whitener

__all__ = ["TargetDetector", "WhitenedTargetDetector", "target_param", "ridge_param", "parse_numbers"]


def target_param(help_extra: str = "") -> Param:
    return Param("target", "str", "", "The target spectrum: LIBRARY.sli:NAME or LIBRARY.csv:NAME (resampled to "
                 "the scene's bands by wavelength), or its values, one per selected band, comma-separated."
                 + help_extra)


def ridge_param(of: str = "background covariance, relative to its mean variance") -> Param:
    return Param("ridge", "float", 1e-6, f"Diagonal loading of a singular {of}.", min=1e-12, max=1.0)


def parse_numbers(spec) -> Optional[np.ndarray]:
    """The values of a spec made only of numbers (comma or space separated), else None."""
    if isinstance(spec, (list, tuple, np.ndarray)):
        return np.asarray(spec, dtype=np.float64).ravel()
    parts = [p for p in str(spec).replace(",", " ").split() if p]
    if not parts:
        return None
    try:
        return np.asarray([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        return None


class TargetDetector(Detector):
    """A detector that looks for a known spectrum (issue 26): its ``target`` parameter is a spec; the CLI, the
    QGIS algorithms and :func:`hadcore.detect` resolve a library spec against the scene's wavelengths
    (:func:`hadcore.library.resolve_spectrum`) and hand the values over with :meth:`set_spectrum` before the
    run; a spec made of numbers needs no resolving. Scores: higher = more target-like."""

    family = "target"
    #: the contract checks' 24-band cube: a target of 24 values
    test_params = {"target": ",".join(["1.5"] * 24)}
    #: the parameters that name a spectrum (resolved by the application against the scene's bands)
    spectrum_params: ClassVar[Tuple[str, ...]] = ("target",)

    def set_spectrum(self, param: str, values) -> None:
        """The resolved values of spectrum parameter ``param`` on the scene's selected bands."""
        if param not in self.spectrum_params:
            raise ParameterError(f"{self.name}: {param!r} is not a spectrum parameter")
        self.__dict__.setdefault("_spectra", {})[param] = np.asarray(values, dtype=np.float64).ravel()

    def spectrum(self, param: str, n_bands: int) -> np.ndarray:
        """The spectrum of ``param`` on ``n_bands`` bands, or a one-line error."""
        spectra: Dict[str, np.ndarray] = self.__dict__.get("_spectra", {})
        spec = getattr(self, param)
        values = spectra.get(param)
        if values is None:
            if not str(spec).strip():
                raise ParameterError(f"{self.name}: no {param} spectrum given; use -p {param}=LIBRARY.sli:NAME "
                                     "(or its values, one per band)")
            values = parse_numbers(spec)
            if values is None:
                raise ParameterError(f"{self.name}: {param} {spec!r} names a library: it is resolved against a "
                                     "scene's wavelengths (hadcore detect, the QGIS algorithm, hadcore.detect on a "
                                     "file); for an array give the values, one per band")
        if values.size != n_bands:
            raise InputError(f"{self.name}: the {param} spectrum has {values.size} values, the scene {n_bands} "
                             "bands")
        if not np.all(np.isfinite(values)):
            raise InputError(f"{self.name}: the {param} spectrum holds a non-finite value")
        return values

    def set_exclude(self, mask) -> None:
        """Pixels (an (H, W) bool array on the scored grid, or None) that the background statistics leave out:
        the targets themselves (``--exclude``). They are still scored."""
        self.__dict__["_exclude"] = None if mask is None else np.asarray(mask, dtype=bool)

    def _context(self, **kw) -> Context:
        """This detector's :class:`Context` with its exclusion mask."""
        return Context(exclude=self.__dict__.get("_exclude"), **kw)

    def state_bytes(self, bands: int) -> int:
        return 3 * bands * bands * 8


class WhitenedTargetDetector(TargetDetector):
    """A target detector scored against the whitened background: the statistics pass gives the background
    (mean and covariance; :meth:`_background` for another matrix), :meth:`_fit` factors it once
    (:class:`hadcore.targets.Whitener`, a singular matrix loaded by ``ridge``) and :meth:`_whitened_scores`
    scores each block with that factor. Subclasses declare a ``ridge`` parameter."""

    def context(self):
        return self._context(global_stats=True)

    def _background(self, moments):
        """(mean, matrix) that the scores whiten by: the background mean and covariance."""
        return moments.mean, moments.cov()

    def _fit(self, data, progress):
        self.target_ = self.spectrum("target", data.shape[2])
        mean, matrix = self._background(data.moments)
        self.whitener_ = Whitener(mean, matrix, self.ridge)

    def _whitened_scores(self, pixels):  # pragma: no cover - overridden
        raise NotImplementedError

    def _score(self, block, mask, progress):
        out = np.zeros(mask.shape)
        out[mask] = self._whitened_scores(block[mask])
        return out
