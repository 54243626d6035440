"""Quality and speed of the classic detectors over the nine shared scenes, against global RX.

    python bench/bench_classic.py [--data ../shared/data] [--detectors crd,lrasr,glrt2s,kifd,lsmad,aed,pta]
                                  [--no-scenes]

Prints AUC(PD,PF) per scene, the mean, the seconds per scene, and checks the issue-6 bar: mean AUC within
0.03 of global RX's mean (or better) and at most 60 s per scene; then times CRD alone on a real
100 x 100 x 200 cube (abu-airport-1, first 200 bands) with inner 3, outer 11 against its 10 s bar.
Exit status 1 if a detector misses a bar. Timings are wall clock with whatever threads numpy uses (set
OMP_NUM_THREADS to pin); CPU seconds are printed too, as they suffer less from other load on a shared
machine.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

from hadcore.benchmark import find_scenes, load_scene, run_benchmark, scene_table
from hadcore.registry import get_detector

SCENES = ["abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2",
          "sandiego-lren", "hydice-162", "pavia-100"]


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def crd_speed(data_dir, limit=10.0, repeats=2):
    """Best-of-``repeats`` seconds of CRD (inner 3, outer 11) on a real 100 x 100 x 200 cube."""
    path = next(p for p in find_scenes(data_dir) if p.stem == "abu-airport-1")
    cube = np.asarray(load_scene(path).cube)[:100, :100, :200]
    det = get_detector("crd", inner=3, outer=11)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), _cpu()
        det.detect(cube)
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, _cpu() - c)
    passed = best <= limit
    print(f"\nCRD inner 3 outer 11 on {cube.shape[0]}x{cube.shape[1]}x{cube.shape[2]}: {best:.2f} s wall "
          f"(CPU {best_cpu:.2f} s), bar <= {limit:.0f} s  {'PASS' if passed else 'FAIL'}")
    return passed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    ap.add_argument("--detectors", default="crd,lrasr,glrt2s,kifd,lsmad,aed,pta")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--margin", type=float, default=0.03)
    ap.add_argument("--no-scenes", action="store_true", help="only the CRD speed check")
    a = ap.parse_args(argv)
    ok = True
    if not a.no_scenes:
        dets = ["rx"] + [d for d in a.detectors.split(",") if d and d != "rx"]
        paths = [p for p in find_scenes(a.data) if p.stem in SCENES]
        paths.sort(key=lambda p: SCENES.index(p.stem))

        def show(k, n, scene, det, frac):
            if frac == 0.0:
                print(f"  [{k + 1}/{n}] {det} on {scene} ...", file=sys.stderr, flush=True)

        res = run_benchmark(dets, paths, on_progress=show, keep_scores=False)
        print(scene_table(res, dets, [p.stem for p in paths]))
        rx_mean = res.mean("rx", "auc_pd_pf")
        print(f"\nglobal RX mean AUC(PD,PF) {rx_mean:.4f}; bar: >= {rx_mean - a.margin:.4f}, "
              f"<= {a.max_seconds:.0f} s per scene")
        for d in dets[1:]:
            m = res.mean(d, "auc_pd_pf")
            secs = [r["seconds"] for r in res.rows if r["detector"] == d and r["seconds"] is not None]
            cpu = [r["cpu_seconds"] for r in res.rows if r["detector"] == d and r["cpu_seconds"] is not None]
            worst = max(secs) if secs else float("nan")
            passed = m >= rx_mean - a.margin and worst <= a.max_seconds and len(secs) == len(paths)
            ok &= passed
            print(f"{d:8s} mean AUC {m:.4f} (RX {m - rx_mean:+.4f})  mean {np.mean(secs):6.1f} s  "
                  f"max {worst:6.1f} s  (CPU: mean {np.mean(cpu) if cpu else float('nan'):6.1f} s, "
                  f"max {max(cpu) if cpu else float('nan'):6.1f} s)  {'PASS' if passed else 'FAIL'}")
    if "crd" in a.detectors.split(","):
        ok &= crd_speed(a.data)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
