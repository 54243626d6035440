"""Detection metrics (Chang's 3-D ROC), as defined in the project's EVALUATION.md.

- ``auc_pd_pf``: area under PD against PF over all thresholds, ties counted half (= ROC AUC).
- scores min-max normalised to [0, 1] over valid pixels, threshold tau swept over [0, 1]:
  ``auc_pd_tau`` = mean normalised score of anomaly pixels (area under PD(tau)),
  ``auc_pf_tau`` = mean normalised score of background pixels (area under PF(tau)).
- ``auc_bs`` = auc_pd_pf - auc_pf_tau; ``snpr`` = auc_pd_tau / auc_pf_tau; ``snpr_db`` = 10 log10(snpr).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from .errors import InputError

__all__ = ["evaluate", "roc_auc", "roc_curve", "normalize_scores", "METRIC_NAMES"]

METRIC_NAMES = ("auc_pd_pf", "auc_pd_tau", "auc_pf_tau", "auc_bs", "snpr", "snpr_db")


def _flatten(scores, gt, mask=None):
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(gt)
    if s.shape != g.shape:
        raise InputError(f"scores shape {s.shape} does not match ground truth shape {g.shape}")
    valid = np.isfinite(s)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != s.shape:
            raise InputError(f"mask shape {m.shape} does not match scores shape {s.shape}")
        valid &= m
    s = s[valid]
    g = g[valid] > 0
    n_pos = int(g.sum())
    if n_pos == 0 or n_pos == g.size:
        raise InputError(
            f"ground truth needs both anomaly and background pixels among the valid ones; got {n_pos} anomaly "
            f"and {g.size - n_pos} background"
        )
    return s, g


def roc_auc(scores, gt, mask=None) -> float:
    """Area under the ROC curve (PD vs PF), ties counted half (Mann-Whitney U)."""
    s, g = _flatten(scores, gt, mask)
    return _auc(s, g)


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D float array, ties given their average rank (``scipy.stats.rankdata(s)``).

    Written with numpy so that importing the metrics does not import ``scipy.stats`` (about a second of
    start-up for every ``hadcore detect``). Average ranks are half-integers, exact in float64, so the result
    is bit-identical to rankdata's. ``s`` holds no NaN (the callers keep finite scores only).
    """
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    starts = np.r_[True, sorted_s[1:] != sorted_s[:-1]]  # first position of every run of equal values
    group = np.cumsum(starts) - 1  # run index of every sorted position
    bounds = np.r_[np.flatnonzero(starts), s.size]  # run k occupies sorted positions bounds[k] .. bounds[k+1]-1
    avg = 0.5 * (bounds[:-1] + bounds[1:] + 1)  # mean of the 1-based ranks bounds[k]+1 .. bounds[k+1]
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = avg[group]
    return ranks


def _auc(s, g) -> float:
    ranks = _average_ranks(s)  # average ranks: ties count half
    n_pos = g.sum()
    n_neg = g.size - n_pos
    return float((ranks[g].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def normalize_scores(scores, mask=None) -> np.ndarray:
    """Min-max scale to [0, 1] over finite (and masked-valid) pixels; NaN elsewhere. Constant -> zeros."""
    s = np.asarray(scores, dtype=np.float64)
    valid = np.isfinite(s)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    out = np.full(s.shape, np.nan)
    if not valid.any():
        return out
    lo, hi = s[valid].min(), s[valid].max()
    out[valid] = (s[valid] - lo) / (hi - lo) if hi > lo else 0.0
    return out


def roc_curve(scores, gt, mask=None):
    """(pf, pd, thresholds) of the ROC curve, thresholds decreasing (detection = score >= threshold)."""
    s, g = _flatten(scores, gt, mask)
    order = np.argsort(-s, kind="mergesort")
    s, g = s[order], g[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(g)[distinct]
    fp = (distinct + 1) - tp
    pd_ = np.r_[0.0, tp / g.sum()]
    pf = np.r_[0.0, fp / (g.size - g.sum())]
    thr = np.r_[np.inf, s[distinct]]
    return pf, pd_, thr


def evaluate(scores, gt, mask=None) -> Dict[str, float]:
    """All metrics of EVALUATION.md over valid pixels (finite scores, and ``mask`` if given)."""
    s, g = _flatten(scores, gt, mask)
    auc = _auc(s, g)
    lo, hi = s.min(), s.max()
    n = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
    pd_tau = float(n[g].mean())
    pf_tau = float(n[~g].mean())
    snpr = pd_tau / pf_tau if pf_tau > 0 else float("inf")
    return {
        "auc_pd_pf": auc,
        "auc_pd_tau": pd_tau,
        "auc_pf_tau": pf_tau,
        "auc_bs": auc - pf_tau,
        "snpr": float(snpr),
        "snpr_db": float(10 * np.log10(snpr)) if snpr > 0 else float("-inf"),
    }


def format_metrics(m: Dict[str, float], digits: int = 4) -> str:
    return "  ".join(f"{k}={m[k]:.{digits}f}" for k in METRIC_NAMES if k in m)
