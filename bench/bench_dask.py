"""The same LRX run on a 2-worker Dask LocalCluster and in process: identical scores, and the overhead.

    python bench/bench_dask.py [--tiles 3] [--bands 30] [--inner 3] [--outer 9] [--mem-limit 32] [--repeat 2]

Writes a mosaic GeoTIFF of abu-airport-1 (``--tiles`` x ``--tiles`` copies, odd ones flipped, first ``--bands``
bands) to a temporary folder, then runs ``lrx`` over it block by block under ``--mem-limit`` MB (per worker
for Dask) twice: in process (:func:`hadcore.engine.run`) and on a LocalCluster of 2 single-threaded worker
processes on 127.0.0.1 (:func:`hadcore.distributed.run_distributed`; the cluster is started before the
clock starts). Prints the wall times, the ratio (Dask / in process: > 1 is overhead, < 1 a speed-up), the
number of blocks, and the largest absolute and relative difference of the two score maps (LRX is exact under
tiling: the scores must be identical). The load average is printed (the machine may be shared).

Threads (:mod:`hadcore.threads`): in process LRX runs its tiles on a pool of every core; on a Dask worker each
task has a budget of one thread (the worker's own), so LRX starts no pool there. For each run the CPU seconds
(user + system, of this process, or summed over the worker processes) per score block and the involuntary
context switches (the kernel taking a core from a runnable thread: oversubscription) are printed; without the
budget, two 1-thread workers on two cores each ran a pool of two threads, four threads on two cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

import hadcore
from hadcore.engine import run
from hadcore.io import write_cube
from hadcore.scene import open_scene

DATA = Path(os.environ.get("HADCORE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def mosaic(n: int, bands: int) -> np.ndarray:
    with np.load(DATA / "abu-airport-1.npz") as z:
        cube = z["cube"][:, :, :bands].astype(np.float32)
    row = np.concatenate([cube if j % 2 == 0 else cube[:, ::-1] for j in range(n)], axis=1)
    return np.ascontiguousarray(np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(n)], axis=0))


def _usage():
    """(CPU seconds, involuntary context switches) of the calling process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_nivcsw


def _delta(after, before):
    return tuple(a - b for a, b in zip(after, before))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=3, help="mosaic of N x N copies of the 100 x 100 scene")
    ap.add_argument("--bands", type=int, default=30)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--outer", type=int, default=9)
    ap.add_argument("--mem-limit", type=float, default=32, help="MB (per worker for Dask)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs of each (the best is reported; the first Dask run also imports hadcore on the workers)")
    args = ap.parse_args()

    from distributed import Client, LocalCluster

    from hadcore.distributed import run_distributed

    params = dict(inner=args.inner, outer=args.outer)
    with tempfile.TemporaryDirectory(prefix="hadcore-bench-dask-") as tmp:
        path = Path(tmp) / "mosaic.tif"
        write_cube(path, mosaic(args.tiles, args.bands))
        scene = open_scene(path)
        print(f"scene {scene.shape} ({path.stat().st_size / 2**20:.0f} MiB GeoTIFF), lrx {params}, "
              f"--mem-limit {args.mem_limit:g} MB, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")

        t_local, ref, u_local = [], None, []
        t_one, u_one = [], []
        for _ in range(args.repeat):
            t, u = time.perf_counter(), _usage()
            sink, info = run(hadcore.get_detector("lrx", **params), scene.source, mem_limit_mb=args.mem_limit)
            t_local.append(time.perf_counter() - t)
            u_local.append(_delta(_usage(), u))
            ref = sink.array
            t, u = time.perf_counter(), _usage()
            run(hadcore.get_detector("lrx", **params), scene.source, mem_limit_mb=args.mem_limit, threads=1)
            t_one.append(time.perf_counter() - t)
            u_one.append(_delta(_usage(), u))

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
            client.submit(lambda: 0).result()  # workers up
            t_dask, out, u_dask = [], None, []
            for _ in range(args.repeat):
                t, u = time.perf_counter(), client.run(_usage)
                sink, dinfo = run_distributed(hadcore.get_detector("lrx", **params), scene.source, client=client,
                                              mem_limit_mb=args.mem_limit)
                t_dask.append(time.perf_counter() - t)
                after = client.run(_usage)
                u_dask.append(tuple(map(sum, zip(*(_delta(after[w], u[w]) for w in after)))))
                out = sink.array

    same_nan = bool(np.array_equal(np.isnan(ref), np.isnan(out)))
    ok = np.isfinite(ref) & np.isfinite(out)
    abs_diff = float(np.max(np.abs(out[ok] - ref[ok]))) if ok.any() else 0.0
    rel_diff = float(np.max(np.abs(out[ok] - ref[ok]) / np.maximum(np.abs(ref[ok]), 1e-30))) if ok.any() else 0.0
    a, b = min(t_local), min(t_dask)
    print(f"blocks: {info.plan.n_blocks} in process, {dinfo.plan.n_blocks} on Dask")
    print(f"in process      : {a:8.2f} s (one thread: {min(t_one):.2f} s)")
    print(f"Dask, 2 workers : {b:8.2f} s")
    print(f"overhead ratio (Dask / in process): {b / a:.2f}")
    (cl, sl), (cd, sd) = u_local[t_local.index(a)], u_dask[t_dask.index(b)]
    nl, nd = info.plan.n_blocks, dinfo.plan.n_blocks
    c1, s1 = u_one[t_one.index(min(t_one))]
    print(f"CPU per block   : in process {cl / nl:.3f} s ({cl:.2f} s, {sl} involuntary switches; one thread "
          f"{c1 / nl:.3f} s, {s1}), "
          f"Dask {cd / nd:.3f} s ({cd:.2f} s over the workers, {sd} involuntary switches)")
    print(f"scores: identical={bool(np.array_equal(ref, out, equal_nan=True))}  same NaNs={same_nan}  "
          f"max abs diff {abs_diff:.3g}  max rel diff {rel_diff:.3g}  load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
