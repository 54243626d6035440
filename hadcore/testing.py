"""Contract checks for any hadcore detector: built in, or registered by another package's entry point.

>>> from hadcore.testing import check_detector
>>> check_detector("rx")                      # a registry name, or the class itself
['declaration', 'output', 'invalid_pixels', ...]

:func:`check_detector` runs the checks of :data:`CHECKS` in order and raises :class:`AssertionError` naming the
detector and the check at the first failure. It needs no test framework (call it from pytest, unittest or a
script) and no data file: without a cube it uses :func:`synthetic_cube`, a seeded 24 x 24 x 24 scene. The
detector runs with its :attr:`~hadcore.base.Detector.test_params` (parameters that make it quick on such a
crop), overridden by ``params``.

The checks (the contract of :mod:`hadcore.base`):

``declaration``
    the class subclasses :class:`~hadcore.base.Detector`, has a docstring of its own and declares a lower-case
    ``name``, a ``title``, a ``summary``, a ``reference`` and a ``family`` of :data:`~hadcore.base.FAMILIES`;
    every parameter is a :class:`~hadcore.params.Param` with a unique identifier name, a default that validates
    to itself and one line of help; the class builds with its defaults (attributes of the parameters' names
    hold them) and with its ``test_params``; an undeclared parameter raises
    :class:`~hadcore.errors.ParameterError`; :meth:`~hadcore.base.Detector.context` returns a
    :class:`~hadcore.base.Context`; a registered name resolves to this class, and a class looked up by its
    registry name declares that name.
``output``
    ``detect`` returns (H, W) float32, NaN exactly at the invalid pixels (masked out, a non-finite value in a
    band, an all-zero spectrum) and finite elsewhere.
``invalid_pixels``
    invalid pixels never enter a statistic: poisoning them (1e7, NaN, inf) changes no valid score (rtol
    1e-5, atol 1e-6 of the largest score).
``constant_band``
    a constant band (a singular covariance) still gives finite scores.
``determinism``
    the same input and parameters (seed) give identical scores, with a fresh detector.
``fit_score``
    :meth:`~hadcore.base.Detector.fit` then :meth:`~hadcore.base.Detector.decision_function` on the cube
    equals :meth:`~hadcore.base.Detector.detect` (rtol 1e-5).
``streamed``
    only for detectors whose :class:`~hadcore.base.Context` is ``exact``: the engine
    (:func:`hadcore.engine.run`) under a memory budget that forces several blocks equals the in-memory
    ``detect`` (rtol 1e-5), NaN at the same pixels. A cube whose halo leaves no room for several blocks is
    enlarged by mirroring it first.
``bad_input``
    fewer bands than ``min_bands`` and a cube without a valid pixel raise
    :class:`~hadcore.errors.InputError` with a one-line message.
``tiny_input``
    a 1 x 1 image, a cube with one valid pixel, a cube with exactly ``min_pixels`` valid pixels, a 3 x 3 image
    and a 1-row strip either give (H, W) float32 scores with NaN at the invalid pixels (finite scores are not
    required there: a windowed detector may have no background for a pixel) or raise
    :class:`~hadcore.errors.InputError`; never another exception.

``python -m hadcore.testing [NAME ...]`` runs every check on the named (default: every registered) detector.
"""

from __future__ import annotations

import keyword
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .errors import InputError, ParameterError

__all__ = ["check_detector", "synthetic_cube", "detector_params", "CHECKS", "EXEMPT"]

#: every check, in the order they run
CHECKS: Tuple[str, ...] = ("declaration", "output", "invalid_pixels", "constant_band", "determinism",
                           "fit_score", "streamed", "bad_input", "tiny_input")

#: registry name -> {check: why}: checks a built-in detector is exempt from, each for a documented property of
#: the method (never to make a failing detector pass). ``streamed`` needs no entry: it runs only for
#: detectors whose Context is exact.
EXEMPT: Dict[str, Dict[str, str]] = {}

#: relative tolerance of the comparisons of two runs that should agree (float rounding)
RTOL = 1e-5


# ------------------------------------------------------------------------------------------------ inputs
def synthetic_cube(shape: Tuple[int, int, int] = (24, 24, 24), seed: int = 0) -> np.ndarray:
    """A seeded (H, W, B) float64 scene: a smooth background plus four anomalous pixels (numpy only).

    Background: three smooth endmember spectra mixed by smooth abundance fields (low-frequency cosines with
    random phases), on a reflectance-like scale (about 0.05 to 0.6), plus 0.5 % Gaussian noise. Anomalies:
    four pixels mixed 60 % with a spectrum that has an absorption feature none of the background has.
    """
    H, W, B = (int(s) for s in shape)
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, B)
    ends = np.stack([
        0.10 + 0.35 * t,                                  # rising (vegetation-like red edge, smoothed)
        0.45 - 0.20 * t + 0.05 * np.sin(6.0 * t),         # falling (soil-like)
        0.25 + 0.08 * np.cos(3.0 * t + 1.0),              # flat (man-made)
    ])
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, H), np.linspace(0.0, 1.0, W), indexing="ij")
    fields = []
    for _ in range(len(ends)):
        f = np.zeros((H, W))
        for _ in range(3):
            ky, kx = rng.uniform(0.5, 2.5, size=2)
            f += np.cos(2 * np.pi * (ky * yy + kx * xx) + rng.uniform(0, 2 * np.pi))
        fields.append(f)
    ab = np.exp(np.stack(fields, axis=-1))
    ab /= ab.sum(axis=-1, keepdims=True)
    cube = ab @ ends
    cube *= 1.0 + 0.005 * rng.standard_normal(cube.shape)
    target = 0.30 + 0.05 * t - 0.15 * np.exp(-0.5 * ((t - 0.55) / 0.06) ** 2)
    for r, c in ((H // 3, W // 4), (2 * H // 3, 3 * W // 4), (H // 5, 4 * W // 5), (4 * H // 5, W // 3)):
        cube[min(r, H - 1), min(c, W - 1)] = 0.4 * cube[min(r, H - 1), min(c, W - 1)] + 0.6 * target
    return np.ascontiguousarray(cube)


def detector_params(cls, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The parameters the checks build ``cls`` with: its ``test_params``, overridden by ``params``."""
    return {**dict(getattr(cls, "test_params", None) or {}), **dict(params or {})}


def _invalid_layout(cube: np.ndarray):
    """(cube copy, mask, invalid) with invalid pixels of every kind: masked out (a corner block and one inside),
    a NaN in one band, an all-zero spectrum."""
    X = np.array(cube, dtype=np.float64, copy=True)
    H, W, B = X.shape
    mask = np.ones((H, W), bool)
    mask[0:2, 0:3] = False
    mask[H // 2, W // 2] = False
    X[H // 4, W - 3, 1 % B] = np.nan
    X[H - 1, W - 1] = 0.0
    invalid = ~mask
    invalid[H // 4, W - 3] = True
    invalid[H - 1, W - 1] = True
    return X, mask, invalid


# ------------------------------------------------------------------------------------------------ helpers
class _Fail(AssertionError):
    pass


def _fail(name: str, check: str, msg: str) -> None:
    raise _Fail(f"detector {name!r}, check {check!r}: {msg}")


def _run(name, check, fn, *args, **kw):
    """``fn(*args, **kw)``; any exception becomes a failure of ``check`` that names it."""
    try:
        return fn(*args, **kw)
    except _Fail:
        raise
    except Exception as exc:  # noqa: BLE001 - the check reports whatever the detector raised
        _fail(name, check, f"raised {type(exc).__name__}: {exc}")


def _assert_close(name, check, got, ref, what):
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape:
        _fail(name, check, f"{what}: shape {got.shape}, expected {ref.shape}")
    nan_g, nan_r = np.isnan(got), np.isnan(ref)
    if not np.array_equal(nan_g, nan_r):
        where = np.argwhere(nan_g != nan_r)[:5].tolist()
        _fail(name, check, f"{what}: NaN at different pixels (first differences at {where})")
    g, r = got[~nan_r].astype(np.float64), ref[~nan_r].astype(np.float64)
    if g.size == 0:
        return
    scale = float(np.max(np.abs(r))) if np.isfinite(r).all() else 0.0
    atol = 1e-6 * scale
    with np.errstate(invalid="ignore"):
        bad = ~np.isclose(g, r, rtol=RTOL, atol=atol) & (g != r)  # equal infinities agree
        diff = np.abs(g - r)
    if bad.any():
        i = int(np.argmax(np.where(bad, diff, -np.inf)))
        _fail(name, check, f"{what}: {int(bad.sum())} of {g.size} scores differ beyond rtol {RTOL:g} / atol "
                           f"{atol:.3g} (largest: {float(g[i])!r} against {float(r[i])!r}, relative difference "
                           f"{abs(g[i] - r[i]) / max(abs(r[i]), 1e-300):.3g})")


def _check_scores(name, check, s, invalid, *, finite=True, what="scores"):
    if not isinstance(s, np.ndarray):
        _fail(name, check, f"{what}: returned {type(s).__name__}, expected a numpy array")
    if s.shape != invalid.shape:
        _fail(name, check, f"{what}: shape {s.shape}, expected {invalid.shape}")
    if s.dtype != np.float32:
        _fail(name, check, f"{what}: dtype {s.dtype}, expected float32")
    not_nan = invalid & ~np.isnan(s)
    if not_nan.any():
        _fail(name, check, f"{what}: {int(not_nan.sum())} invalid pixel(s) are not NaN, e.g. at "
                           f"{np.argwhere(not_nan)[0].tolist()}")
    if finite:
        nf = ~invalid & ~np.isfinite(s)
        if nf.any():
            _fail(name, check, f"{what}: {int(nf.sum())} of {int((~invalid).sum())} valid pixel(s) have non-finite "
                               f"scores, e.g. {s[tuple(np.argwhere(nf)[0])]!r} at {np.argwhere(nf)[0].tolist()}")


def _several_blocks_budget(det, shape) -> Optional[float]:
    """The smallest budget (MB) under which :func:`hadcore.engine.run` cuts an in-memory cube of ``shape`` into
    more than one block, or None when none does."""
    from . import engine

    H, W, B = shape
    ctx = det.context()
    needs_stats = bool(ctx.global_stats or ctx.sample)

    def blocks(mb):
        try:
            return engine.plan_blocks(det, shape, int(mb * engine.MB), needs_stats=needs_stats, read_bytes=0).n_blocks
        except InputError:
            return 0

    halo = int(ctx.halo)
    fixed = det.state_bytes(B) + (2 * B * B * 8 if needs_stats else 0)
    for side in (8, 16, 32):  # a block of side x side plus its halo, and a little more
        mb = (fixed + engine.block_cost(det, side + 2 * halo, side + 2 * halo, B, B, read_bytes=0)) / engine.MB
        for extra in (1e-3, 0.01, 0.1):
            if blocks(mb + extra) > 1:
                return mb + extra
    mb = 0.25  # fallback: a geometric scan
    while mb < 4096:
        if blocks(mb) > 1:
            return mb
        mb *= 1.25
    return None


def _mirror_to(cube: np.ndarray, mask: np.ndarray, side: int):
    """``cube`` and ``mask`` mirrored along rows and columns until both sides reach ``side``, cut to it."""
    H, W = cube.shape[:2]
    while cube.shape[0] < side:
        cube, mask = np.concatenate([cube, cube[::-1]], axis=0), np.concatenate([mask, mask[::-1]], axis=0)
    while cube.shape[1] < side:
        cube, mask = np.concatenate([cube, cube[:, ::-1]], axis=1), np.concatenate([mask, mask[:, ::-1]], axis=1)
    r, c = max(H, side), max(W, side)
    return np.ascontiguousarray(cube[:r, :c]), np.ascontiguousarray(mask[:r, :c])


def _resolve(cls_or_name):
    from .base import Detector
    from .registry import get_detector_class

    if isinstance(cls_or_name, str):
        return get_detector_class(cls_or_name)
    if isinstance(cls_or_name, Detector):
        return type(cls_or_name)
    return cls_or_name


# ------------------------------------------------------------------------------------------------ checks
def _check_declaration(cls, name, kw, registered_as=None):
    from .base import FAMILIES, Context, Detector
    from .params import Param
    from .registry import get_detector_class, list_detectors

    c = "declaration"
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        _fail(name, c, f"{cls!r} is not a subclass of hadcore.base.Detector")
    if not isinstance(cls.name, str) or not cls.name or cls.name != cls.name.strip().lower():
        _fail(name, c, f"name must be a non-empty lower-case string, got {cls.name!r}")
    for attr in ("title", "summary", "reference"):
        v = getattr(cls, attr, "")
        if not isinstance(v, str) or not v.strip():
            _fail(name, c, f"{attr} must be a non-empty string, got {v!r}")
    if not (cls.__doc__ or "").strip() or cls.__doc__ is Detector.__doc__:
        _fail(name, c, "the class has no docstring of its own (the formula, the paper section, the choices: "
                       "`hadcore info` and the QGIS help show it)")
    if cls.family not in FAMILIES:
        _fail(name, c, f"family must be one of {FAMILIES}, got {cls.family!r}")
    if not isinstance(cls.params, tuple):
        _fail(name, c, f"params must be a tuple of Param, got {type(cls.params).__name__}")
    seen = set()
    for p in cls.params:
        if not isinstance(p, Param):
            _fail(name, c, f"params holds {p!r}, not a hadcore.params.Param")
        if not p.name.isidentifier() or keyword.iskeyword(p.name):
            _fail(name, c, f"parameter name {p.name!r} is not a Python identifier")
        if p.name in seen:
            _fail(name, c, f"parameter {p.name!r} is declared twice")
        seen.add(p.name)
        if not isinstance(p.help, str) or not p.help.strip() or "\n" in p.help.strip():
            _fail(name, c, f"parameter {p.name!r}: help must be one non-empty line, got {p.help!r}")
        try:
            again = p.coerce(p.default) if (p.default is not None or not p.optional) else None
        except ParameterError as exc:
            _fail(name, c, f"parameter {p.name!r}: the default {p.default!r} does not validate: {exc}")
        if again != p.default:
            _fail(name, c, f"parameter {p.name!r}: the default {p.default!r} validates to {again!r}")
    tp = getattr(cls, "test_params", {})
    if not isinstance(tp, dict):
        _fail(name, c, f"test_params must be a dict, got {type(tp).__name__}")
    undeclared = sorted(set(kw) - seen)
    if undeclared:
        _fail(name, c, f"test_params / params name undeclared parameter(s) {undeclared}; declared: {sorted(seen)}")
    det = _run(name, c, cls)
    for p in cls.params:
        if not hasattr(det, p.name) or getattr(det, p.name) != p.default:
            _fail(name, c, f"built with defaults, attribute {p.name!r} is {getattr(det, p.name, '<missing>')!r}, "
                           f"expected the default {p.default!r}")
    _run(name, c, cls, **kw)
    try:
        cls(__no_such_parameter__=1)
    except ParameterError:
        pass
    except Exception as exc:  # noqa: BLE001
        _fail(name, c, f"an undeclared parameter raised {type(exc).__name__} ({exc}), expected ParameterError")
    else:
        _fail(name, c, "an undeclared parameter was accepted; expected ParameterError")
    ctx = _run(name, c, det.context)
    if not isinstance(ctx, Context):
        _fail(name, c, f"context() returned {ctx!r}, expected a hadcore.base.Context")
    _run(name, c, cls.describe)
    if registered_as is not None and registered_as != cls.name:
        _fail(name, c, f"registered as {registered_as!r} but declares name {cls.name!r} (the two must agree)")
    if cls.name in list_detectors():
        registered = _run(name, c, get_detector_class, cls.name)
        if registered is not cls:
            _fail(name, c, f"the registry resolves {cls.name!r} to {registered!r}, not to {cls!r}")


def _bad_input(det, name):
    c = "bad_input"
    few = max(int(det.min_bands) - 1, 0)
    for what, cube, pattern in (
        (f"a cube of {few} band(s) (min_bands {det.min_bands})", np.ones((10, 10, few)), "band"),
        ("a cube without a valid pixel (all NaN)", np.full((10, 10, max(6, int(det.min_bands))), np.nan), "valid"),
    ):
        try:
            det.detect(cube)
        except InputError as exc:
            msg = str(exc)
            if "\n" in msg.strip() or pattern not in msg:
                _fail(name, c, f"{what}: InputError message should be one line naming the {pattern}s, got {msg!r}")
            continue
        except Exception as exc:  # noqa: BLE001
            _fail(name, c, f"{what}: raised {type(exc).__name__} ({exc}), expected InputError")
        _fail(name, c, f"{what}: no error raised, expected InputError")


def _tiny_inputs(make, name, cube):
    c = "tiny_input"
    H, W, B = cube.shape
    one_valid = np.zeros((H, W), bool)
    one_valid[H // 2, W // 2] = True
    fewest = np.zeros(H * W, bool)  # exactly min_pixels valid pixels, spread over the scene
    fewest[np.linspace(0, H * W - 1, max(1, min(int(make().min_pixels), H * W))).astype(int)] = True
    cases = [
        ("a 1 x 1 image", cube[:1, :1], None),
        ("a cube with one valid pixel", cube, one_valid),
        (f"a cube with min_pixels ({int(fewest.sum())}) valid pixels", cube, fewest.reshape(H, W)),
        ("a 3 x 3 image", cube[:3, :3], None),
        (f"a 1 x {W} strip", cube[:1], None),
    ]
    for what, X, mask in cases:
        X = np.ascontiguousarray(X)
        try:
            s = make().detect(X, mask)
        except InputError:
            continue
        except Exception as exc:  # noqa: BLE001
            _fail(name, c, f"{what}: raised {type(exc).__name__} ({exc}); expected scores or InputError")
        invalid = ~np.isfinite(X).all(axis=2) | ~(X != 0).any(axis=2)
        if mask is not None:
            invalid |= ~mask
        _check_scores(name, c, s, invalid, finite=False, what=what)


def _streamed(det_factory, name, X, mask, ref):
    from . import engine

    c = "streamed"
    det = det_factory()
    halo = int(det.context().halo)
    mb = _several_blocks_budget(det, X.shape)
    if mb is None:  # the halo covers the cube: mirror it until a block of 8 pixels and its halo is a part of it
        X, mask = _mirror_to(X, mask, 2 * (8 + halo) + 1)
        ref = _run(name, c, det_factory().detect, X, mask)
        mb = _several_blocks_budget(det, X.shape)
        if mb is None:
            _fail(name, c, f"no memory budget makes the engine cut a {X.shape} cube into several blocks")
    sink, info = _run(name, c, engine.run, det, engine.ArraySource(X, mask), mem_limit_mb=mb)
    if info.plan.n_blocks < 2:
        _fail(name, c, f"the engine ran {info.plan.n_blocks} block(s) under {mb:.3f} MB, expected several")
    _assert_close(name, c, np.asarray(sink.array), ref,
                  f"streamed in {info.plan.n_blocks} blocks against in-memory detect ({X.shape[0]} x {X.shape[1]})")
    return info.plan.n_blocks


# ------------------------------------------------------------------------------------------------ entry
def check_detector(cls_or_name, cube=None, *, params: Optional[Dict[str, Any]] = None,
                   checks: Optional[Iterable[str]] = None) -> List[str]:
    """Run the contract checks on a detector; return the names of the checks run, in order.

    Parameters
    ----------
    cls_or_name : type, Detector or str
        The detector class (registered or not), an instance (its class is checked) or a registry name.
    cube : array (H, W, B), optional
        The scene to run on, at least 8 x 8 pixels (the checks add invalid pixels to a copy). Default:
        :func:`synthetic_cube` (24 x 24 x 24).
    params : dict, optional
        Parameters merged over the class's ``test_params``.
    checks : iterable of str, optional
        A subset of :data:`CHECKS` (default: all). ``streamed`` runs only for detectors whose Context is exact,
        and checks listed in :data:`EXEMPT` for the detector are skipped; neither appears in the result.

    Raises
    ------
    AssertionError
        at the first failed check, naming the detector, the check and what differed.
    """
    cls = _resolve(cls_or_name)
    registered_as = cls_or_name.strip().lower() if isinstance(cls_or_name, str) else None
    name = getattr(cls, "name", None) or getattr(cls, "__name__", repr(cls))
    wanted = list(CHECKS) if checks is None else list(checks)
    unknown = [w for w in wanted if w not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; the checks are {CHECKS}")
    exempt = EXEMPT.get(name, {})
    kw = detector_params(cls, params)
    cube = synthetic_cube() if cube is None else np.asarray(cube, dtype=np.float64)
    if cube.ndim != 3 or cube.shape[0] < 8 or cube.shape[1] < 8:
        raise ValueError(f"check_detector needs a cube of at least 8 x 8 pixels (H, W, B), got {cube.shape}")

    def make():
        return cls(**kw)

    done: List[str] = []
    memo: Dict[str, Any] = {}

    def layout():
        if "layout" not in memo:
            memo["layout"] = _invalid_layout(cube)
        return memo["layout"]

    def masked_scores():
        if "a" not in memo:
            X, mask, _ = layout()
            memo["a"] = _run(name, "output", make().detect, X, mask)
        return memo["a"]

    def constant():
        if "const" not in memo:
            Xc = np.array(cube, dtype=np.float64, copy=True)
            band = min(2, Xc.shape[2] - 1)
            Xc[:, :, band] = float(np.mean(Xc[:, :, band]))
            memo["const"] = Xc
        return memo["const"]

    for check in CHECKS:
        if check not in wanted or check in exempt:
            continue
        if check == "declaration":
            _check_declaration(cls, name, kw, registered_as)
        elif check == "output":
            _X, _mask, invalid = layout()
            _check_scores(name, check, masked_scores(), invalid)
        elif check == "invalid_pixels":
            X, mask, invalid = layout()
            a = masked_scores()
            P = X.copy()
            P[~mask] = 1e7
            H, W, B = P.shape
            P[H // 2, W // 2, 0] = np.nan  # a masked-out pixel with a NaN too
            P[0, 0, :] = np.inf
            P[H // 4, W - 3, :] = 1e7  # the pixel with a NaN band: every other band poisoned
            P[H // 4, W - 3, 1 % B] = np.nan
            b = _run(name, check, make().detect, P, mask)
            _check_scores(name, check, b, invalid, what="scores with poisoned invalid pixels")
            _assert_close(name, check, b, a, "scores with poisoned invalid pixels against clean ones")
        elif check == "constant_band":
            s = _run(name, check, make().detect, constant())
            memo["const_scores"] = s
            _check_scores(name, check, s, np.zeros(cube.shape[:2], bool), what="scores of a cube with a constant band")
        elif check == "determinism":
            Xc = constant()
            first = memo.get("const_scores")
            if first is None:
                first = _run(name, check, make().detect, Xc)
            again = _run(name, check, make().detect, Xc)
            if not (np.asarray(first).shape == np.asarray(again).shape
                    and np.array_equal(np.asarray(first), np.asarray(again), equal_nan=True)):
                d = np.nanmax(np.abs(np.asarray(first, np.float64) - np.asarray(again, np.float64)))
                _fail(name, check, f"two runs with the same input and parameters differ (largest difference {d!r})")
        elif check == "fit_score":
            X, mask, invalid = layout()
            det = make()
            fitted = _run(name, check, det.fit, X, mask)
            if fitted is not det:
                _fail(name, check, "fit must return the detector itself")
            s = _run(name, check, det.decision_function, X, mask)
            _check_scores(name, check, s, invalid, what="decision_function after fit")
            _assert_close(name, check, s, masked_scores(), "fit + decision_function against detect")
        elif check == "streamed":
            if not make().context().exact:
                continue
            X, mask, _ = layout()
            _streamed(make, name, X, mask, masked_scores())
        elif check == "bad_input":
            _bad_input(make(), name)
        elif check == "tiny_input":
            _tiny_inputs(make, name, cube)
        done.append(check)
    return done


def _names(names: Optional[Sequence[str]] = None) -> List[str]:  # pragma: no cover - convenience for scripts
    from .registry import list_detectors

    return list(names) if names else list_detectors()


if __name__ == "__main__":  # pragma: no cover - python -m hadcore.testing [NAME ...]
    import sys
    import time

    for n in _names(sys.argv[1:]):
        t0 = time.perf_counter()
        ran = check_detector(n)
        print(f"{n}: {len(ran)} checks passed in {time.perf_counter() - t0:.1f} s ({', '.join(ran)})")
