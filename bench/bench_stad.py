"""STAD benchmark: inference speed (pixels/s) and AUC(PD,PF) with the shipped weights over ../shared/data.

    python bench/bench_stad.py [--weights PATH] [--threads 2] [--data ../shared/data]

Speed: ``detect`` (mode full: resampling, RX, STF, student forward + backward, tiles) on a 400 x 400 x 205
mosaic of abu-airport-1, best of 3 runs, with ``--threads`` torch/BLAS threads. Target: >= 50,000 pixels/s on
2 CPU cores. AUC table: STAD beside global RX on the full cube and on STAD's network input (the same
resampled, standardised cube: "RX on the same input"), and the published STAD / RX figures of
EVALUATION.md where the scene has one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

# published STAD (first 50 bands) and global RX on the same input, EVALUATION.md
PUBLISHED = {
    "abu-airport-1": (0.8805, 0.8623), "abu-airport-2": (0.9513, 0.9101), "abu-beach-1": (0.9749, 0.9656),
    "abu-beach-2": (0.8791, 0.8933), "abu-urban-1": (0.9927, 0.9932), "abu-urban-2": (0.9984, 0.9971),
    "sandiego-lren": (0.9823, 0.9597),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--speed-only", action="store_true", help="skip the AUC table")
    args = ap.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    import hadcore
    from hadcore.detectors.stad import DEFAULT_WEIGHTS
    from hadcore.metrics import roc_auc
    from stad_ablations import SCENES, rx_on_input

    weights = args.weights or str(DEFAULT_WEIGHTS)
    obj = torch.load(weights, weights_only=True)
    print(f"weights: {weights}  config {obj['config']}")
    print(f"trained: {obj['meta'].get('command')}  ({obj['meta'].get('train_seconds')} s, "
          f"{obj['meta'].get('threads')} thread(s))")

    with np.load(Path(args.data) / "abu-airport-1.npz") as z:
        cube = np.tile(z["cube"], (4, 4, 1))
    det = hadcore.get_detector("stad", weights=weights, device="cpu")
    det.detect(cube[:64, :64])  # load weights, warm up
    best = min(_timed(det, cube) for _ in range(3))
    n = cube.shape[0] * cube.shape[1]
    print(f"speed: {cube.shape} in {best:.3f} s = {n / best:,.0f} pixels/s with {args.threads} thread(s)")

    if args.speed_only:
        return
    print(f"\n{'scene':16s}{'STAD':>9s}{'RX(in)':>9s}{'RX(full)':>9s}{'s':>7s}   published STAD (RX)")
    rows = []
    for name in SCENES:
        with np.load(Path(args.data) / f"{name}.npz") as z:
            c, gt = z["cube"], z["gt"]
        t0 = time.perf_counter()
        s = det.detect(c)
        dt = time.perf_counter() - t0
        row = (roc_auc(s, gt), roc_auc(rx_on_input(c, weights), gt), roc_auc(hadcore.get_detector("rx").detect(c), gt))
        rows.append(row)
        pub = PUBLISHED.get(name)
        pub_s = f"{pub[0]:.4f} ({pub[1]:.4f})" if pub else "-"
        print(f"{name:16s}" + "".join(f"{v:9.4f}" for v in row) + f"{dt:7.2f}   {pub_s}")
    m = np.mean(rows, axis=0)
    print(f"{'mean':16s}" + "".join(f"{v:9.4f}" for v in m))


def _timed(det, cube):
    t0 = time.perf_counter()
    det.detect(cube)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
