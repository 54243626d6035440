"""KDAD against global RX: every metric of hadcore.metrics.evaluate and the seconds per scene.

Scenes: the nine of ../shared/data (or $HADCORE_DATA) and synthetic thermal-infrared scenes
(hadcore.synthetic, 100 x 100 x 110, 8.06-11.22 um). Prints a markdown table per scene and the means.

    python bench/bench_kdad.py [--threads 2] [--scenes a,b,...] [--no-synthetic] [-p key=value ...]

Timings depend on the load of the machine: state the conditions with the figures. "CPU s" is the
process CPU time (all threads): on an otherwise idle machine the wall time lies between CPU s / threads
and CPU s.
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
SYNTHETIC = [("thermal-mixed-s0", dict(target_kind="mixed", seed=0)),
             ("thermal-mixed-s1", dict(target_kind="mixed", seed=1)),
             ("thermal-temperature-s2", dict(target_kind="temperature", delta_t=5.0, seed=2)),
             ("thermal-emissivity-s3", dict(target_kind="emissivity", seed=3))]
KEYS = ("auc_pd_pf", "auc_pd_tau", "auc_pf_tau", "auc_bs", "snpr")


def _scenes(names, synthetic):
    for n in names:
        with np.load(DATA / f"{n}.npz") as z:
            yield n, z["cube"].astype(np.float32), z["gt"]
    if synthetic:
        from hadcore.synthetic import thermal_scene

        for n, kw in SYNTHETIC:
            s = thermal_scene(**kw)
            yield n, s.cube, s.gt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch / BLAS threads")
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--no-synthetic", action="store_true")
    ap.add_argument("-p", action="append", default=[], metavar="KEY=VALUE", help="KDAD parameter")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from hadcore.metrics import evaluate
    from hadcore.registry import get_detector

    params = dict(kv.split("=", 1) for kv in args.p)
    print(f"# KDAD vs global RX ({platform.node()}, {os.cpu_count()} cores, torch threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.1f}); KDAD params: {params or 'defaults'}")
    print("| scene | detector | " + " | ".join(KEYS) + " | wall s | CPU s |")
    print("|---|---|" + "---|" * (len(KEYS) + 2))
    rows = {"kdad": {}, "rx": {}}
    for name, cube, gt in _scenes([s for s in args.scenes.split(",") if s], not args.no_synthetic):
        for det_name, det in (("rx", get_detector("rx")), ("kdad", get_detector("kdad", **params))):
            t, c = time.perf_counter(), time.process_time()
            scores = det.detect(cube)
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            m = evaluate(scores, gt)
            m["seconds"], m["cpu"] = dt, cpu
            rows[det_name][name] = m
            print(f"| {name} | {det_name} | " + " | ".join(f"{m[k]:.4f}" for k in KEYS) + f" | {dt:.1f} | {cpu:.1f} |",
                  flush=True)
    for group, pred in (("shared scenes", lambda n: not n.startswith("thermal")),
                        ("synthetic thermal", lambda n: n.startswith("thermal"))):
        for det_name in ("rx", "kdad"):
            ms = [m for n, m in rows[det_name].items() if pred(n)]
            if ms:
                print(f"| mean, {group} ({len(ms)}) | {det_name} | "
                      + " | ".join(f"{np.mean([m[k] for m in ms]):.4f}" for k in KEYS)
                      + f" | {np.mean([m['seconds'] for m in ms]):.1f} | {np.mean([m['cpu'] for m in ms]):.1f} |")


if __name__ == "__main__":
    main()
