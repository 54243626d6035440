"""The detector contract.

A detector is a class that declares, once and as data:

- ``name`` (registry key, lower case), ``title``, ``summary`` (one line), ``reference`` (citation),
  ``family`` (``"statistical"``, ``"representation"`` or ``"deep"``), ``trains`` (fits a model);
- ``params``: a tuple of :class:`~hadcore.params.Param`, from which the CLI and the QGIS provider are
  generated;
- :meth:`Detector.context`: what surrounding data it needs, so a tiled engine can run it on windows.

and implements ``_detect(cube, mask, progress)``.

Sign convention, stated once: **scores are higher = more anomalous.**

``detect(cube, mask=None, progress=None)``

- ``cube``: (H, W, B) array of any real dtype.
- ``mask``: optional (H, W) bool, True where the pixel is valid. Pixels with a non-finite value in any
  band, or whose spectrum is all zeros, are invalid too.
- returns (H, W) float32 scores, NaN at invalid pixels. Invalid pixels never enter any statistic.

``__init__`` only validates and stores parameters (as attributes of the same name); all work happens in
``detect``. Randomised detectors declare an int parameter ``seed``; the same input and seed give the same
output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from .errors import InputError, ParameterError
from .params import Param
from .progress import Progress, as_progress

__all__ = ["Detector", "Context", "FAMILIES", "prepare_cube"]

FAMILIES = ("statistical", "representation", "deep")


@dataclass(frozen=True)
class Context:
    """What a detector needs around a pixel, for tiled or distributed execution.

    Attributes
    ----------
    halo : int
        Pixels of context needed on every side of a tile (local / windowed detectors).
    global_stats : bool
        Needs whole-image statistics (e.g. the mean and covariance of global RX); a tiled engine
        computes them in a first pass.
    whole_scene : bool
        Needs the whole scene at once (clustering, learned per scene); cannot be tiled.
    """

    halo: int = 0
    global_stats: bool = False
    whole_scene: bool = False


class Detector:
    """Base class of every hadcore detector (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    family: ClassVar[str] = "statistical"
    trains: ClassVar[bool] = False
    params: ClassVar[Tuple[Param, ...]] = ()
    #: fewest bands the method accepts
    min_bands: ClassVar[int] = 2
    #: fewest valid pixels the method accepts
    min_pixels: ClassVar[int] = 3

    def __init__(self, **params: Any):
        declared = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            allowed = ", ".join(declared) if declared else "none"
            raise ParameterError(
                f"detector {self.name!r} has no parameter {unknown[0]!r}; its parameters are: {allowed}"
            )
        for p in self.params:
            setattr(self, p.name, p.coerce(params[p.name]) if p.name in params else p.default)
        self._check_params()

    # ------------------------------------------------------------------ declaration helpers
    @classmethod
    def param(cls, name: str) -> Param:
        for p in cls.params:
            if p.name == name:
                return p
        raise ParameterError(f"detector {cls.name!r} has no parameter {name!r}")

    @classmethod
    def describe(cls) -> Dict[str, Any]:
        """Everything declared, as plain data (``hadcore info --json``)."""
        doc = (cls.__doc__ or "").strip()
        return {
            "name": cls.name,
            "title": cls.title,
            "summary": cls.summary,
            "family": cls.family,
            "trains": cls.trains,
            "reference": cls.reference,
            "min_bands": cls.min_bands,
            "params": [p.as_dict() for p in cls.params],
            "context": cls._default_context().__dict__,
            "doc": doc,
        }

    @classmethod
    def _default_context(cls) -> Context:
        try:
            return cls().context()
        except Exception:  # pragma: no cover - context of a detector whose defaults need data
            return Context(whole_scene=True)

    def get_params(self) -> Dict[str, Any]:
        return {p.name: getattr(self, p.name) for p in self.params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ to override
    def context(self) -> Context:
        """Context needed by this configured detector (override; may depend on parameters)."""
        return Context(whole_scene=True)

    def _check_params(self) -> None:
        """Cross-parameter checks (override); raise ParameterError."""

    def _detect(self, cube: np.ndarray, mask: np.ndarray, progress: Progress) -> np.ndarray:
        """Score a prepared cube.

        ``cube`` is C-contiguous float64 (H, W, B); invalid pixels hold 0 and must not enter any
        statistic. ``mask`` is (H, W) bool, True = valid, with at least ``min_pixels`` valid pixels.
        Return (H, W) scores (any float dtype); values at invalid pixels are ignored.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ public API
    def detect(self, cube, mask=None, progress=None) -> np.ndarray:
        """Score every pixel: (H, W) float32, higher = more anomalous, NaN where invalid."""
        prog = as_progress(progress)
        X, valid = prepare_cube(cube, mask, min_bands=self.min_bands, min_pixels=self.min_pixels, who=self.name)
        scores = np.asarray(self._detect(X, valid, prog))
        if scores.shape != valid.shape:
            raise RuntimeError(f"{self.name}: _detect returned shape {scores.shape}, expected {valid.shape}")
        out = scores.astype(np.float32, copy=True)
        out[~valid] = np.nan
        prog.update(1.0)
        return out


def prepare_cube(cube, mask=None, *, min_bands: int = 2, min_pixels: int = 3, who: str = "detector"):
    """Validate a cube and build the valid-pixel mask.

    Returns ``(X, valid)``: X float64 C-contiguous (H, W, B) with 0 at invalid pixels, valid (H, W) bool.
    Raises :class:`InputError` with a one-line message for unusable input.
    """
    X = np.asarray(cube)
    if X.ndim == 2 and min_bands <= 1:
        X = X[:, :, None]
    if X.ndim != 3:
        raise InputError(f"{who}: expected a cube of shape (H, W, B), got an array of shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer) or X.dtype == bool):
        raise InputError(f"{who}: expected real numbers, got dtype {X.dtype}")
    H, W, B = X.shape
    if B < min_bands:
        raise InputError(f"{who}: needs at least {min_bands} bands, got {B}")
    if H == 0 or W == 0:
        raise InputError(f"{who}: the image is empty ({H} x {W} pixels)")
    X = np.ascontiguousarray(X, dtype=np.float64)
    finite = np.isfinite(X).all(axis=2)
    nonzero = (X != 0).any(axis=2)
    valid = finite & nonzero
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != (H, W):
            raise InputError(f"{who}: mask shape {m.shape} does not match the image ({H}, {W})")
        valid &= m.astype(bool)
    n_valid = int(valid.sum())
    if n_valid < min_pixels:
        raise InputError(f"{who}: needs at least {min_pixels} valid pixels, got {n_valid}")
    if not valid.all():
        X = np.where(valid[..., None], X, 0.0)  # a copy: never write into the caller's array
    return X, valid
