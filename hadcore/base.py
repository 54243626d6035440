"""The detector contract.

A detector is a class that declares, once and as data:

- ``name`` (registry key, lower case), ``title``, ``summary`` (one line), ``reference`` (citation),
  ``family`` (``"statistical"``, ``"representation"`` or ``"deep"``; ``"recommended"`` for ``auto`` only),
  ``trains`` (fits a model), and optionally ``rationale`` (why to use it, shown by ``hadcore info``);
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

from typing import TYPE_CHECKING, Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from .context import Context, FitData, fit_data_from_cube
from .cube import check_cube, prepare_block, prepare_cube, valid_mask
from .engine.local import detect_in_memory
from .errors import InputError, ParameterError
from .params import Param
from .progress import Progress, as_progress

if TYPE_CHECKING:  # annotations only
    from .threshold import NullLaw

__all__ = ["Detector", "Context", "FitData", "FAMILIES", "prepare_cube", "prepare_block", "check_cube", "valid_mask"]

FAMILIES = ("recommended", "statistical", "representation", "deep", "target")


class Detector:
    """Base class of every hadcore detector (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    #: why and when to use it, one paragraph (``hadcore info`` prints it); optional
    rationale: ClassVar[str] = ""
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
    #: the family of the scores' law on a Gaussian background, when the method has one: "chi2" (with the
    #: input's band count as degrees of freedom: :meth:`null_law`'s default), or the kind the class's own
    #: :meth:`null_law` returns ("beta" for ACE, "normal" for MF); None: no law. Not None lets ``fpr:``
    #: thresholds apply (see :mod:`hadcore.threshold`, :mod:`hadcore.tags`)
    null_distribution: ClassVar[Optional[str]] = None
    #: parameters that make the detector quick on a 24 x 24 x 24 crop in contract checks
    #: (:func:`hadcore.testing.check_detector`, tests/test_contract.py): behaviour, not quality. Assign a new
    #: dict in the subclass (never mutate this one); explicit parameters of a check override it.
    test_params: ClassVar[Dict[str, Any]] = {}

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
            "rationale": cls.rationale,
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

    def _score_at(self, block: np.ndarray, mask: np.ndarray, origin, progress: Progress) -> np.ndarray:
        """:meth:`_score` of a block read at ``origin`` ((row, column) of its first pixel in the scene; None where
        the executor does not know it: the chunks of a lazy dask array). The engine calls this; detectors whose
        state depends on the position (a target detector's background per sensor column) override it, the
        others override :meth:`_score` only."""
        return self._score(block, mask, progress)

    def _refine_at(self, block: np.ndarray, mask: np.ndarray, origin) -> Any:
        """:meth:`_refine_block` of a block read at ``origin`` (see :meth:`_score_at`)."""
        return self._refine_block(block, mask)

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
        f = self.FIT_SHARE
        ctx = self.context()
        self._fit(fit_data_from_cube(cube, mask, ctx), progress.sub(0.0, f))
        if ctx.refine:
            self._refine_finish(self._refine_at(cube, mask, (0, 0)))
        return self._score_at(cube, mask, (0, 0), progress.sub(f, 1.0))

    # refine pass (Context.refine): after _fit, every block is seen once more with the fitted state
    def _refine_block(self, block: np.ndarray, mask: np.ndarray) -> Any:
        """Partial result of the refine pass on one block (no halo); merged with :meth:`_refine_merge`."""
        raise NotImplementedError

    def _refine_merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def _refine_finish(self, merged: Any) -> None:
        """Update the fitted state from the merged refine result."""
        raise NotImplementedError

    def null_law(self, n_bands: Optional[int] = None) -> "Optional[NullLaw]":
        """The law of this configured detector's scores on a Gaussian background (the null of an ``fpr:R``
        threshold: :class:`hadcore.threshold.NullLaw`), for an input of ``n_bands`` bands (default: the bands
        it was fitted on); None when the method has none (:attr:`null_distribution` None).

        Default: chi-square with ``n_bands`` degrees of freedom when the class declares
        ``null_distribution = "chi2"``. A law that needs what the fit learns (MF on the target scale) raises
        ParameterError before the fit; so does a law that needs the band count when there is none.
        """
        if type(self).null_distribution is None:
            return None
        if type(self).null_distribution != "chi2":
            raise NotImplementedError(f"{type(self).__name__} declares null_distribution="
                                      f"{type(self).null_distribution!r} but does not implement null_law")
        from .threshold import NullLaw

        n = n_bands or getattr(self, "fitted_bands_", None)
        if not n:
            raise ParameterError(f"{self.name}: the chi-square null law needs the band count of the input")
        return NullLaw.chi2(int(n))

    def run_report(self, clear: bool = False) -> Dict[str, str]:
        """What the last run decided on the data, as score-layer tags (the ensemble: the members its guard
        used); ``clear`` forgets it. :func:`hadcore.engine.run_scene` clears it before a run and returns it in
        :attr:`RunInfo.detector_tags`. Default: nothing."""
        return {}

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
        prog = as_progress(progress)
        X, valid = prepare_cube(cube, mask, min_bands=self.min_bands, min_pixels=self.min_pixels, who=self.name)
        ctx = self.context()
        self._fit(fit_data_from_cube(X, valid, ctx), prog)
        if ctx.refine:
            self._refine_finish(self._refine_at(X, valid, (0, 0)))
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
        out = np.asarray(self._score_at(X, valid, None, prog)).astype(np.float32, copy=True)
        out[~valid] = np.nan
        prog.update(1.0)
        return out

    def detect(self, cube, mask=None, progress=None) -> np.ndarray:
        """Score every pixel: (H, W) float32, higher = more anomalous, NaN where invalid.

        In memory: fit + score. Detectors that are exact under tiling (:attr:`Context.exact`) are run
        block by block over the caller's array, so memory stays near the size of the cube (no float64
        copy of the whole cube); the others fit and score the cube as one block.
        """
        return detect_in_memory(self, cube, mask, as_progress(progress))
