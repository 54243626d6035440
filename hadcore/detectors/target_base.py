"""What the target detectors share: a target spectrum given as a parameter, resolved on the scene's bands."""

from __future__ import annotations

from typing import ClassVar, Dict, Optional, Tuple

import numpy as np

from ..base import Context, Detector
from ..errors import InputError, ParameterError
from ..params import Param
from ..targets import Whitener

__all__ = ["TargetDetector", "WhitenedTargetDetector", "target_param", "ridge_param", "background_param",
           "parse_numbers"]


def target_param(help_extra: str = "") -> Param:
    return Param("target", "str", "", "The target spectrum: LIBRARY.sli:NAME or LIBRARY.csv:NAME (resampled to "
                 "the scene's bands by wavelength), DETECTIONS.gpkg:ID (the mean spectrum of a detection hadcore "
                 "wrote: find more like it), or its values, one per selected band, comma-separated." + help_extra)


def ridge_param(of: str = "background covariance, relative to its mean variance") -> Param:
    return Param("ridge", "float", 1e-6, f"Diagonal loading of a singular {of}.", min=1e-12, max=1.0)


def background_param() -> Param:
    return Param("background", "choice", "scene", "scene: one background (mean, covariance) for the whole scene; "
                 "columns: one per image column, for swath products in sensor geometry (EMIT before "
                 "orthorectification, AVIRIS-NG), whose detector columns differ in noise and response; a column with "
                 "fewer valid pixels than twice the bands uses the scene's.", choices=("scene", "columns"))


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
    scores each block with that factor. Subclasses declare a ``ridge`` parameter and may declare
    :func:`background_param`.

    ``background=columns`` (the column-wise practice of swath matched filtering: each detector column of a
    pushbroom sensor has its own noise and response, so its own background): a refine pass gathers each image column's
    moments (shifted by the scene mean, in float64; the ``--exclude`` pixels left out), and each column is
    whitened by its own factor. A column with fewer valid pixels than twice the bands keeps the scene's
    background (a covariance from fewer pixels than that is too noisy to invert; ``columns_on_scene_`` counts
    them). Memory: one B x B factor per column, W B^2 8 bytes beyond the scene mode (0.6 GB for EMIT's 1242
    columns at 244 bands). Scores need each block's column, so this mode does not run on a lazy dask array.
    """

    def _columns(self) -> bool:
        return getattr(self, "background", "scene") == "columns"

    def context(self):
        return self._context(global_stats=True, refine=self._columns())

    def _background(self, moments):
        """(mean, matrix) that the scores whiten by: the background mean and covariance."""
        return moments.mean, moments.cov()

    def _fit(self, data, progress):
        self.target_ = self.spectrum("target", data.shape[2])
        mean, matrix = self._background(data.moments)
        self.whitener_ = Whitener(mean, matrix, self.ridge)
        if self._columns():
            self.shift_ = np.asarray(data.moments.mean, dtype=np.float64)
            self.width_ = int(data.shape[1])

    def _whitened_scores(self, pixels, w=None):  # pragma: no cover - overridden
        raise NotImplementedError

    def _score(self, block, mask, progress):
        out = np.zeros(mask.shape)
        out[mask] = self._whitened_scores(block[mask])
        return out

    # ------------------------------------------------------------------ background=columns
    def _column0(self, origin, width: int) -> int:
        if origin is not None:
            return int(origin[1])
        if width == getattr(self, "width_", -1):
            return 0  # the whole scene's width: its first column
        raise InputError(f"{self.name}: background=columns needs each block's column in the scene, which a lazy "
                         "dask array's chunks do not carry; run it on the scene (hadcore detect, hadcore.detect "
                         "on a file or array, or a Dask client)")

    def _refine_at(self, block, mask, origin):
        if origin is None:
            self._column0(None, -1)
        r0, c0 = int(origin[0]), int(origin[1])
        h, w = mask.shape
        ok = mask
        ex = self.__dict__.get("_exclude")
        if ex is not None:
            ok = ok & ~ex[r0:r0 + h, c0:c0 + w]
        D = np.where(ok[:, :, None], block - self.shift_, 0.0)
        return {c0: (ok.sum(axis=0), D.sum(axis=0), np.einsum("hwb,hwc->wbc", D, D, optimize=True))}

    def _refine_merge(self, a, b):
        out = dict(a)
        for c0, (n, s, S) in b.items():
            if c0 in out:
                n0, s0, S0 = out[c0]
                out[c0] = (n0 + n, s0 + s, S0 + S)
            else:
                out[c0] = (n, s, S)
        return out

    def _refine_finish(self, merged):
        from ..stats import Moments

        B = self.shift_.size
        cols = [self.whitener_] * self.width_
        fallback = self.width_
        for c0, (n, s, S) in merged.items():
            for j in range(n.shape[0]):
                nj = int(n[j])
                if nj < 2 * B:
                    continue
                d = s[j] / nj
                m = Moments(nj, self.shift_ + d, S[j] - nj * np.outer(d, d), np.full(B, -np.inf), np.full(B, np.inf))
                mean, matrix = self._background(m)
                cols[c0 + j] = Whitener(mean, matrix, self.ridge)
                fallback -= 1
        self.column_whiteners_ = cols
        self.columns_on_scene_ = fallback

    def _score_at(self, block, mask, origin, progress):
        if not self._columns():
            return self._score(block, mask, progress)
        c0 = self._column0(origin, mask.shape[1])
        out = np.zeros(mask.shape)
        for j in range(mask.shape[1]):
            m = mask[:, j]
            if m.any():
                out[m, j] = self._whitened_scores(block[m, j], self.column_whiteners_[c0 + j])
        return out
