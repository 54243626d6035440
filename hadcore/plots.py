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

__all__ = ["make_figures", "have_matplotlib", "plot_detection_spectra", "spectra_html", "spectra_axis"]


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


# ------------------------------------------------------------------------------------------------ detection spectra
#: a gap is drawn where consecutive bands lie more than this many median band steps apart
GAP_FACTOR = 1.8
#: detection colours (the tab10 palette without its grey, which is the background's)
_SPECTRA_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
                   "#17becf", "#393b79", "#637939", "#8c6d31"]


def _need_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise HadcoreError('plots need matplotlib: pip install "hadcore[plots]"') from None
    return Figure, FigureCanvasAgg


def spectra_axis(spectra):
    """``(x, label, order, gaps)`` of the x axis of :func:`plot_detection_spectra`.

    ``x`` the band centres in nm when the spectra carry wavelengths for every band, else the 1-based band
    numbers; ``order`` sorts the bands by ``x``; ``gaps`` the positions ``i`` (into the sorted bands) after which
    a line is broken: where ``x[i + 1] - x[i]`` exceeds :data:`GAP_FACTOR` times the median step, i.e. a band or
    a window (water vapour, 1350-1450 nm) was left out, so that no line bridges it.
    """
    B = spectra.n_bands
    wl = spectra.wavelengths
    if wl is not None and len(wl) == B and np.all(np.isfinite(wl)):
        x, label = np.asarray(wl, dtype=np.float64), "wavelength (nm)"
    else:
        bands = spectra.bands if spectra.bands is not None else np.arange(1, B + 1)
        x, label = np.asarray(bands, dtype=np.float64), "band number"
    order = np.argsort(x, kind="stable")
    xs = x[order]
    steps = np.diff(xs)
    pos = steps[steps > 0]
    gaps = np.zeros(0, dtype=np.int64)
    if pos.size:
        gaps = np.flatnonzero(steps > GAP_FACTOR * float(np.median(pos)))
    return xs, label, order, gaps


def _broken(x, gaps, *ys):
    """``x`` and each of ``ys`` (sorted like ``x``) with a NaN inserted after every position of ``gaps``."""
    if not len(gaps):
        return (x,) + tuple(ys)
    mid = (x[gaps] + x[gaps + 1]) / 2
    xb = np.insert(x, gaps + 1, mid)
    return (xb,) + tuple(np.insert(np.asarray(y, dtype=np.float64), gaps + 1, np.nan) for y in ys)


def _match_text(m) -> str:
    """``"name (3.2°)"`` of a layer row's ``match_1``/``angle_1`` (a dict), or a string as it is; "" if none."""
    if m is None:
        return ""
    if isinstance(m, str):
        return m
    name = m.get("match_1")
    if name is None or (isinstance(name, float) and not np.isfinite(name)) or str(name) == "":
        return ""
    angle = m.get("angle_1")
    try:
        angle = float(angle)
    except (TypeError, ValueError):
        angle = float("nan")
    return f"{name} ({angle:.1f}°)" if np.isfinite(angle) else str(name)


def _plot_ids(spectra, ids, default_max: int = 8):
    if ids is None:
        return [int(i) for i in spectra.ids[:default_max]]
    out = [int(i) for i in ids]
    for i in out:
        spectra.spectrum(i)  # an unknown id: a one-line InputError naming the known ones
    return out


def plot_detection_spectra(spectra, path, ids=None, stat: str = "mean", title=None, matches=None,
                           dpi: int = 110) -> Path:
    """Plot detection spectra (:class:`hadcore.spectra.DetectionSpectra`) to ``path`` (PNG, or SVG/PDF by
    extension) with the Agg backend, and return the path.

    One line per detection of ``ids`` (default: the first 8): its mean spectrum with a shaded ±1 SD band
    (``stat="mean"``), or its peak pixel's spectrum (``stat="peak"``); the background's mean as a grey dashed
    line between dotted ±1 SD lines. x: wavelength (nm) when known, else band number, with gaps where bands
    were left out (:func:`spectra_axis`); y: the spectra's ``units``, else "value". Legend entries read
    "id N (P px)", followed by the best library match when ``matches`` (``{id: {"match_1": name, "angle_1":
    degrees}}`` as the layer's attributes, or ``{id: text}``) has one.
    """
    if stat not in ("mean", "peak"):
        raise HadcoreError(f"unknown spectrum statistic {stat!r}; use mean or peak")
    Figure, FigureCanvasAgg = _need_matplotlib()
    show = _plot_ids(spectra, ids)
    matches = matches or {}
    x, xlabel, order, gaps = spectra_axis(spectra)

    fig = Figure(figsize=(10.0, 5.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    bm, bs = spectra.background_mean[order], spectra.background_std[order]
    xb, m_b, lo_b, hi_b = _broken(x, gaps, bm, bm - bs, bm + bs)
    ax.plot(xb, m_b, color="#555555", ls="--", lw=1.6, zorder=3,
            label=f"background ({int(spectra.background_pixels)} px)")
    ax.plot(xb, lo_b, color="#888888", ls=":", lw=0.9, zorder=3, label="background ±1 SD")
    ax.plot(xb, hi_b, color="#888888", ls=":", lw=0.9, zorder=3)
    for k, det_id in enumerate(show):
        color = _SPECTRA_COLORS[k % len(_SPECTRA_COLORS)]
        n_px = int(spectra.pixels[np.flatnonzero(spectra.ids == det_id)[0]])
        label = f"id {det_id} ({n_px} px)"
        extra = _match_text(matches.get(det_id))
        if extra:
            label += f": {extra}"
        y = spectra.spectrum(det_id, stat)[order]
        if stat == "mean":
            sd = spectra.spectrum(det_id, "std")[order]
            xd, yd, lo, hi = _broken(x, gaps, y, y - sd, y + sd)
            ok = np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(xd, np.where(ok, lo, 0.0), np.where(ok, hi, 0.0), where=ok, color=color, alpha=0.13,
                            lw=0, zorder=1)
        else:
            xd, yd = _broken(x, gaps, y)
        ax.plot(xd, yd, color=color, lw=1.5, zorder=4, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(spectra.units or "value")
    if x.size:
        pad = 0.01 * (x[-1] - x[0]) if x[-1] > x[0] else 0.5
        ax.set_xlim(x[0] - pad, x[-1] + pad)
    ax.grid(alpha=0.3)
    what = "mean ± 1 SD" if stat == "mean" else "peak pixel"
    ax.set_title(title or f"Detection spectra ({what})", fontsize=11)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=dpi)
    return out


def spectra_html(spectra, png_path=None, ids=None, matches=None, title=None, embed: bool = True) -> str:
    """A small HTML report of detection spectra (for the QGIS plugin's result panel): a table of the
    detections (id, pixels, and the best library match when ``matches`` has one, see
    :func:`plot_detection_spectra`) and the plot ``png_path`` embedded as a base64 ``data:`` URI
    (``embed=True``) or linked by its ``file:`` URI. ``ids``: the detections listed (default: all)."""
    import base64
    import html

    show = [int(i) for i in spectra.ids] if ids is None else _plot_ids(spectra, ids)
    matches = matches or {}
    any_match = any(_match_text(matches.get(i)) for i in show)
    head = "<tr><th>id</th><th>pixels</th>" + ("<th>best match</th>" if any_match else "") + "</tr>"
    rows = []
    for det_id in show:
        n_px = int(spectra.pixels[np.flatnonzero(spectra.ids == det_id)[0]])
        cells = f"<td>{det_id}</td><td align=\"right\">{n_px}</td>"
        if any_match:
            cells += f"<td>{html.escape(_match_text(matches.get(det_id)))}</td>"
        rows.append(f"<tr>{cells}</tr>")
    rows.append(f"<tr><td>background</td><td align=\"right\">{int(spectra.background_pixels)}</td>"
                + ("<td></td>" if any_match else "") + "</tr>")
    parts = []
    if title:
        parts.append(f"<h3>{html.escape(str(title))}</h3>")
    axis = "wavelength (nm)" if spectra_axis(spectra)[1].startswith("wave") else "band number"
    parts.append(f"<p>{len(spectra.ids)} detection(s), {spectra.n_bands} bands; x axis: {axis}; "
                 f"values: {html.escape(spectra.units or 'as stored in the scene')}</p>")
    parts.append('<table border="1" cellspacing="0" cellpadding="3">' + head + "".join(rows) + "</table>")
    if png_path is not None:
        p = Path(png_path)
        if embed:
            mime = {".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(p.suffix.lower(),
                                                                                              "image/png")
            src = f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode('ascii')}"
        else:
            src = p.resolve().as_uri()
        parts.append(f'<p><img src="{src}" alt="detection spectra"/></p>')
    return "<div>" + "".join(parts) + "</div>"
