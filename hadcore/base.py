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

__all__ = ["Detector", "Context", "FitData", "FAMILIES", "prepare_cube", "prepare_block", "check_cube", "valid_mask"]

FAMILIES = ("statistical", "representation", "deep")


@dataclass(frozen=True)
class Context:
    """What a detector needs of the scene, so that the engine (:mod:`hadcore.engine`) can run it block by
    block, under a memory budget, in-process or on a cluster.

    Attributes
    ----------
    halo : int
        Pixels of context needed on every side of a block (local / windowed detectors). Scores of the
        block's interior are exact: they equal the scores of the whole image.
    global_stats : bool
        The fit needs whole-image statistics (:class:`hadcore.stats.Moments`: count, mean, scatter, band
        minimum and maximum), collected in a first pass.
    sample : int
        The fit needs a bounded uniform sample of this many valid pixels (:class:`hadcore.stats.PixelSample`,
        drawn with ``seed``); a scene with fewer valid pixels is taken whole.
    crops, crop_size : int
        The fit needs ``crops`` square spatial crops of ``crop_size`` pixels (drawn with ``seed``); a scene
        whose area is at most ``crops * crop_size**2`` is taken whole, as one crop.
    seed : int
        Seed of the sample and the crops.
    whole_scene : bool
        The model couples the whole image: the engine runs the detector on scene tiles of ``tile`` pixels
        that overlap by ``halo`` pixels on every side, blending scores linearly across the overlap.
    tile : int
        Side of a scene tile (``whole_scene`` only).
    refine : bool
        The fit needs one more pass after the statistics and the sample (see
        :meth:`Detector._refine_block`).
    """

    halo: int = 0
    global_stats: bool = False
    whole_scene: bool = False
    sample: int = 0
    crops: int = 0
    crop_size: int = 0
    seed: int = 0
    tile: int = 0
    refine: bool = False

    @property
    def scaling(self) -> str:
        """How the detector scales: ``local`` (halo only), ``stats`` (two passes: statistics, scores),
        ``sample`` (fit on a bounded sample, then scores block by block), ``tiles`` (overlapping scene
        tiles, blended)."""
        if self.whole_scene:
            return "tiles"
        if self.sample or self.crops:
            return "sample"
        if self.global_stats or self.refine:
            return "stats"
        return "local"

    @property
    def exact(self) -> bool:
        """Streamed scores equal in-memory scores (up to float rounding)."""
        return self.scaling in ("local", "stats") and not self.refine

    def describe(self) -> str:
        s = self.scaling
        if s == "local":
            return f"local: a halo of {self.halo} pixels; exact under tiling"
        if s == "stats":
            if self.refine:
                return (f"three passes: whole-image statistics, a refine pass, then scores with a halo of "
                        f"{self.halo} pixels; nearly exact under tiling")
            return f"two passes: whole-image statistics, then scores with a halo of {self.halo} pixels; " \
                   "exact under tiling"
        if s == "sample":
            what = []
            if self.sample:
                what.append(f"{self.sample} sampled pixels")
            if self.crops:
                what.append(f"{self.crops} crops of {self.crop_size} x {self.crop_size} pixels")
            if self.global_stats:
                what.append("whole-image statistics")
            return f"fitted on {' and '.join(what)}, then scored block by block (halo {self.halo})"
        return f"scene tiles of {self.tile} x {self.tile} pixels overlapping by {self.halo}, blended"


@dataclass
class FitData:
    """What the engine hands to :meth:`Detector._fit`: the parts the detector's :class:`Context` asked for.

    ``moments`` (:class:`~hadcore.stats.Moments` of the valid pixels), ``sample`` ((n, B) float64 valid
    pixels in row-major order) and ``sample_index`` (their flat indices), ``crops`` (list of
    ``(cube float64 (h, w, B), valid (h, w))``), ``refined`` (the merged result of the refine pass), the
    scene ``shape`` (H, W, B) and its number of valid pixels ``n_valid``.
    """

    shape: Tuple[int, int, int]
    n_valid: int
    moments: Any = None
    sample: Optional[np.ndarray] = None
    sample_index: Optional[np.ndarray] = None
    crops: Optional[list] = None
    refined: Any = None

    def value_range(self) -> Tuple[float, float]:
        """(lowest, highest) value over all bands of the valid pixels: exact from ``moments`` when they hold
        band minima and maxima, else from ``sample`` (then approximate), else ``(nan, nan)`` (``--reduce``
        leaves the projected moments without minima and maxima)."""
        m = self.moments
        if m is not None and m.n > 0 and np.isfinite(m.minimum).all() and np.isfinite(m.maximum).all():
            return float(m.minimum.min()), float(m.maximum.max())
        if self.sample is not None and self.sample.size:
            return float(self.sample.min()), float(self.sample.max())
        return float("nan"), float("nan")


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
    #: optional packages the method imports (import names beyond numpy and scipy: "sklearn", "torch"); the QGIS
    #: plugin names them in the detector's help and checks them before a run (QGIS's Python may lack them)
    requires: ClassVar[Tuple[str, ...]] = ()
    #: the scores' law on background pixels, when the method has one: "chi2" (with the input's band count as
    #: degrees of freedom) lets ``fpr:`` thresholds apply; None otherwise (see :mod:`hadcore.tags`)
    null_distribution: ClassVar[Optional[str]] = None

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
            "context": dict(cls._default_context().__dict__, scaling=cls._default_context().scaling),
            "scaling": cls._default_context().describe(),
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

    def _fit(self, data: FitData, progress: Progress) -> None:
        """Learn the fitted state from what :meth:`context` asked for (override).

        Sets attributes ending in ``_``. Default: nothing to learn (purely local detectors, and
        whole-scene detectors that model each scene tile on its own).
        """

    def _score(self, block: np.ndarray, mask: np.ndarray, progress: Progress) -> np.ndarray:
        """Score a prepared block with the fitted state (override).

        ``block`` is C-contiguous float64 (h, w, B) including its halo (clipped at the image border), zeros at
        invalid pixels; ``mask`` (h, w) bool. Returns (h, w) scores; the engine keeps the interior.
        Default: :meth:`_detect` on the block (whole-scene detectors run on each scene tile).
        """
        return self._detect(block, mask, progress)

    #: share of an in-memory run's progress given to the fit (the rest to scoring); trained detectors raise it
    FIT_SHARE = 0.3

    def _detect(self, cube: np.ndarray, mask: np.ndarray, progress: Progress) -> np.ndarray:
        """Score a prepared cube as one block: fit on it, then score it.

        ``cube`` is C-contiguous float64 (H, W, B); invalid pixels hold 0 and must not enter any
        statistic. ``mask`` is (H, W) bool, True = valid, with at least ``min_pixels`` valid pixels.
        Return (H, W) scores (any float dtype); values at invalid pixels are ignored. Detectors that
        implement :meth:`_fit` and :meth:`_score` need not override it.
        """
        if type(self)._score is Detector._score:
            raise NotImplementedError(f"{type(self).__name__} implements neither _detect nor _score")
        from .engine import fit_data_from_cube

        f = self.FIT_SHARE
        self._fit(fit_data_from_cube(cube, mask, self.context()), progress.sub(0.0, f))
        return self._score(cube, mask, progress.sub(f, 1.0))

    # refine pass (Context.refine): after _fit, every block is seen once more with the fitted state
    def _refine_block(self, block: np.ndarray, mask: np.ndarray) -> Any:
        """Partial result of the refine pass on one block (no halo); merged with :meth:`_refine_merge`."""
        raise NotImplementedError

    def _refine_merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def _refine_finish(self, merged: Any) -> None:
        """Update the fitted state from the merged refine result."""
        raise NotImplementedError

    def working_bytes(self, h: int, w: int, bands: int) -> int:
        """Estimated peak bytes the detector allocates to score an ``h`` x ``w`` block of ``bands`` bands,
        beyond the block itself (the engine's memory budget; override for detectors that need more)."""
        return 3 * h * w * bands * 8

    def state_bytes(self, bands: int) -> int:
        """Bytes of the fitted state and fixed buffers (matrices, models), held while scoring."""
        return 4 * bands * bands * 8

    # ------------------------------------------------------------------ public API
    def fit(self, cube, mask=None, progress=None) -> "Detector":
        """Learn what the detector needs of ``cube`` (statistics, a sample, crops); returns ``self``."""
        from .engine import fit_data_from_cube

        prog = as_progress(progress)
        X, valid = prepare_cube(cube, mask, min_bands=self.min_bands, min_pixels=self.min_pixels, who=self.name)
        ctx = self.context()
        self._fit(fit_data_from_cube(X, valid, ctx), prog)
        if ctx.refine:
            self._refine_finish(self._refine_block(X, valid))
        self.fitted_bands_ = X.shape[2]
        prog.update(1.0)
        return self

    def decision_function(self, cube, mask=None, progress=None) -> np.ndarray:
        """Score ``cube`` (a block) with the state learnt by :meth:`fit`: (H, W) float32, NaN where invalid."""
        prog = as_progress(progress)
        fitted = getattr(self, "fitted_bands_", None)
        if fitted is None:
            raise InputError(f"{self.name}: call fit before decision_function")
        X, valid = prepare_cube(cube, mask, min_bands=self.min_bands, min_pixels=1, who=self.name)
        if X.shape[2] != fitted:
            raise InputError(f"{self.name}: fitted on {fitted} bands, the block has {X.shape[2]}")
        out = np.asarray(self._score(X, valid, prog)).astype(np.float32, copy=True)
        out[~valid] = np.nan
        prog.update(1.0)
        return out

    def detect(self, cube, mask=None, progress=None) -> np.ndarray:
        """Score every pixel: (H, W) float32, higher = more anomalous, NaN where invalid.

        In memory: fit + score. Detectors that are exact under tiling (:attr:`Context.exact`) are run
        block by block over the caller's array, so memory stays near the size of the cube (no float64
        copy of the whole cube); the others fit and score the cube as one block.
        """
        from .engine import detect_in_memory

        return detect_in_memory(self, cube, mask, as_progress(progress))


def check_cube(cube, mask=None, *, min_bands: int = 2, min_pixels: int = 3, who: str = "detector"):
    """Validate a cube without copying it; returns ``(X, valid)`` with X the caller's array (as an ndarray,
    2-D input gets a band axis when ``min_bands <= 1``) and valid the (H, W) bool mask.

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
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != (H, W):
            raise InputError(f"{who}: mask shape {m.shape} does not match the image ({H}, {W})")
    valid = valid_mask(X, None, mask)
    n_valid = int(valid.sum())
    if n_valid < min_pixels:
        raise InputError(f"{who}: needs at least {min_pixels} valid pixels, got {n_valid}")
    return X, valid


def prepare_cube(cube, mask=None, *, min_bands: int = 2, min_pixels: int = 3, who: str = "detector"):
    """Validate a cube and build the valid-pixel mask.

    Returns ``(X, valid)``: X float64 C-contiguous (H, W, B) with 0 at invalid pixels, valid (H, W) bool.
    Raises :class:`InputError` with a one-line message for unusable input.
    """
    X, valid = check_cube(cube, mask, min_bands=min_bands, min_pixels=min_pixels, who=who)
    return prepare_block(X, valid), valid


def prepare_block(X: np.ndarray, valid: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """float64 C-contiguous copy of a block with 0 at invalid pixels (never the caller's array); into
    ``out`` (float64, C-contiguous, X's shape) when given."""
    if out is None:
        out = np.array(X, dtype=np.float64, order="C", copy=True)
    else:
        out[...] = X
    if not valid.all():
        out[~valid] = 0.0
    return out


def valid_mask(cube: np.ndarray, nodata: Optional[float] = None, mask=None) -> np.ndarray:
    """(h, w) bool: finite in every band, not all zeros, not nodata in every band, and ``mask``.

    Computed a few rows at a time, so the temporary (h, w, B) booleans stay small.
    """
    H, W = cube.shape[:2]
    valid = np.empty((H, W), dtype=bool)
    step = max(1, (16 * 2**20) // max(1, W * cube.shape[2]))
    nd = None if nodata is None or np.isnan(nodata) else nodata
    for r in range(0, H, step):
        X = np.asarray(cube[r:r + step])
        v = np.isfinite(X).all(axis=2) & (X != 0).any(axis=2)
        if nd is not None:
            v &= ~(X == nd).all(axis=2)
        valid[r:r + step] = v
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    return valid
