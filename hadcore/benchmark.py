"""The benchmark harness: run registry detectors over scenes with ground truth, tabulate and plot.

>>> res = run_benchmark(["rx", "aed"], find_scenes("data/"))          # doctest: +SKIP
>>> write_outputs(res, "out/")                                         # doctest: +SKIP

- :func:`find_scenes` lists ``.npz``, ``.mat`` and GeoTIFF scenes of a folder (a GeoTIFF's ground truth is
  the sibling ``<stem>_gt.tif``; ``*_gt.tif`` files are not scenes themselves).
- :func:`run_benchmark` runs every detector on every scene, timing ``detect`` alone (wall clock,
  ``time.perf_counter``; ``cpu_seconds``: CPU time of the process, all threads, which a busy machine
  inflates less), and scores it with :func:`hadcore.metrics.evaluate` over the valid pixels.
  A detector that fails on a scene (a missing optional dependency, bad parameters for that scene) is
  recorded with its error and the run goes on.
- :func:`write_csv` and :func:`markdown_report` write the results, :func:`hadcore.plots.make_figures` the
  figures (matplotlib, the optional ``plots`` extra); :func:`write_outputs` does all three.

Only numpy (and hadcore) at module level: scipy.io and rasterio are imported when used.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import FileError, HadcoreError, InputError, ParameterError
from .metrics import evaluate

__all__ = [
    "Scene",
    "BenchmarkResult",
    "find_scenes",
    "load_scene",
    "parse_detector_params",
    "run_benchmark",
    "write_csv",
    "markdown_report",
    "write_outputs",
    "METRIC_COLUMNS",
]

#: metric columns of the table, in order, with their Markdown headers
METRIC_COLUMNS = (
    ("auc_pd_pf", "AUC(PD,PF)"),
    ("auc_pd_tau", "AUC(PD,τ)"),
    ("auc_pf_tau", "AUC(PF,τ)"),
    ("auc_bs", "AUC_BS"),
    ("snpr", "SNPR"),
)
CSV_FIELDS = ("scene", "detector", "auc_pd_pf", "auc_pd_tau", "auc_pf_tau", "auc_bs", "snpr", "snpr_db",
              "seconds", "cpu_seconds", "error")
_SCENE_SUFFIXES = (".npz", ".mat", ".tif", ".tiff")


# ---------------------------------------------------------------------------------------------- scenes
@dataclass
class Scene:
    """A cube with its ground truth: ``cube`` (H, W, B), ``gt`` (H, W) uint8, ``mask`` (H, W) bool or None."""

    name: str
    cube: np.ndarray
    gt: np.ndarray
    mask: Optional[np.ndarray] = None


def find_scenes(data_dir) -> List[Path]:
    """Scene files of ``data_dir`` (.npz, .mat, .tif/.tiff but not ``*_gt.tif``), sorted by name."""
    d = Path(data_dir)
    if not d.is_dir():
        raise FileError(f"benchmark data folder not found: {str(d)!r}")
    out = []
    for p in sorted(d.iterdir()):
        suf = p.suffix.lower()
        if not p.is_file() or suf not in _SCENE_SUFFIXES:
            continue
        if suf in (".tif", ".tiff") and p.stem.lower().endswith("_gt"):
            continue
        out.append(p)
    if not out:
        raise FileError(f"no scenes (.npz, .mat, .tif) in {str(d)!r}")
    return out


def load_scene(path) -> Scene:
    """Read one scene with its ground truth through :func:`hadcore.io.read_raster`."""
    from .io import read_raster

    p = Path(path)
    if not p.exists():
        raise FileError(f"scene file not found: {str(p)!r}")
    r = read_raster(str(p))
    cube, gt, mask = r.cube, r.gt, r.mask
    if gt is None:
        raise InputError(f"{p.name}: no ground truth (an .npz/.mat 'gt' array, or a sibling {p.stem}_gt.tif)")
    gt = np.asarray(gt)
    cube = np.asarray(cube)
    if cube.ndim != 3 or gt.shape != cube.shape[:2]:
        raise InputError(f"{p.name}: ground truth shape {gt.shape} does not match the cube {cube.shape}")
    return Scene(p.stem, cube, (gt > 0).astype(np.uint8), None if mask is None else np.asarray(mask, bool))


# ---------------------------------------------------------------------------------------------- running
def parse_detector_params(items: Sequence[str], detectors: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """``["lrx.inner=5", ...]`` -> ``{"lrx": {"inner": "5"}}``; values stay strings (the Param coerces).

    Raises ParameterError for a malformed item or a detector not in ``detectors``.
    """
    out: Dict[str, Dict[str, str]] = {}
    for item in items:
        key, eq, value = str(item).partition("=")
        det, dot, name = key.strip().partition(".")
        if not eq or not dot or not det or not name:
            raise ParameterError(f"expected DETECTOR.PARAM=VALUE (e.g. lrx.inner=5), got {item!r}")
        det = det.lower()
        if det not in detectors:
            raise ParameterError(f"parameter {item!r} names detector {det!r}, which is not among {list(detectors)}")
        out.setdefault(det, {})[name.strip()] = value.strip()
    return out


@dataclass
class BenchmarkResult:
    """Rows (one per scene x detector, dicts with :data:`CSV_FIELDS`), the scenes and the score maps."""

    detectors: List[str]
    scenes: List[Scene]
    rows: List[dict] = field(default_factory=list)
    scores: Dict[Tuple[str, str], np.ndarray] = field(default_factory=dict)

    def row(self, scene: str, detector: str) -> dict:
        for r in self.rows:
            if r["scene"] == scene and r["detector"] == detector:
                return r
        raise KeyError((scene, detector))

    def mean(self, detector: str, key: str) -> float:
        vals = [r[key] for r in self.rows if r["detector"] == detector and not r["error"]]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")


ProgressHook = Callable[[int, int, str, str, float], None]


def run_benchmark(
    detectors: Sequence[str],
    scenes: Sequence[Union[str, os.PathLike, Scene]],
    params: Optional[Dict[str, Dict[str, object]]] = None,
    on_progress: Optional[ProgressHook] = None,
    keep_scores: bool = True,
) -> BenchmarkResult:
    """Run every detector on every scene and evaluate it.

    Parameters
    ----------
    detectors : registry names, in table order.
    scenes : paths (read with :func:`load_scene`) or :class:`Scene` objects.
    params : per-detector parameters, ``{"lrx": {"inner": 5}}``.
    on_progress : ``f(run_index, n_runs, scene, detector, fraction)``, called as each detector advances.
    keep_scores : keep the score maps (for :func:`make_figures`).
    """
    from .registry import get_detector

    params = params or {}
    dets = [str(d).strip().lower() for d in detectors if str(d).strip()]
    if not dets:
        raise ParameterError("no detector given; expected a list such as rx,lrx")
    # build every detector first: unknown names and bad parameters fail before any work
    instances = {d: get_detector(d, **params.get(d, {})) for d in dets}
    loaded = [s if isinstance(s, Scene) else load_scene(s) for s in scenes]
    if not loaded:
        raise InputError("no scenes to benchmark")
    res = BenchmarkResult(detectors=dets, scenes=loaded)
    n_runs = len(dets) * len(loaded)
    k = 0
    for sc in loaded:
        for d in dets:
            def cb(frac, _msg=None, _k=k, _s=sc.name, _d=d):
                if on_progress is not None:
                    on_progress(_k, n_runs, _s, _d, frac)

            cb(0.0)
            row = {f: None for f in CSV_FIELDS}
            row.update(scene=sc.name, detector=d, error="")
            try:
                t0, c0 = time.perf_counter(), time.process_time()
                s = instances[d].detect(sc.cube, sc.mask, progress=cb)
                row["seconds"] = time.perf_counter() - t0
                row["cpu_seconds"] = time.process_time() - c0
                row.update(evaluate(s, sc.gt, sc.mask))
                if keep_scores:
                    res.scores[(sc.name, d)] = s
            except HadcoreError as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
            except ImportError as exc:  # an optional dependency of that detector
                row["error"] = f"ImportError: {exc}"
            cb(1.0)
            res.rows.append(row)
            k += 1
    return res


# ---------------------------------------------------------------------------------------------- tables
def scene_table(result: "BenchmarkResult", detectors: Sequence[str], scenes: Sequence[str]) -> str:
    """Plain-text table (scene x detector: AUC(PD,PF) and seconds) for the console benchmarks."""
    lines = [f"{'scene':15s}" + "".join(f"{d:>16s}" for d in detectors)]
    for scene in scenes:
        cells = []
        for d in detectors:
            r = result.row(scene, d)
            cells.append("error" if r["error"] else f"{r['auc_pd_pf']:.4f} {r['seconds']:6.1f}s")
        lines.append(f"{scene:15s}" + "".join(f"{c:>16s}" for c in cells))
    return "\n".join(lines)


def _fmt(v, digits=4) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.{digits}f}"
    return str(v)


def write_csv(result: BenchmarkResult, path) -> Path:
    """One row per scene x detector; full precision."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CSV_FIELDS))
        w.writeheader()
        for r in result.rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS})
    return p


def markdown_report(result: BenchmarkResult, figures: Optional[Dict[str, str]] = None, title: str = "Benchmark") -> str:
    """Markdown: a summary (mean over scenes per detector), then one scene x detector table per metric."""
    dets = result.detectors
    names = [s.name for s in result.scenes]
    lines = [f"# {title}", ""]
    lines.append(
        f"{len(names)} scene(s), {len(dets)} detector(s). Metrics as in EVALUATION.md (4 decimals); "
        "seconds = wall-clock time of `detect` on this machine."
    )
    lines += ["", "## Mean over scenes", ""]
    head = ["detector"] + [h for _, h in METRIC_COLUMNS] + ["seconds (mean)", "seconds (max)"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for d in dets:
        secs = [r["seconds"] for r in result.rows if r["detector"] == d and r["seconds"] is not None]
        cells = [d] + [_fmt(result.mean(d, k)) for k, _ in METRIC_COLUMNS]
        cells += [_fmt(float(np.mean(secs)), 2) if secs else "", _fmt(float(np.max(secs)), 2) if secs else ""]
        lines.append("| " + " | ".join(cells) + " |")
    for key, header in METRIC_COLUMNS + (("seconds", "seconds"),):
        lines += ["", f"## {header}", ""]
        lines.append("| scene | " + " | ".join(dets) + " |")
        lines.append("|" + "---|" * (len(dets) + 1))
        for n in names:
            cells = []
            for d in dets:
                r = result.row(n, d)
                cells.append("error" if r["error"] else _fmt(r[key], 2 if key == "seconds" else 4))
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        if key != "seconds":
            lines.append("| **mean** | " + " | ".join(_fmt(result.mean(d, key)) for d in dets) + " |")
    errors = [r for r in result.rows if r["error"]]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- {r['detector']} on {r['scene']}: {r['error']}" for r in errors]
    if figures:
        lines += ["", "## Figures", ""]
        for label, rel in figures.items():
            lines += [f"### {label}", "", f"![{label}]({rel})", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(result: BenchmarkResult, out_dir, figures: bool = True, prefix: str = "bench_",
                  title: str = "Benchmark", img_subdir: str = "") -> Dict[str, Path]:
    """Write ``benchmark.csv``, ``benchmark.md`` and (``figures``) the PNGs; return the paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: Dict[str, Path] = {"csv": write_csv(result, out / "benchmark.csv")}
    figs: Dict[str, str] = {}
    if figures:
        from .plots import make_figures

        img_dir = out / img_subdir if img_subdir else out
        for label, p in make_figures(result, img_dir, prefix=prefix).items():
            paths[label] = p
            figs[label] = os.path.relpath(p, out).replace(os.sep, "/")
    md = out / "benchmark.md"
    md.write_text(markdown_report(result, figs, title=title), encoding="utf-8")
    paths["md"] = md
    return paths


def __getattr__(name: str):
    """``hadcore.benchmark.make_figures`` (its home before the figures moved to :mod:`hadcore.plots`)."""
    if name == "make_figures":
        from .plots import make_figures

        return make_figures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
