"""LRX speed against SPy's windowed RX, side by side in one run.

    python bench/bench_lrx.py [--scene abu-airport-1] [--inner 3] [--outer 17] [--repeat 1]

Runs ``spectral.rx(X, window=(inner, outer))`` (SPy, local covariance per window) and hadcore's ``lrx`` on
the same cube, prints both times, the ratio, hadcore's peak memory (tracemalloc of numpy allocations), both
AUCs and the rank correlation of the two score maps (they differ by hadcore's ridge term and SPy's border
rule: SPy shifts windows inward at the border, hadcore clips them). Target (issue 2): ratio >= 20.
"""

import argparse
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np

import hadcore
from hadcore.metrics import roc_auc

DATA = Path(os.environ.get("HADCORE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default="abu-airport-1")
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--outer", type=int, default=17)
    ap.add_argument("--repeat", type=int, default=1, help="hadcore runs (best time is reported)")
    args = ap.parse_args()
    with np.load(DATA / f"{args.scene}.npz") as z:
        cube, gt = z["cube"].astype(np.float64), z["gt"]
    print(f"scene {args.scene} {cube.shape}, window (inner, outer) = ({args.inner}, {args.outer}), "
          f"{os.cpu_count()} cores")
    det = hadcore.get_detector("lrx", inner=args.inner, outer=args.outer)
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        ours = det.detect(cube)
        times.append(time.perf_counter() - t)
    tracemalloc.start()
    det.detect(cube)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t_ours = min(times)
    print(f"hadcore lrx : {t_ours:8.2f} s   peak numpy memory {peak / 2**20:.0f} MiB   AUC {roc_auc(ours, gt):.4f}")

    import spectral

    t = time.perf_counter()
    theirs = spectral.rx(cube, window=(args.inner, args.outer))
    t_spy = time.perf_counter() - t
    print(f"spectral.rx : {t_spy:8.2f} s   AUC {roc_auc(theirs, gt):.4f}")
    from scipy.stats import spearmanr

    print(f"rank correlation of the two score maps: {spearmanr(ours.ravel(), theirs.ravel())[0]:.4f}")
    print(f"ratio (SPy / hadcore): {t_spy / t_ours:.1f}x  (target >= 20)")


if __name__ == "__main__":
    main()
