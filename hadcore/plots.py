"""Figures of a benchmark run (:class:`hadcore.benchmark.BenchmarkResult`): ROC curves, 3-D ROC, background /
anomaly box plots and score maps, as PNG files.

matplotlib is an optional extra (``pip install "hadcore[plots]"``): the detectors, the engine, the readers and
the benchmark's tables do not need it; :func:`make_figures` without it is a one-line
:class:`~hadcore.errors.HadcoreError` naming the extra.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Tuple

import numpy as np

from .errors import HadcoreError
from .metrics import normalize_scores, roc_curve

if TYPE_CHECKING:  # annotations only
    from .benchmark import BenchmarkResult

__all__ = ["make_figures", "have_matplotlib"]


def have_matplotlib() -> bool:
    """matplotlib can be imported (the ``plots`` extra is installed)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _grid(n: int) -> Tuple[int, int]:
    cols = min(n, 3)
    return int(math.ceil(n / cols)), cols


def make_figures(result: "BenchmarkResult", out_dir, prefix: str = "bench_", dpi: int = 110) -> Dict[str, Path]:
    """Write the figures (PNG) and return ``{label: path}``.

    - ``<prefix>roc.png``: ROC curves (PD against PF, log PF axis), one panel per scene;
    - ``<prefix>roc3d.png``: 3-D ROC (PF, tau, PD) with tau the min-max normalised threshold;
    - ``<prefix>box.png``: background vs anomaly normalised scores per detector (separability);
    - ``<prefix>maps.png``: score maps (normalised) beside the ground truth, one row per scene.
    """
    try:
        from matplotlib.figure import Figure  # lazily: the core does not need matplotlib
    except ImportError:
        raise HadcoreError("figures need matplotlib: pip install 'hadcore[plots]' (or leave the figures out)") \
            from None

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dets = result.detectors
    scenes = result.scenes
    cmap_colors = _colors(len(dets))
    paths: Dict[str, Path] = {}
    rows, cols = _grid(len(scenes))

    # ROC curves
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows))
    for i, sc in enumerate(scenes):
        ax = fig.add_subplot(rows, cols, i + 1)
        for j, d in enumerate(dets):
            s = result.scores.get((sc.name, d))
            if s is None:
                continue
            pf, pd_, _ = roc_curve(s, sc.gt, sc.mask)
            auc = result.row(sc.name, d)["auc_pd_pf"]
            ax.plot(np.maximum(pf, 1e-5), pd_, color=cmap_colors[j], lw=1.3, label=f"{d} ({auc:.3f})")
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1.0)
        ax.set_ylim(0, 1.01)
        ax.set_title(sc.name, fontsize=10)
        ax.set_xlabel("PF")
        ax.set_ylabel("PD")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    paths["ROC curves"] = _save(fig, out / f"{prefix}roc.png", dpi)

    # 3-D ROC
    fig = Figure(figsize=(4.4 * cols, 4.0 * rows))
    for i, sc in enumerate(scenes):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        for j, d in enumerate(dets):
            s = result.scores.get((sc.name, d))
            if s is None:
                continue
            pf, pd_, thr = roc_curve(s, sc.gt, sc.mask)
            valid = np.isfinite(s) if sc.mask is None else (np.isfinite(s) & sc.mask)
            lo, hi = float(np.min(s[valid])), float(np.max(s[valid]))
            tau = np.clip((thr - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)  # thr[0] = inf -> 1
            ax.plot(pf, tau, pd_, color=cmap_colors[j], lw=1.2, label=d)
        ax.set_xlabel("PF", fontsize=8)
        ax.set_ylabel("τ", fontsize=8)
        ax.set_zlabel("PD", fontsize=8)
        ax.set_title(sc.name, fontsize=10)
        ax.tick_params(labelsize=6)
        if i == 0:
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    paths["3-D ROC (PD, PF, τ)"] = _save(fig, out / f"{prefix}roc3d.png", dpi)

    # background-anomaly box plots (fewer panels per row when there are many detectors)
    bcols = cols if len(dets) <= 5 else min(len(scenes), 2)
    brows = int(math.ceil(len(scenes) / bcols))
    fig = Figure(figsize=(max(4.2, 0.55 * len(dets) + 1.5) * bcols, 3.0 * brows))
    for i, sc in enumerate(scenes):
        ax = fig.add_subplot(brows, bcols, i + 1)
        data, pos, colors = [], [], []
        g = sc.gt > 0
        for j, d in enumerate(dets):
            s = result.scores.get((sc.name, d))
            if s is None:
                continue
            n = normalize_scores(s, sc.mask)
            ok = np.isfinite(n)
            data += [n[ok & ~g], n[ok & g]]
            pos += [3 * j + 1, 3 * j + 2]
            colors += ["#4c72b0", "#dd5555"]
        if data:
            bp = ax.boxplot(data, positions=pos, widths=0.8, whis=(5, 95), showfliers=False, patch_artist=True)
            for patch, c in zip(bp["boxes"], colors):
                patch.set_facecolor(c)
                patch.set_alpha(0.75)
        ax.set_xticks([3 * j + 1.5 for j in range(len(dets))])
        ax.set_xticklabels(dets, rotation=45, fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(sc.name, fontsize=10)
        ax.set_ylabel("normalised score")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("background (blue) vs anomaly (red), whiskers 5-95 %", fontsize=10)
    fig.tight_layout()
    paths["Background-anomaly separability"] = _save(fig, out / f"{prefix}box.png", dpi)

    # score maps beside the ground truth
    ncol = len(dets) + 1
    fig = Figure(figsize=(1.9 * ncol, 2.0 * len(scenes) + 0.3))
    for i, sc in enumerate(scenes):
        ax = fig.add_subplot(len(scenes), ncol, i * ncol + 1)
        ax.imshow(sc.gt, cmap="gray", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(sc.name, fontsize=7)
        if i == 0:
            ax.set_title("ground truth", fontsize=8)
        for j, d in enumerate(dets):
            ax = fig.add_subplot(len(scenes), ncol, i * ncol + j + 2)
            s = result.scores.get((sc.name, d))
            if s is not None:
                ax.imshow(normalize_scores(s, sc.mask), cmap="inferno", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(d, fontsize=8)
    fig.tight_layout()
    paths["Score maps"] = _save(fig, out / f"{prefix}maps.png", min(dpi, 90))
    return paths


def _colors(n: int):
    base = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]
    return [base[i % len(base)] for i in range(n)]


def _save(fig, path: Path, dpi: int) -> Path:
    fig.savefig(path, dpi=dpi)
    return path
