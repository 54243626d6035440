"""What ``--reduce pca:K`` changes: AUC(PD,PF) and seconds of detectors on the nine shared scenes, on all
bands and on the K leading principal components of the global covariance (the engine's projection).

    python bench/bench_reduce.py                       # rx, lrx, crd, glrt2s; K = 30
    python bench/bench_reduce.py --detectors lrx --k 20 30 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import hadcore  # noqa: E402
from hadcore.engine import ArraySource, run  # noqa: E402
from hadcore.metrics import roc_auc  # noqa: E402

SCENES = ["abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2",
          "sandiego-lren", "hydice-162", "pavia-100"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--detectors", default="rx,lrx,crd,glrt2s")
    ap.add_argument("--k", type=int, nargs="+", default=[30])
    args = ap.parse_args(argv)
    names = args.detectors.split(",")
    rows = []
    for scene in SCENES:
        with np.load(Path(args.data) / f"{scene}.npz") as z:
            cube, gt = z["cube"].astype(np.float32), z["gt"]
        for name in names:
            for k in [None] + args.k:
                if k is not None and k >= cube.shape[2]:
                    continue
                t = time.perf_counter()
                sink, _ = run(hadcore.get_detector(name), ArraySource(cube), reduce=None if k is None else f"pca:{k}")
                sec = time.perf_counter() - t
                rows.append((scene, name, k, roc_auc(sink.array, gt), sec))
                print(f"{scene:<15} {name:<7} {'all' if k is None else f'pca:{k}':<7} "
                      f"AUC {rows[-1][3]:.4f}  {sec:6.2f} s", flush=True)
    print("\n| detector | bands | mean AUC(PD,PF) | total seconds |\n|---|---|---|---|")
    for name in names:
        for k in [None] + args.k:
            sel = [r for r in rows if r[1] == name and r[2] == k]
            if sel:
                print(f"| {name} | {'all' if k is None else f'pca:{k}'} | {np.mean([r[3] for r in sel]):.4f} | "
                      f"{sum(r[4] for r in sel):.1f} |")


if __name__ == "__main__":
    main()
