"""Threshold specifications that turn a score map into detections.

A pixel is a detection when its score is ``>=`` the threshold value. Specs:

- ``percentile:P``  the P-th percentile of the valid scores (0 < P < 100), e.g. ``percentile:99.5``;
- ``value:X``       a fixed score;
- ``top:N``         the N highest-scoring pixels (ties at the N-th score are all kept);
- ``otsu``          Otsu's threshold on a 256-bin histogram of the valid scores;
- ``fpr:R``         for RX scores: the (1-R) quantile of a chi-square law with B degrees of freedom, the
                    distribution of RX scores of a Gaussian background, so about R of the background is
                    flagged (e.g. ``fpr:1e-3``). Needs the band count B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import InputError, ParameterError

__all__ = ["ThresholdSpec", "parse_threshold", "threshold_value", "otsu", "THRESHOLD_HELP"]

THRESHOLD_HELP = "percentile:P | value:X | top:N | otsu | fpr:R (RX scores, chi-square with B dof)"


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


def threshold_value(scores, spec, n_bands: Optional[int] = None) -> float:
    """The score value above which (``>=``) a pixel is a detection, over finite scores."""
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
    if not n_bands or n_bands < 1:
        raise ParameterError("threshold 'fpr' needs the band count of the RX input (chi-square degrees of freedom)")
    # chi2.isf(R, df) is chdtri(df, R) (scipy.stats' own implementation); scipy.special is imported in a
    # fraction of the time scipy.stats takes
    from scipy.special import chdtri

    return float(chdtri(int(n_bands), ts.value))
