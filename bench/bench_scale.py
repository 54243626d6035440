"""Scale benchmarks of the streaming engine: a 6.9 GB scene, an EnMAP-sized tile, and the in-memory path.

Subcommands (run separately; each prints a table and appends rows to ``--out``/results.jsonl and a markdown
table ``--out``/<subcommand>.md):

``make-big``   3000 x 3000 x 191 float32 GeoTIFF (6.9 GB): abu-airport-1 (first 191 bands) tiled 30 x 30,
               odd tile columns flipped left-right and odd tile rows flipped up-down (seams not periodic);
               written window by window (256-row strips), tiled 256 x 256, pixel-interleaved, uncompressed,
               BIGTIFF=YES; its ground truth beside it as <stem>_gt.tif.
``rx-big``     ``hadcore detect rx BIG --mem-limit 1024`` under /usr/bin/time (wall, peak RSS); in the same run a
               cold and a warm sequential read of the file in the engine's block layout, the two float64
               GEMMs (X^T X and X @ icov for all N pixels, in chunks), wall / (read + GEMMs), and the AUC of the
               streamed scores against the mosaic gt compared with the single tile's global RX AUC.
``enmap``      1000 x 1000 x 224 reflective mosaic (8 shared scenes resampled to 224 bands, each divided by its
               maximum) and every registry detector under /usr/bin/time with --mem-limit 2048 (plus lrx and
               crd with --reduce pca:30); per-run timeout.
``inmem``      peak RSS of ``get_detector(NAME).detect(cube)`` on a 1000 x 1000 x 224 float32 cube, as a
               multiple of the cube size.
``baseline``   peak RSS of ``hadcore detect rx`` on the 100 x 100 sample (interpreter + libraries).

Every timing records ``os.getloadavg()`` (the machine is shared). Big files go to /work/bench_data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HADCORE_DATA", ROOT.parent / "shared" / "data"))
BENCH = Path(os.environ.get("HADCORE_BENCH_DATA", ROOT.parent / "bench_data"))  # big files: outside the repo
HADCORE = str(Path(sys.executable).with_name("hadcore"))
MB = 2**20
FAST = ["rx", "stad", "lsmad", "glrt2s", "aed", "lrx@pca:30", "crd@pca:30"]


# ================================================================================================ helpers
def load() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg()


def record(out: Path, table: str, row: dict) -> None:
    """Append ``row`` to out/results.jsonl and to the markdown table out/<table>.md."""
    out.mkdir(parents=True, exist_ok=True)
    row = {"table": table, "time": time.strftime("%Y-%m-%d %H:%M:%S"), **row}
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    md = out / f"{table}.md"
    keys = [k for k in row if k != "table"]
    new = not md.exists()
    with open(md, "a") as f:
        if new:
            f.write("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n")
        f.write("| " + " | ".join(str(row[k]) for k in keys) + " |\n")
    print("  ".join(f"{k}={row[k]}" for k in keys), flush=True)


def timed(cmd, timeout=None):
    """Run ``cmd`` under /usr/bin/time: dict(wall_s, cpu_s (user + system), peak_rss_mb, rc, status, stderr
    tail, load avg)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
        tpath = tf.name
    full = ["/usr/bin/time", "-f", "%U %S %e %M", "-o", tpath] + [str(c) for c in cmd]
    la0 = load()
    t0 = time.perf_counter()
    p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    status = "ok"
    try:
        so, se = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # our own process group (started with start_new_session)
        so, se = p.communicate()
        status = "timeout"
    el = time.perf_counter() - t0
    wall, peak, cpu = el, float("nan"), float("nan")
    try:
        parts = open(tpath).read().split()
        if len(parts) >= 4 and status == "ok":
            cpu = float(parts[-4]) + float(parts[-3])
            wall, peak = float(parts[-2]), int(parts[-1]) / 1024.0
    except (OSError, ValueError):
        pass
    os.unlink(tpath)
    if status == "ok" and p.returncode != 0:
        status = f"failed rc={p.returncode}"
    tail = " ".join((se or "").strip().splitlines()[-3:])[-300:]
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(peak, 1), "status": status, "stderr": tail,
            "load_before": la0, "load_after": load(), "stdout": so}


def tile_index(n_out: int, n_tile: int, flip: bool) -> np.ndarray:
    """Index into the tile for each output row/column of a mosaic; odd repeats reversed when ``flip``."""
    i = np.arange(n_out)
    k, r = np.divmod(i, n_tile)
    return np.where(flip & (k % 2 == 1), n_tile - 1 - r, r)


def write_tiff_by_windows(path: Path, H: int, W: int, B: int, block_fn, rows_per_write=256,
                          compress="none", dtype="float32", nodata=None, interleave="pixel", wavelengths=None,
                          progress=False):
    """A (H, W, B) GeoTIFF written window by window: ``block_fn(r0, r1)`` gives the (h, W, B) strip; under a
    temporary name, renamed at the end. ``wavelengths`` (nm): band metadata as hadcore's ``write_cube`` writes
    it (a ``wavelength``/``wavelength_units`` tag and a "<wl> nanometers" description per band)."""
    import warnings

    import rasterio
    from rasterio.windows import Window

    prof = dict(driver="GTiff", height=H, width=W, count=B, dtype=dtype, tiled=True, blockxsize=256,
                blockysize=256, interleave=interleave, BIGTIFF="YES")
    if compress != "none":
        prof["compress"] = compress
    if nodata is not None:
        prof["nodata"] = nodata
    tmp = path.with_suffix(".part.tif")
    with rasterio.Env(GDAL_CACHEMAX=1536 * MB), warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **prof) as dst:
            for i in range(B if wavelengths is not None else 0):
                dst.set_band_description(i + 1, f"{float(wavelengths[i]):.4f} nanometers")
                dst.update_tags(i + 1, wavelength=f"{float(wavelengths[i]):.6g}", wavelength_units="nanometers")
            for r0 in range(0, H, rows_per_write):
                r1 = min(H, r0 + rows_per_write)
                strip = block_fn(r0, r1)
                dst.write(np.ascontiguousarray(np.moveaxis(strip, 2, 0)), window=Window(0, r0, W, r1 - r0))
                del strip
                if progress:
                    print(f"  rows {r1}/{H}", flush=True)
    os.replace(tmp, path)


def write_gt(path: Path, gt: np.ndarray):
    """A uint8 mask (1 = anomaly or target), tiled and compressed, under a temporary name renamed at the end."""
    import warnings

    import rasterio

    H, W = gt.shape
    tmp = path.with_suffix(".part.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", driver="GTiff", height=H, width=W, count=1, dtype="uint8", tiled=True,
                           blockxsize=256, blockysize=256, compress="deflate") as dst:
            dst.write(gt.astype(np.uint8), 1)
    os.replace(tmp, path)


def read_gt(path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def read_scores(path):
    import rasterio

    with rasterio.open(path) as src:
        a = src.read(1).astype(np.float64)
        nd = src.nodata
    if nd is not None and not np.isnan(nd):
        a[a == nd] = np.nan
    return a


def evict(path):
    """Drop the file's clean pages from the page cache (posix_fadvise DONTNEED; no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cached_fraction(path) -> str:
    """Fraction of the file in the page cache (mincore through mmap), or '?'."""
    try:
        import ctypes
        import mmap

        size = os.path.getsize(path)
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        fd = os.open(path, os.O_RDONLY)
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        os.close(fd)
        page = os.sysconf("SC_PAGE_SIZE")
        n = (size + page - 1) // page
        vec = (ctypes.c_ubyte * n)()
        libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec)
        libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size))
        return "%.2f" % (sum(v & 1 for v in bytes(vec)) / n)
    except Exception:
        return "?"


# ================================================================================================ make-big
def cmd_make_big(a):
    d = np.load(DATA / f"{a.scene}.npz")
    cube = np.ascontiguousarray(d["cube"][:, :, :a.bands]).astype(np.float32)
    gt = d["gt"]
    th, tw, B = cube.shape
    H, W = th * a.tiles, tw * a.tiles
    ri, ci = tile_index(H, th, a.flip), tile_index(W, tw, a.flip)
    path = Path(a.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    la0, t0 = load(), time.perf_counter()
    write_tiff_by_windows(path, H, W, B, lambda r0, r1: cube[np.ix_(ri[r0:r1], ci)], compress=a.compress,
                          interleave=a.interleave)
    el = time.perf_counter() - t0
    write_gt(path.with_name(path.stem + "_gt.tif"), gt[np.ix_(ri, ci)])
    record(Path(a.out), "make_big", {"file": str(path), "shape": f"{H}x{W}x{B}", "GB": round(path.stat().st_size / 1e9, 2),
                                     "flip": a.flip, "compress": a.compress, "interleave": a.interleave,
                                     "write_s": round(el, 1),
                                     "load_before": la0, "load_after": load()})


# ================================================================================================ rx-big
def raw_read(path, chunk=64 * MB):
    """Seconds to read the file's bytes in 64 MB chunks (no decoding): the disk / page-cache bound."""
    buf = bytearray(chunk)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return time.perf_counter() - t0


def sequential_read(path, windows):
    import rasterio
    from rasterio.windows import Window

    t0 = time.perf_counter()
    nbytes = 0
    with rasterio.Env(GDAL_CACHEMAX=64 * MB, GDAL_NUM_THREADS=1), rasterio.open(path) as ds:
        for r0, r1, c0, c1 in windows:
            x = ds.read(window=Window(c0, r0, c1 - c0, r1 - r0), out_dtype=np.float32)
            nbytes += x.nbytes
            del x
    return time.perf_counter() - t0, nbytes


def gemm_times(N, B, chunk=2**18, seed=0):
    """Seconds of X^T X and of X @ icov for N x B float64, measured on `chunk`-row blocks over all N rows."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((chunk, B))
    icov = np.linalg.inv(X[:4096].T @ X[:4096] + np.eye(B))
    X[:4096] @ icov  # warm up BLAS
    t_s = t_m = 0.0
    done = 0
    while done < N:
        n = min(chunk, N - done)
        Xc = X[:n]
        t0 = time.perf_counter()
        S = Xc.T @ Xc
        t1 = time.perf_counter()
        M = Xc @ icov
        t2 = time.perf_counter()
        t_s += t1 - t0
        t_m += t2 - t1
        done += n
        del S, M
    return t_s, t_m


def cmd_rx_big(a):
    import rasterio

    import hadcore
    from hadcore.engine import plan_blocks

    path = Path(a.path)
    out = Path(a.out)
    with rasterio.open(path) as src:
        H, W, B = src.height, src.width, src.count
        bs = src.block_shapes[0]
    det = hadcore.get_detector("rx")
    plan = plan_blocks(det, (H, W, B), a.mem_limit * MB, in_bands=B, block_shape=bs, needs_stats=True)
    print(f"plan: {len(plan.stat_windows)} stat windows {plan.stat_windows[0]}, {len(plan.score_windows)} score "
          f"windows {plan.score_windows[0]}, block_bytes {plan.block_bytes / MB:.0f} MB", flush=True)
    size_gb = path.stat().st_size / 1e9
    # (a) sequential reads in the engine's statistics-pass layout: cold (pages evicted) and warm
    evict(path)
    c0 = cached_fraction(path)
    la = load()
    t_cold, nb = sequential_read(path, plan.stat_windows)
    c1 = cached_fraction(path)
    t_warm, _ = sequential_read(path, plan.stat_windows)
    t_raw = raw_read(path)
    t_score, _ = sequential_read(path, plan.score_windows)  # the score pass's (smaller) windows, warm
    record(out, "rx_big_read", {"file": path.name, "GB": round(size_gb, 2), "windows": len(plan.stat_windows),
                                "cold_read_s": round(t_cold, 1), "cold_GBps": round(nb / 1e9 / t_cold, 2),
                                "cached_before_cold": c0, "cached_after_cold": c1,
                                "warm_read_s": round(t_warm, 1), "warm_GBps": round(nb / 1e9 / t_warm, 2),
                                "raw_bytes_warm_s": round(t_raw, 1),
                                "warm_read_score_layout_s": round(t_score, 1),
                                "score_windows": len(plan.score_windows),
                                "load_before": la, "load_after": load()})
    # (b) the two GEMMs
    la = load()
    t_s, t_m = gemm_times(H * W, B)
    record(out, "rx_big_gemm", {"N": H * W, "B": B, "XtX_s": round(t_s, 1), "X_icov_s": round(t_m, 1),
                                "GFLOPs_each": round(2 * H * W * B * B / 1e9), "load_before": la, "load_after": load()})
    # the detector (page cache: warm from the reads above unless --cold)
    res_path = BENCH / "rx_big_out.tif"
    runs = []
    # "warm" = right after the reads above; other processes may still evict pages (cached_before says how much)
    for mode in (["cold", "warm"] if a.cold else ["warm"]):
        if mode == "cold":
            evict(path)
        cf = cached_fraction(path)
        r = timed([HADCORE, "detect", "rx", path, "-o", res_path, "--mem-limit", a.mem_limit, "--overwrite", "-q"],
                  timeout=a.timeout)
        runs.append((mode, cf, r))
    for mode, cf, r in runs:
        read = t_cold if mode == "cold" else t_warm
        ratio = r["wall_s"] / (read + t_s + t_m)
        row = {"cache": mode, "cached_before": cf, "mem_limit_mb": a.mem_limit, "wall_s": r["wall_s"],
               "peak_rss_mb": r["peak_rss_mb"], "goal_rss_mb": 1638, "rss_ok": r["peak_rss_mb"] <= 1638,
               "read_s": round(read, 1), "gemm_s": round(t_s + t_m, 1), "wall/(read+gemm)": round(ratio, 2),
               "wall/(2 reads+gemm)": round(r["wall_s"] / (2 * read + t_s + t_m), 2),
               "status": r["status"], "load_before": r["load_before"], "load_after": r["load_after"]}
        if r["status"] != "ok":
            row["stderr"] = r["stderr"]
        record(out, "rx_big", row)
    # correctness: AUC of the streamed output vs the single tile's global RX
    if runs and runs[-1][2]["status"] == "ok":
        from hadcore.metrics import roc_auc

        s = read_scores(res_path)
        gt = read_gt(path.with_name(path.stem + "_gt.tif"))
        auc_big = roc_auc(s, gt)
        d = np.load(DATA / f"{a.scene}.npz")
        tile = d["cube"][:, :, :B].astype(np.float32)
        st = hadcore.get_detector("rx").detect(tile)
        auc_tile = roc_auc(st, d["gt"])
        # per-pixel check: the mosaic's scores are the tile's scores at the mapped pixels
        th, tw = tile.shape[:2]
        ri, ci = tile_index(H, th, True), tile_index(W, tw, True)
        rel = np.nanmax(np.abs(s[:th * 2, :tw * 2] - st[np.ix_(ri[:th * 2], ci[:tw * 2])])) / np.nanmax(st)
        record(out, "rx_big_auc", {"auc_streamed_mosaic": round(auc_big, 6), "auc_tile_global_rx": round(auc_tile, 6),
                                   "equal_3dp": round(auc_big, 3) == round(auc_tile, 3),
                                   "max_rel_score_diff_2x2_tiles": "%.2e" % rel, "load": load()})


# ================================================================================================ enmap
ENMAP_SCENES = ["abu-airport-1", "abu-airport-2", "abu-beach-2", "abu-urban-1", "abu-urban-2", "sandiego-lren",
                "pavia-100", "abu-beach-1"]


def resample_bands(cube, B):
    """Linear interpolation along the band axis to B bands (band positions spread over the same range)."""
    b0 = cube.shape[2]
    x_new = np.linspace(0, b0 - 1, B)
    lo = np.floor(x_new).astype(int)
    hi = np.minimum(lo + 1, b0 - 1)
    t = (x_new - lo).astype(np.float32)
    return cube[:, :, lo] * (1 - t) + cube[:, :, hi] * t


def make_enmap(path: Path, size=1000, bands=224, tile=100, interleave="band"):
    tiles = []
    for name in ENMAP_SCENES:
        d = np.load(DATA / f"{name}.npz")
        c = d["cube"][:tile, :tile].astype(np.float32)
        c = resample_bands(c, bands)
        c = np.clip(c, 0, None) / max(float(c.max()), 1e-12)
        tiles.append((c.astype(np.float32), d["gt"][:tile, :tile]))
    n = size // tile
    cube = np.empty((size, size, bands), np.float32)
    gt = np.empty((size, size), np.uint8)
    for i in range(n):
        for j in range(n):
            c, g = tiles[(i * n + j) % len(tiles)]
            if j % 2:
                c, g = c[:, ::-1], g[:, ::-1]
            if i % 2:
                c, g = c[::-1], g[::-1]
            cube[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = c
            gt[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = g
    write_tiff_by_windows(path, size, size, bands, lambda r0, r1: cube[r0:r1], interleave=interleave)
    write_gt(path.with_name(path.stem + "_gt.tif"), gt)
    if not path.with_suffix(".npy").exists():
        np.save(path.with_suffix(".npy"), cube)
    return cube.shape


def baseline(out: Path):
    sample = ROOT / "sample_data" / "abu-airport-1.tif"
    o = BENCH / "baseline_rx.tif"
    r = timed([HADCORE, "detect", "rx", sample, "-o", o, "--overwrite", "-q"])
    record(out, "baseline", {"what": "hadcore detect rx sample_data/abu-airport-1.tif (100x100)", "wall_s": r["wall_s"],
                             "peak_rss_mb": r["peak_rss_mb"], "status": r["status"], "load_before": r["load_before"]})
    return r["peak_rss_mb"]


def cmd_baseline(a):
    baseline(Path(a.out))


def cmd_enmap(a):
    import hadcore  # noqa: F401
    from hadcore.metrics import roc_auc

    out = Path(a.out)
    path = Path(a.path)
    if not path.exists() or a.remake:
        path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        shp = make_enmap(path, interleave=a.interleave)
        print(f"made {path} {shp} in {time.perf_counter() - t0:.1f} s", flush=True)
    gt = read_gt(path.with_name(path.stem + "_gt.tif"))
    base = baseline(out)
    if a.detectors == "fast":
        dets = FAST
    elif a.detectors in ("all", "rest"):
        names = json.loads(subprocess.run([HADCORE, "list", "--json"], capture_output=True, text=True).stdout)
        names = [d["name"] for d in names]
        dets = names + ["lrx@pca:30", "crd@pca:30"]
        if a.detectors == "rest":
            dets = [d for d in dets if d not in FAST]
    else:
        dets = [d.strip() for d in a.detectors.split(",") if d.strip()]
    goals = {"rx": 10, "stad": 60, "kdad": 300, "auto": 120}
    for spec in dets:
        name, _, red = spec.partition("@")
        o = BENCH / f"enmap_{name}{'_' + red.replace(':', '') if red else ''}.tif"
        cmd = [HADCORE, "detect", name, path, "-o", o, "--mem-limit", a.mem_limit, "-q", "--overwrite"]
        if red:
            cmd += ["--reduce", red]
        r = timed(cmd, timeout=a.timeout)
        auc = ""
        if r["status"] == "ok":
            try:
                auc = round(roc_auc(read_scores(o), gt), 4)
            except Exception as exc:  # noqa: BLE001
                auc = f"error: {exc}"[:80]
        goal_s = goals.get(name, 1800)
        budget = a.mem_limit + base
        row = {"scene": path.name, "detector": spec, "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
               "peak_rss_mb": r["peak_rss_mb"], "budget_mb": f"{a.mem_limit}+{base:.0f}",
               "time_goal_s": goal_s, "time_ok": r["status"] == "ok" and r["wall_s"] <= goal_s,
               "rss_ok": r["status"] == "ok" and r["peak_rss_mb"] <= budget, "auc": auc, "status": r["status"],
               "load_before": r["load_before"], "load_after": r["load_after"]}
        if r["status"] != "ok":
            row["stderr"] = r["stderr"]
        record(out, "enmap", row)


# ================================================================================================ inmem
INMEM_CHILD = r"""
import sys, time, numpy as np, resource, os
def st(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) / 1024.0
import hadcore
cube = np.load(sys.argv[1])
det = hadcore.get_detector(sys.argv[2])
rss_loaded = st('VmRSS')
hwm_loaded = st('VmHWM')
try:
    open('/proc/self/clear_refs', 'w').write('5')   # reset VmHWM to the current RSS
    reset = st('VmHWM') <= rss_loaded + 1
except OSError:
    reset = False
t0 = time.perf_counter()
s = det.detect(cube)
el = time.perf_counter() - t0
print(rss_loaded, hwm_loaded, st('VmHWM'), reset, el, cube.nbytes / 2**20, float(np.nanmax(s)))
"""


def cmd_inmem(a):
    out = Path(a.out)
    npy = Path(a.cube)
    if not npy.exists():
        make_enmap(npy.with_suffix(".tif"))
    for name in a.detectors.split(","):
        la = load()
        p = subprocess.run([sys.executable, "-c", INMEM_CHILD, str(npy), name], capture_output=True, text=True,
                           timeout=a.timeout)
        if p.returncode != 0:
            record(out, "inmem", {"detector": name, "status": f"failed: {p.stderr.strip().splitlines()[-1][:200]}",
                                  "load": la})
            continue
        rss_loaded, hwm_loaded, hwm, reset, el, cube_mb, _ = p.stdout.split()
        rss_loaded, hwm, cube_mb = float(rss_loaded), float(hwm), float(cube_mb)
        extra = hwm - rss_loaded
        record(out, "inmem", {"detector": name, "cube": "1000x1000x224 float32", "cube_mb": round(cube_mb),
                              "rss_after_load_mb": round(rss_loaded), "peak_rss_mb": round(hwm),
                              "hwm_reset": reset, "extra_mb": round(extra), "extra_x_cube": round(extra / cube_mb, 2),
                              "peak_x_cube": round(hwm / cube_mb, 2), "goal_extra_x": 2.0,
                              "detect_s": round(float(el), 1), "load_before": la, "load_after": load()})


# ================================================================================================ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(BENCH / "results"), help="results folder")
    sp = ap.add_subparsers(dest="cmd", required=True)
    big = str(BENCH / "big_3000x3000x191.tif")
    p = sp.add_parser("make-big")
    p.add_argument("--path", default=big)
    p.add_argument("--scene", default="abu-airport-1")
    p.add_argument("--bands", type=int, default=191)
    p.add_argument("--tiles", type=int, default=30)
    p.add_argument("--no-flip", dest="flip", action="store_false")
    p.add_argument("--compress", default="none", choices=["none", "deflate"])
    p.add_argument("--interleave", default="pixel", choices=["pixel", "band"])
    p.set_defaults(fn=cmd_make_big)
    p = sp.add_parser("rx-big")
    p.add_argument("--path", default=big)
    p.add_argument("--scene", default="abu-airport-1")
    p.add_argument("--mem-limit", type=int, default=1024)
    p.add_argument("--cold", action="store_true", help="also run the detector after evicting the file's pages")
    p.add_argument("--timeout", type=float, default=3600)
    p.set_defaults(fn=cmd_rx_big)
    p = sp.add_parser("enmap")
    p.add_argument("--path", default=str(BENCH / "enmap_1000x1000x224.tif"))
    p.add_argument("--remake", action="store_true")
    p.add_argument("--interleave", default="band", choices=["pixel", "band"],
                   help="layout of the scene when it is made (band: GDAL read it ~3x faster than pixel here)")
    p.add_argument("--detectors", default="fast",
                   help="'fast', 'rest', 'all' or a comma list (NAME or NAME@pca:K for --reduce pca:K)")
    p.add_argument("--mem-limit", type=int, default=2048)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per detector run (then killed)")
    p.set_defaults(fn=cmd_enmap)
    p = sp.add_parser("inmem")
    p.add_argument("--cube", default=str(BENCH / "enmap_1000x1000x224.npy"))
    p.add_argument("--detectors", default="rx")
    p.add_argument("--timeout", type=float, default=1800)
    p.set_defaults(fn=cmd_inmem)
    p = sp.add_parser("baseline")
    p.set_defaults(fn=cmd_baseline)
    a = ap.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
