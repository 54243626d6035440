"""GT-HAD against global RX on the nine shared scenes: AUC(PD,PF) per scene and seed, mean over seeds, seconds.

    python bench/bench_gthad.py [--threads 2] [--seeds 0,1,2] [--scenes a,b,...] [-p key=value ...]
                                [--maps DIR]

Prints one markdown row per scene (AUC per seed, their mean, global RX on the same cube, CPU and wall
seconds per run) and the mean over scenes. "CPU s" is the process CPU time of one run (all threads): on an
otherwise idle machine the wall time lies between CPU s / threads and CPU s; on a shared machine the wall
time is an upper bound. Training sees the cube only, never the ground truth. ``--maps DIR`` also saves
each score map as ``DIR/<seed>_<scene>.npy`` (float32), for ``bench/gthad_select.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("HADCORE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SCENES = ["abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2",
          "sandiego-lren", "hydice-162", "pavia-100"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("-p", action="append", default=[], metavar="KEY=VALUE", help="GT-HAD parameter")
    ap.add_argument("--maps", help="folder to save the score maps in")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from sklearn.metrics import roc_auc_score

    from hadcore.registry import get_detector

    params = dict(kv.split("=", 1) for kv in args.p)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"# GT-HAD vs global RX ({platform.node()}, {os.cpu_count()} cores, torch threads {args.threads}, "
          f"params {params or 'defaults'}, seeds {seeds})\n")
    print("| scene | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | RX | above RX | CPU s | wall s |")
    print("|---|" + "---|" * (len(seeds) + 6))
    means, rxs = [], []
    for name in args.scenes.split(","):
        with np.load(DATA / f"{name}.npz") as z:
            cube, gt = z["cube"].astype(np.float32), z["gt"]
        rx = roc_auc_score(gt.ravel(), get_detector("rx").detect(cube).ravel())
        aucs, cpu, wall = [], [], []
        for s in seeds:
            det = get_detector("gthad", **{**params, "seed": s})
            c0, w0 = time.process_time(), time.perf_counter()
            scores = det.detect(cube)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            aucs.append(roc_auc_score(gt.ravel(), scores.ravel()))
            if args.maps:
                Path(args.maps).mkdir(parents=True, exist_ok=True)
                np.save(Path(args.maps) / f"{s}_{name}.npy", scores.astype(np.float32))
        m = float(np.mean(aucs))
        means.append(m)
        rxs.append(rx)
        print(f"| {name} | " + " | ".join(f"{a:.4f}" for a in aucs) +
              f" | {m:.4f} | {rx:.4f} | {'yes' if m > rx else '**no**'} | {np.mean(cpu):.1f} | {np.mean(wall):.1f} |",
              flush=True)
    above = sum(m > r for m, r in zip(means, rxs))
    print(f"\nmean AUC {np.mean(means):.4f} (RX {np.mean(rxs):.4f}); above RX on {above} of {len(means)} scenes")


if __name__ == "__main__":
    main()
