"""Threshold specifications that turn a score map into detections.

A pixel is a detection when its score is ``>=`` the threshold value. Specs:

- ``percentile:P``  the P-th percentile of the valid scores (0 < P < 100), e.g. ``percentile:99.5``;
- ``value:X``       a fixed score;
- ``top:N``         the N highest-scoring pixels (ties at the N-th score are all kept);
- ``otsu``          Otsu's threshold on a 256-bin histogram of the valid scores;
- ``fpr:R``         the (1-R) quantile of the scores' law under a Gaussian background (their *null law*,
                    :class:`NullLaw`), so that about R of the background is flagged (e.g. ``fpr:1e-3``): for the
                    detectors that declare one (:meth:`hadcore.base.Detector.null_law`): RX and LRX
                    (chi-square with B degrees of freedom), ACE (beta; signed: the signed cosine's law) and MF
                    (normal). Without a law, ``fpr:`` falls back to chi-square with the band count B.

The laws hold for a Gaussian background whose mean and covariance are those the detector whitens by; real
backgrounds have heavier tails, so the flagged share is then larger than R (``fpr:`` is a calibrated start, not
a guarantee).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .errors import InputError, ParameterError

__all__ = ["ThresholdSpec", "NullLaw", "parse_threshold", "threshold_value", "otsu", "THRESHOLD_HELP"]

THRESHOLD_HELP = ("percentile:P | value:X | top:N | otsu | fpr:R (flags about R of a Gaussian background: "
                  "detectors with a null law, RX chi-square with B dof, ACE beta, MF normal)")

#: kind -> its parameters' names, in the order of the tag text and of :attr:`NullLaw.params`
_LAW_PARAMS = {"chi2": ("df",), "normal": ("loc", "scale"), "beta": ("a", "b"), "signed-beta": ("a", "b")}


def _num(x: float) -> str:
    """The shortest text that reads back to the same float (``224``, ``0.5``, ``0.0123``)."""
    x = float(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


@dataclass(frozen=True)
class NullLaw:
    r"""The law of a detector's scores on background pixels (the null hypothesis: a Gaussian background with the
    mean and covariance the detector uses), which an ``fpr:R`` threshold inverts: :meth:`isf`.

    Kinds (``params`` in this order):

    - ``chi2`` (df): chi-square with ``df`` degrees of freedom (RX: the Mahalanobis distance of B bands);
    - ``normal`` (loc, scale): :math:`N(\mathrm{loc}, \mathrm{scale}^2)` (the matched filter);
    - ``beta`` (a, b): Beta(a, b) on [0, 1] (ACE's squared cosine: Beta(1/2, (B-1)/2));
    - ``signed-beta`` (a, b): the law of a cosine :math:`c` on [-1, 1], symmetric about 0, whose square is
      Beta(a, b) (the signed ACE): :math:`P(c > t) = P(c^2 > t^2) / 2` for :math:`t \ge 0`.

    ``str(law)`` is its tag text (``chi2:224``, ``normal:0:0.0123``, ``beta:0.5:111.5``); :meth:`parse` reads
    it back (exactly: the numbers are written to full precision).
    """

    kind: str
    params: Tuple[float, ...]

    def __post_init__(self):
        names = _LAW_PARAMS.get(self.kind)
        if names is None:
            raise ParameterError(f"unknown null law {self.kind!r}; known: {', '.join(_LAW_PARAMS)}")
        p = tuple(float(v) for v in self.params)
        object.__setattr__(self, "params", p)
        if len(p) != len(names):
            raise ParameterError(f"null law {self.kind!r} takes {len(names)} parameter(s) "
                                 f"({', '.join(names)}), got {len(p)}")
        if not all(math.isfinite(v) for v in p):
            raise ParameterError(f"null law {self.kind!r}: parameters must be finite, got {p}")
        positive = p if self.kind != "normal" else p[1:]  # normal: loc is any number
        if any(v <= 0 for v in positive):
            raise ParameterError(f"null law {self.kind!r}: {', '.join(names)} must be > 0"
                                 + (" (loc excepted)" if self.kind == "normal" else "") + f", got {p}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def chi2(cls, df: float) -> "NullLaw":
        return cls("chi2", (df,))

    @classmethod
    def normal(cls, loc: float = 0.0, scale: float = 1.0) -> "NullLaw":
        return cls("normal", (loc, scale))

    @classmethod
    def beta(cls, a: float, b: float) -> "NullLaw":
        return cls("beta", (a, b))

    @classmethod
    def signed_beta(cls, a: float, b: float) -> "NullLaw":
        return cls("signed-beta", (a, b))

    @classmethod
    def parse(cls, text) -> "NullLaw":
        """The law of a tag text such as ``chi2:224`` or ``normal:0:0.0123`` (one-line ParameterError if bad)."""
        if isinstance(text, NullLaw):
            return text
        kind, *args = [part.strip() for part in str(text).strip().lower().split(":")]
        try:
            values = tuple(float(a) for a in args)
        except ValueError:
            raise ParameterError(f"bad null law {text!r}: expected kind:param[:param], e.g. 'chi2:224'") from None
        return cls(kind, values)

    def __str__(self) -> str:
        return ":".join([self.kind] + [_num(v) for v in self.params])

    # ------------------------------------------------------------------ the law
    def isf(self, r: float) -> float:
        """The score ``t`` with ``P(score > t) = r`` under this law (inverse survival function), 0 < r < 1."""
        r = float(r)
        if not 0 < r < 1:
            raise ParameterError(f"a false-alarm rate must be in (0, 1), got {r!r}")
        # scipy.special rather than scipy.stats: the same functions (scipy.stats calls them), imported in a
        # fraction of the time
        if self.kind == "chi2":
            from scipy.special import chdtri

            return float(chdtri(self.params[0], r))
        if self.kind == "normal":
            from scipy.special import ndtri

            loc, scale = self.params
            return float(loc - scale * ndtri(r))  # ndtri(r) < 0 for r < 1/2: precise in the far tail
        if self.kind == "beta":
            return _beta_isf(*self.params, r)
        # signed-beta: P(c > t) = P(c^2 > t^2) / 2 for t >= 0, and the law is symmetric about 0
        if r <= 0.5:
            return math.sqrt(_beta_isf(*self.params, 2.0 * r))
        return -math.sqrt(_beta_isf(*self.params, 2.0 * (1.0 - r)))

    def sf(self, t: float) -> float:
        """``P(score > t)`` under this law (survival function)."""
        from scipy.special import betainc, chdtrc, ndtr

        t = float(t)
        if self.kind == "chi2":
            return float(chdtrc(self.params[0], t)) if t > 0 else 1.0
        if self.kind == "normal":
            loc, scale = self.params
            return float(ndtr((loc - t) / scale))
        a, b = self.params
        if self.kind == "beta":
            return 1.0 if t <= 0 else 0.0 if t >= 1 else float(betainc(b, a, 1.0 - t))
        if t >= 1:
            return 0.0
        if t <= -1:
            return 1.0
        half = 0.5 * (float(betainc(b, a, 1.0 - t * t)) if t != 0 else 1.0)  # P(c^2 > t^2) / 2
        return half if t >= 0 else 1.0 - half


def _beta_isf(a: float, b: float, r: float) -> float:
    """``t`` with ``P(X > t) = r`` for X ~ Beta(a, b)."""
    from scipy.special import betaincinv

    if r >= 0.5:
        return float(betaincinv(a, b, 1.0 - r))
    # 1 - X ~ Beta(b, a): P(X > t) = P(1 - X < 1 - t); precise for a small r
    return float(1.0 - betaincinv(b, a, r))


@dataclass(frozen=True)
class ThresholdSpec:
    kind: str
    value: Optional[float] = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"


def parse_threshold(spec) -> ThresholdSpec:
    """Parse ``"percentile:99.5"`` and friends (see the module docstring)."""
    if isinstance(spec, ThresholdSpec):
        return spec
    text = str(spec).strip().lower()
    kind, sep, arg = text.partition(":")
    kind = kind.strip()
    if kind == "otsu":
        if arg.strip():
            raise ParameterError(f"threshold 'otsu' takes no value, got {spec!r}")
        return ThresholdSpec("otsu")
    if kind not in ("percentile", "value", "top", "fpr") or not sep:
        raise ParameterError(f"bad threshold {spec!r}; expected {THRESHOLD_HELP}")
    try:
        v = float(arg)
    except ValueError:
        raise ParameterError(f"bad threshold {spec!r}: {arg.strip()!r} is not a number") from None
    if not np.isfinite(v):
        raise ParameterError(f"bad threshold {spec!r}: the value must be finite")
    if kind == "percentile" and not 0 < v < 100:
        raise ParameterError(f"bad threshold {spec!r}: percentile must be in (0, 100)")
    if kind == "top" and (v < 1 or v != int(v)):
        raise ParameterError(f"bad threshold {spec!r}: top needs a whole number >= 1")
    if kind == "fpr" and not 0 < v < 1:
        raise ParameterError(f"bad threshold {spec!r}: fpr must be in (0, 1)")
    return ThresholdSpec(kind, v)


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximum between-class variance) of 1-D values."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = v.min(), v.max()
    if hi <= lo:
        return float(hi)
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)[:-1].astype(np.float64)
    w1 = v.size - w0
    m = np.cumsum(hist * centres)[:-1]
    mu0 = m / np.maximum(w0, 1)
    mu1 = (m[-1] + hist[-1] * centres[-1] - m) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    k = int(np.argmax(between))
    return float(edges[k + 1])


def threshold_value(scores, spec, n_bands: Optional[int] = None, null: Optional[NullLaw] = None) -> float:
    """The score value above which (``>=``) a pixel is a detection, over finite scores.

    ``fpr:R``: ``null.isf(R)`` when the scores' law ``null`` is given (a :class:`NullLaw` or its tag text), else
    chi-square with ``n_bands`` degrees of freedom (the RX law, as before null laws existed).
    """
    ts = parse_threshold(spec)
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise InputError("the score layer has no valid pixel")
    if ts.kind == "value":
        return float(ts.value)
    if ts.kind == "percentile":
        return float(np.percentile(s, ts.value))
    if ts.kind == "top":
        n = int(ts.value)
        if n >= s.size:
            return float(s.min())
        return float(np.partition(s, s.size - n)[s.size - n])
    if ts.kind == "otsu":
        return otsu(s)
    # fpr
    if null is None and isinstance(n_bands, NullLaw):  # a caller that hands check_fpr's result on as n_bands
        null = n_bands
    if null is not None:
        return NullLaw.parse(null).isf(ts.value)
    if not n_bands or n_bands < 1:
        raise ParameterError("threshold 'fpr' needs the scores' null law, or the band count of the RX input "
                             "(chi-square degrees of freedom)")
    return NullLaw.chi2(int(n_bands)).isf(ts.value)
