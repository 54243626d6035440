"""Choose GT-HAD's network set by leave-one-scene-out over the nine shared scenes, from saved score maps.

    python bench/bench_gthad.py --threads 1 -p heads=3 -p pool=none --maps MAPS/h3       # one per network
    python bench/gthad_select.py --maps h3=MAPS/h3,h3p=MAPS/h3p,h1=MAPS/h1 [--seeds 0,1,2] [--penalty 0.5]

Each ``name=DIR`` holds the score maps (``<seed>_<scene>.npy``) of one single-network configuration. The
candidates are every configuration alone and every pair of them, combined by the geometric mean and by the
arithmetic mean of their errors (what ``heads`` with two sides and ``combine`` compute: the same seed for
both networks). For each held-out scene the candidate with the best criterion on the other eight (mean
AUC(PD,PF) over scenes and seeds minus ``penalty`` x the worst shortfall against global RX, as
``bench/bench_ensemble.py``) is chosen and scored on the held-out scene; the held-out figures are the
result, the in-sample table is printed beside them. AUC exact (``hadcore.metrics.roc_auc``).
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("HADCORE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SCENES = ["abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2",
          "sandiego-lren", "hydice-162", "pavia-100"]


def combine(maps, how):
    """The detector's own combination (one definition, so the selection scores what gthad computes)."""
    from hadcore.detectors.gthad import combine_errors

    return combine_errors(maps, how)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", required=True, help="name=DIR,name=DIR,...")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--penalty", type=float, default=0.5)
    a = ap.parse_args(argv)

    from hadcore.metrics import roc_auc
    from hadcore.registry import get_detector

    dirs = dict(kv.split("=", 1) for kv in a.maps.split(","))
    seeds = [int(s) for s in a.seeds.split(",")]
    gts, rx = {}, {}
    for sc in SCENES:
        with np.load(DATA / f"{sc}.npz") as z:
            gts[sc] = z["gt"]
            rx[sc] = float(roc_auc(get_detector("rx").detect(z["cube"].astype(np.float32)), z["gt"]))
    cands = [((n,), "one") for n in dirs]
    cands += [(pair, how) for pair in itertools.combinations(dirs, 2) for how in ("geo", "mean")]
    auc = {}  # (candidate, scene) -> mean AUC over seeds
    for names, how in cands:
        for sc in SCENES:
            vals = []
            for sd in seeds:
                maps = [np.load(Path(dirs[n]) / f"{sd}_{sc}.npy").astype(np.float64) for n in names]
                vals.append(roc_auc(combine(maps, how), gts[sc]))
            auc[(names, how), sc] = float(np.mean(vals))

    def label(c):
        return c[0][0] if c[1] == "one" else f"{c[1]}({'+'.join(c[0])})"

    def crit(c, scenes):
        v = [auc[c, s] for s in scenes]
        worst = max(0.0, max(rx[s] - auc[c, s] for s in scenes))
        return float(np.mean(v)) - a.penalty * worst

    print(f"# GT-HAD network sets, seeds {seeds}, criterion mean AUC - {a.penalty} x worst shortfall vs RX\n")
    print("| candidate | " + " | ".join(SCENES) + " | mean | scenes <= RX |")
    print("|---|" + "---|" * (len(SCENES) + 2))
    print("| global RX | " + " | ".join(f"{rx[s]:.4f}" for s in SCENES) + f" | {np.mean(list(rx.values())):.4f} | |")
    for c in cands:
        v = [auc[c, s] for s in SCENES]
        below = sum(auc[c, s] <= rx[s] for s in SCENES)
        print(f"| {label(c)} | " + " | ".join(f"{x:.4f}" for x in v) + f" | {np.mean(v):.4f} | {below} |")
    print("\n## Leave one scene out\n")
    print("| held out | chosen on the other eight | held-out AUC | RX | vs RX |")
    print("|---|---|---|---|---|")
    held = []
    for sc in SCENES:
        rest = [s for s in SCENES if s != sc]
        best = max(cands, key=lambda c: crit(c, rest))
        held.append(auc[best, sc])
        print(f"| {sc} | {label(best)} | {auc[best, sc]:.4f} | {rx[sc]:.4f} | {auc[best, sc] - rx[sc]:+.4f} |")
    best_all = max(cands, key=lambda c: crit(c, SCENES))
    print(f"\nheld-out mean {np.mean(held):.4f}, worst vs RX {min(h - rx[s] for h, s in zip(held, SCENES)):+.4f}; "
          f"chosen on all nine: {label(best_all)}")


if __name__ == "__main__":
    main()
