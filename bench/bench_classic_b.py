"""Quality and speed of lsmad, aed and pta over the nine shared scenes, against global RX.

    python bench/bench_classic_b.py [--data ../shared/data] [--detectors lsmad,aed,pta]

Prints AUC(PD,PF) per scene, the mean, the seconds per scene, and checks the issue-6 bar: mean AUC within
0.03 of global RX's mean (or better) and at most 60 s per scene. Exit status 1 if a detector misses it.
Timings are wall clock on this machine with whatever threads numpy uses (set OMP_NUM_THREADS to pin); the
CPU seconds of the process are printed too, as they suffer less from other load on a shared machine.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from hadcore.benchmark import find_scenes, run_benchmark, scene_table

SCENES = ["abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2",
          "sandiego-lren", "hydice-162", "pavia-100"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--detectors", default="lsmad,aed,pta")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--margin", type=float, default=0.03)
    a = ap.parse_args(argv)
    dets = ["rx"] + [d for d in a.detectors.split(",") if d and d != "rx"]
    paths = [p for p in find_scenes(a.data) if p.stem in SCENES]
    paths.sort(key=lambda p: SCENES.index(p.stem))

    def show(k, n, scene, det, frac):
        if frac == 0.0:
            print(f"  [{k + 1}/{n}] {det} on {scene} ...", file=sys.stderr, flush=True)

    res = run_benchmark(dets, paths, on_progress=show, keep_scores=False)
    print(scene_table(res, dets, [p.stem for p in paths]))
    rx_mean = res.mean("rx", "auc_pd_pf")
    ok = True
    print(f"\nglobal RX mean AUC(PD,PF) {rx_mean:.4f}; bar: >= {rx_mean - a.margin:.4f}, <= {a.max_seconds:.0f} s")
    for d in dets[1:]:
        m = res.mean(d, "auc_pd_pf")
        secs = [r["seconds"] for r in res.rows if r["detector"] == d and r["seconds"] is not None]
        cpu = [r["cpu_seconds"] for r in res.rows if r["detector"] == d and r["cpu_seconds"] is not None]
        worst = max(secs) if secs else float("nan")
        passed = m >= rx_mean - a.margin and worst <= a.max_seconds and len(secs) == len(paths)
        ok &= passed
        print(f"{d:8s} mean AUC {m:.4f} (RX {m - rx_mean:+.4f})  mean {np.mean(secs):6.1f} s  max {worst:6.1f} s  "
              f"(CPU: mean {np.mean(cpu):6.1f} s, max {max(cpu) if cpu else float('nan'):6.1f} s)  "
              f"{'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
