"""The target-detection workflow on a 6.9 GB streamed scene within ``--mem-limit`` (resumable).

    python bench/bench_targets_scale.py make            # the scene, its truth mask and lib.sli (skipped when done)
    python bench/bench_targets_scale.py run [--force] [--steps baseline,ace,more,mf]
    python bench/bench_targets_scale.py trace STEP      # STEP again, its RSS sampled: the peak of each phase
    python bench/bench_targets_scale.py report          # docs/targets-scale.md from the cached results

Everything goes to ``$HADCORE_BENCH_DATA/targets_scale`` (default /work/bench_data/targets_scale).

``make``  ``scene_3000x3000x191.tif``: the mosaic of ``bench_scale.py make-big`` (abu-airport-1, first 191 bands,
          tiled 30 x 30, odd tile columns / rows flipped; tiled 256 x 256, pixel-interleaved, uncompressed BigTIFF,
          6.9 GB), written window by window (256-row strips: the cube is never held in memory), with the band
          wavelengths as band metadata the way :func:`hadcore.io.write_cube` writes them (band-level
          ``wavelength`` / ``wavelength_units = nanometers`` keys and a "<wl> nanometers" band description). The
          wavelengths are abu-airport-1's nominal AVIRIS grid (``sensors.scene_wavelengths(scene, 205)``), its
          first 191 positions since the mosaic keeps the first 191 bands.
          A target ("red paint", the spectrum of tests/test_target_detectors.py's ``implanted`` fixture: a flat
          level with a bump at 650 nm) is implanted at ``--fraction`` (30 %) into ``--n-targets`` (500) random
          mosaic pixels (seed ``--seed``) that are not anomalies of the airport scene:
          ``x <- (1 - f) x + f t``, ``t`` the library spectrum interpolated to the scene's bands.
          ``scene_3000x3000x191_truth.tif`` (uint8, 1 = implanted) beside it; ``lib.sli`` + ``lib.hdr``: an ENVI
          library on a 1 nm grid (350-2510 nm) holding "red paint", "grey", "green vegetation" and "asphalt".
          ``small_100x100x191.tif``: the single tile with the same wavelengths and 5 implanted pixels, for the
          baseline (interpreter + libraries) run. Every file is written under a temporary name and renamed; the
          manifest ``scene_3000x3000x191.json`` is written last, so an interrupted make starts again and a
          complete one is skipped.
``run``   each step one ``hadcore`` process under ``/usr/bin/time -f "%M %e"`` (peak RSS KiB, wall s), its whole
          output in logs/<step>.log:
          - ``baseline``: step ``ace`` on the 100 x 100 tile (what the interpreter and libraries cost);
          - ``ace``: ``hadcore detect ace BIG -p "target=lib.sli:red paint" -o ace.tif --vector ace.gpkg
            --threshold top:N --mem-limit 1024 --overwrite``;
          - ``more``: ``hadcore detect ace BIG -p target=ace.gpkg:1 -o more.tif --vector more.gpkg ...`` ("find
            more like detection 1"; ``--vector`` added to count its detections);
          - ``mf``: ``hadcore detect mf BIG -p "target=lib.sli:red paint" --exclude first-pass ...``;
          - ``ace_default``: step ``ace`` at the CLI's default threshold, ``percentile:99.5`` (45 000 pixels: more
            than the score pass keeps spectra for, so the rest are read again).
          ``--threshold`` (default top:1000; ties at the N-th score are all kept: the mosaic repeats every tile
          pixel 900 times) applies to ace, more and mf.
          Per step: wall, peak RSS and peak / --mem-limit, the AUC of the score GeoTIFF against the truth mask
          (:func:`hadcore.metrics.roc_auc`), the implanted pixels among the N highest scores, the detections in the
          GeoPackage, whether it holds the ``detection_spectra`` table (and its ids), whether detection 1's peak is
          an implanted pixel, whether the program printed "read again" (spectra re-read from the scene), the
          fraction of the scene in the page cache before the step, the load average. Cached as steps/<step>.json;
          a finished step is skipped unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale import (BENCH, DATA, cached_fraction, load, read_gt, read_scores, tile_index,  # noqa: E402
                         write_gt, write_tiff_by_windows)

HADCORE = str(Path(sys.executable).with_name("hadcore"))
OUT = BENCH / "targets_scale"
DOC = ROOT / "docs" / "targets-scale.md"
SCENE = "abu-airport-1"
STEM = "scene_3000x3000x191"
TARGET = "red paint"
STEPS = ["baseline", "ace", "more", "mf", "ace_default"]


# ================================================================================================ make
def params(a) -> dict:
    return {"scene": SCENE, "bands": a.bands, "tiles": a.tiles, "flip": True, "n_targets": a.n_targets,
            "fraction": a.fraction, "seed": a.seed, "target": TARGET, "layout": "tiled 256x256, pixel, none"}


def scene_wavelengths(B: int) -> np.ndarray:
    import sensors

    d = np.load(DATA / f"{SCENE}.npz", mmap_mode="r")
    return sensors.scene_wavelengths(SCENE, d["cube"].shape[2])[:B]


def library(level: float):
    from hadcore.library import SpectralLibrary

    wl = np.arange(350.0, 2511.0, 1.0)
    paint = level * (0.6 + 0.5 * np.exp(-0.5 * ((wl - 650) / 60) ** 2))  # the test fixture's 'paint'
    grey = np.full(wl.size, level)
    veg = level * (0.15 + 0.85 / (1 + np.exp(-(wl - 720) / 15))) * np.exp(-((wl - 350) / 3000))
    asphalt = level * 0.3 * (1 + 0.4 * (wl - 350) / 2160)
    return SpectralLibrary(names=[TARGET, "grey", "green vegetation", "asphalt"],
                           spectra=np.stack([paint, grey, veg, asphalt]), wavelengths=wl)


def cmd_make(a):
    import shutil

    from hadcore.io import write_cube
    from hadcore.library import write_library

    OUT.mkdir(parents=True, exist_ok=True)
    big, manifest = OUT / f"{STEM}.tif", OUT / f"{STEM}.json"
    truth_path = OUT / f"{STEM}_truth.tif"
    p = params(a)
    files = [big, truth_path, OUT / "lib.sli", OUT / "lib.hdr", OUT / "small_100x100x191.tif",
             OUT / "small_100x100x191_truth.tif"]
    if manifest.exists() and all(f.exists() for f in files):
        m = json.loads(manifest.read_text())
        if m.get("params") == p and big.stat().st_size == m.get("bytes"):
            print(f"{big} complete ({m['bytes'] / 1e9:.2f} GB, written in {m['write_s']} s): skipped", flush=True)
            return
    free = shutil.disk_usage(OUT).free
    print(f"free disk at {OUT}: {free / 1e9:.1f} GB", flush=True)
    if free < 20e9:
        sys.exit(f"only {free / 1e9:.1f} GB free at {OUT}: the scene needs 6.9 GB plus its outputs")
    manifest.unlink(missing_ok=True)

    d = np.load(DATA / f"{SCENE}.npz")
    cube = np.ascontiguousarray(d["cube"][:, :, :a.bands]).astype(np.float32)
    gt = d["gt"].astype(bool)
    th, tw, B = cube.shape
    H, W = th * a.tiles, tw * a.tiles
    ri, ci = tile_index(H, th, True), tile_index(W, tw, True)
    wl = scene_wavelengths(B)
    level = float(cube[~gt].mean())
    lib = library(level)
    t = np.interp(wl, lib.wavelengths, lib.spectra[0]).astype(np.float64)  # the target on the scene's bands
    # implanted pixels: seeded, never on an anomaly of the airport scene
    rng = np.random.default_rng(a.seed)
    mosaic_gt = gt[np.ix_(ri, ci)]
    cand = np.flatnonzero(~mosaic_gt.ravel())
    idx = np.sort(rng.choice(cand, a.n_targets, replace=False))
    truth = np.zeros(H * W, bool)
    truth[idx] = True
    truth = truth.reshape(H, W)
    rows, cols = np.divmod(idx, W)
    f = np.float32(a.fraction)
    t32 = t.astype(np.float32)

    def block(r0, r1):
        s = cube[np.ix_(ri[r0:r1], ci)]
        k = (rows >= r0) & (rows < r1)
        rr, cc = rows[k] - r0, cols[k]
        s[rr, cc] = (1 - f) * s[rr, cc] + f * t32
        return s

    la0, t0 = load(), time.perf_counter()
    write_tiff_by_windows(big, H, W, B, block, wavelengths=wl, progress=True)
    write_s = time.perf_counter() - t0
    write_gt(truth_path, truth)
    write_library(lib, OUT / "lib.sli", overwrite=True)
    # the single tile with 5 implanted pixels: the baseline run (interpreter and libraries)
    small = cube.copy()
    sidx = np.random.default_rng(a.seed + 1).choice(np.flatnonzero(~gt.ravel()), 5, replace=False)
    sm = small.reshape(-1, B)
    sm[sidx] = (1 - f) * sm[sidx] + f * t32
    write_cube(OUT / "small_100x100x191.tif", small, wavelengths=wl, wavelength_units="nanometers", overwrite=True)
    st = np.zeros(th * tw, bool)
    st[sidx] = True
    write_gt(OUT / "small_100x100x191_truth.tif", st.reshape(th, tw))
    m = {"params": p, "file": str(big), "shape": f"{H}x{W}x{B}", "bytes": big.stat().st_size,
         "GB": round(big.stat().st_size / 1e9, 2), "write_s": round(write_s, 1), "load_before": la0,
         "load_after": load(), "wavelengths_nm": [round(float(x), 3) for x in (wl[0], wl[-1])],
         "target_pixels": int(truth.sum()), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    manifest.write_text(json.dumps(m, indent=1))
    print(json.dumps(m), flush=True)
    # check: hadcore reads the wavelengths back
    import rasterio

    from hadcore.io.bands import band_metadata

    with rasterio.open(big) as src:
        wl_back, _, _ = band_metadata(src, src.count)
    assert wl_back is not None and np.allclose(wl_back, wl, atol=1e-3), "wavelengths not read back"
    print(f"wavelengths read back by hadcore: {wl_back[0]:.1f}-{wl_back[-1]:.1f} nm", flush=True)


# ================================================================================================ run
def timed(cmd, log: Path, timeout: float):
    """``cmd`` under /usr/bin/time -f "%M %e": dict(peak_rss_mb, wall_s, rc, status); stdout + stderr to ``log``."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
        tpath = tf.name
    full = ["/usr/bin/time", "-f", "%M %e", "-o", tpath] + [str(c) for c in cmd]
    log.parent.mkdir(parents=True, exist_ok=True)
    status = "ok"
    t0 = time.perf_counter()
    with open(log, "w") as lf:
        lf.write("$ " + shlex.join(str(c) for c in cmd) + "\n")
        lf.flush()
        p = subprocess.Popen(full, stdout=lf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # our own process group (start_new_session)
            p.wait()
            status = "timeout"
    el = time.perf_counter() - t0
    peak, wall = float("nan"), el
    try:
        parts = open(tpath).read().split()
        peak, wall = int(parts[-2]) / 1024.0, float(parts[-1])
    except (OSError, ValueError, IndexError):
        pass
    os.unlink(tpath)
    if status == "ok" and p.returncode != 0:
        status = f"failed rc={p.returncode}"
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(peak, 1), "rc": p.returncode, "status": status}


def gpkg_facts(path: Path, score_path: Path, truth) -> dict:
    """Detections, the detection_spectra table, and whether detection 1's peak is an implanted pixel."""
    import pyogrio
    import rasterio

    if not path.exists():
        return {"detections": "no file", "spectra_table": False}
    layers = [n for n, _ in pyogrio.list_layers(path)]
    out = {"layers": layers, "spectra_table": "detection_spectra" in layers}
    frame = pyogrio.read_dataframe(path, layer="detections")
    out["detections"] = len(frame)
    out["detection_pixels"] = int(frame["pixels"].sum()) if len(frame) else 0
    if out["spectra_table"]:
        tab = pyogrio.read_dataframe(path, layer="detection_spectra")
        out["spectra_rows"] = len(tab)
        out["spectra_ids"] = int(tab["id"].nunique())
    if len(frame):
        first = frame[frame["id"] == 1].iloc[0]
        with rasterio.open(score_path) as ds:
            r, c = rasterio.transform.rowcol(ds.transform, float(first["peak_x"]), float(first["peak_y"]))
        out["det1_peak_rc"] = [int(r), int(c)]
        out["det1_pixels"] = int(first["pixels"])
        out["det1_is_target"] = bool(truth[r, c]) if truth is not None else None
        # detections whose peak is an implanted pixel
        with rasterio.open(score_path) as ds:
            rc = [rasterio.transform.rowcol(ds.transform, float(x), float(y))
                  for x, y in zip(frame["peak_x"], frame["peak_y"])]
        if truth is not None:
            out["detections_on_targets"] = int(sum(bool(truth[r, c]) for r, c in rc))
    return out


def score_facts(score_path: Path, truth) -> dict:
    from hadcore.metrics import roc_auc

    s = read_scores(score_path)
    n = int(truth.sum())
    flat = np.where(np.isfinite(s), s, -np.inf).ravel()
    top = np.argpartition(flat, -n)[-n:]
    return {"auc": round(float(roc_auc(s, truth)), 6), "targets_in_top_n": f"{int(truth.ravel()[top].sum())}/{n}",
            "nan_scores": int(np.isnan(s).sum())}


def step_commands(a) -> dict:
    big, lib = OUT / f"{STEM}.tif", OUT / "lib.sli"
    small = OUT / "small_100x100x191.tif"
    thr = ["--threshold", a.threshold]
    mem = ["--mem-limit", str(a.mem_limit)]
    return {
        "baseline": [HADCORE, "detect", "ace", small, "-p", f"target={lib}:{TARGET}", "-o", OUT / "small_ace.tif",
                     "--vector", OUT / "small_ace.gpkg", "--threshold", "top:5", *mem, "--overwrite"],
        "ace": [HADCORE, "detect", "ace", big, "-p", f"target={lib}:{TARGET}", "-o", OUT / "ace.tif",
                "--vector", OUT / "ace.gpkg", *thr, *mem, "--overwrite"],
        "more": [HADCORE, "detect", "ace", big, "-p", f"target={OUT / 'ace.gpkg'}:1", "-o", OUT / "more.tif",
                 "--vector", OUT / "more.gpkg", *thr, *mem, "--overwrite"],
        "mf": [HADCORE, "detect", "mf", big, "-p", f"target={lib}:{TARGET}", "--exclude", "first-pass",
               "-o", OUT / "mf.tif", "--vector", OUT / "mf.gpkg", *thr, *mem, "--overwrite"],
        # the CLI's default threshold (percentile:99.5, 45 000 pixels): more detection pixels than the score pass
        # keeps spectra for, so some are read again
        "ace_default": [HADCORE, "detect", "ace", big, "-p", f"target={lib}:{TARGET}", "-o", OUT / "ace_default.tif",
                        "--vector", OUT / "ace_default.gpkg", "--threshold", "percentile:99.5", *mem, "--overwrite"],
    }


def cmd_run(a):
    manifest = OUT / f"{STEM}.json"
    if not manifest.exists():
        sys.exit(f"{manifest} missing: run `make` first")
    truth = read_gt(OUT / f"{STEM}_truth.tif").astype(bool)
    small_truth = read_gt(OUT / "small_100x100x191_truth.tif").astype(bool)
    cmds = step_commands(a)
    steps = [s.strip() for s in a.steps.split(",") if s.strip()]
    (OUT / "steps").mkdir(parents=True, exist_ok=True)
    for step in steps:
        cache = OUT / "steps" / f"{step}.json"
        cmd = cmds[step]
        threshold = str(cmd[cmd.index("--threshold") + 1])
        if cache.exists() and not a.force:
            r = json.loads(cache.read_text())
            if r.get("mem_limit") == a.mem_limit and r.get("threshold") == threshold:
                print(f"{step}: cached ({r['status']}, {r['wall_s']} s, {r['peak_rss_mb']} MB)", flush=True)
                continue
        if step == "more" and not (OUT / "ace.gpkg").exists():
            print("more: ace.gpkg missing (step ace failed?): skipped", flush=True)
            continue
        scene = Path(cmd[3])
        log = OUT / "logs" / f"{step}.log"
        print(f"{step}: {shlex.join(str(c) for c in cmd)}", flush=True)
        cf = cached_fraction(scene)
        la = load()
        r = timed(cmd, log, a.timeout)
        text = log.read_text(errors="replace")
        lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines()]
        notes = [ln for ln in lines[1:] if ln and "%|" not in ln and "it/s" not in ln and "s/it" not in ln]
        row = {"step": step, "command": shlex.join(str(c) for c in cmd), "scene_bytes": scene.stat().st_size,
               "mem_limit": a.mem_limit, "threshold": threshold,
               **r, "peak_over_mem_limit": round(r["peak_rss_mb"] / a.mem_limit, 3),
               "read_again": "read again" in text, "cached_before": cf, "load_before": la, "load_after": load(),
               "notes": notes[-15:], "time": time.strftime("%Y-%m-%d %H:%M:%S")}
        if r["status"] == "ok":
            score = Path(cmd[cmd.index("-o") + 1])
            t = truth if step != "baseline" else small_truth
            if t is not None:
                row.update(score_facts(score, t))
            gp = Path(cmd[cmd.index("--vector") + 1])
            row.update(gpkg_facts(gp, score, t))
        cache.write_text(json.dumps(row, indent=1, default=str))
        print(json.dumps({k: v for k, v in row.items() if k not in ("command", "notes")}, default=str), flush=True)
        if r["status"] != "ok":
            print("\n".join(lines[-10:]), flush=True)
    report(a)


# ================================================================================================ trace
def cmd_trace(a):
    """Run one step again sampling its VmRSS every 0.25 s: the peak of each phase, a phase ending when the
    program prints a line (where the memory goes). Cached as steps/<step>_trace.json."""
    cmd = step_commands(a)[a.step]
    log = OUT / "logs" / f"{a.step}_trace.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    la = load()
    with open(log, "w") as lf:
        p = subprocess.Popen([str(c) for c in cmd], stdout=lf, stderr=subprocess.STDOUT)
        t0 = time.perf_counter()
        phases, seen, peak, start = [], 0, 0.0, 0.0
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    rss = next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmRSS"))
            except (OSError, StopIteration):
                break
            peak = max(peak, rss)
            lines = [ln.strip() for ln in log.read_text(errors="replace").replace("\r", "\n").splitlines()]
            for ln in lines[seen:]:
                if ln and "%|" not in ln:
                    now = time.perf_counter() - t0
                    phases.append({"until": ln[:160], "s": round(now - start, 1), "peak_rss_mb": round(peak)})
                    peak, start = rss, now
            seen = len(lines)
            time.sleep(0.25)
    phases.append({"until": "exit", "s": round(time.perf_counter() - t0 - start, 1), "peak_rss_mb": round(peak)})
    row = {"step": a.step, "command": shlex.join(str(c) for c in cmd), "rc": p.returncode, "phases": phases,
           "load_before": la, "load_after": load(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    (OUT / "steps" / f"{a.step}_trace.json").write_text(json.dumps(row, indent=1))
    for ph in phases:
        print(f"{ph['s']:7.1f} s  peak {ph['peak_rss_mb']:6d} MB  until: {ph['until']}", flush=True)
    report(a)


# ================================================================================================ report
def report(a=None):
    manifest = OUT / f"{STEM}.json"
    m = json.loads(manifest.read_text()) if manifest.exists() else {}
    rows = {s: json.loads((OUT / "steps" / f"{s}.json").read_text()) for s in STEPS
            if (OUT / "steps" / f"{s}.json").exists()}
    base = rows.get("baseline", {}).get("peak_rss_mb")

    def short(cmd: str) -> str:
        return cmd.replace(str(OUT) + "/", "").replace(HADCORE, "hadcore")

    L = ["# Target detection on a 6.9 GB streamed scene within --mem-limit", "",
         f"Generated by `python bench/bench_targets_scale.py make` then `run` (the protocol is in the script's "
         f"docstring), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, on a shared machine with 2 cores and "
         "24 GiB RAM (other jobs ran beside it: see the load averages).", ""]
    if m:
        L += [f"Scene: `{Path(m['file']).name}`, {m['shape']} float32 ({m['bytes']} bytes, {m['GB']} GB), the "
              f"{m['params']['scene']} tile mosaicked {m['params']['tiles']} x {m['params']['tiles']} (flipped), "
              f"tiled 256 x 256, pixel-interleaved, uncompressed BigTIFF, band wavelengths "
              f"{m['wavelengths_nm'][0]}-{m['wavelengths_nm'][1]} nm in its band metadata; written in "
              f"{m['write_s']} s (load {m['load_before']}). '{TARGET}' implanted at "
              f"{int(m['params']['fraction'] * 100)} % into {m['target_pixels']} random background pixels "
              f"(seed {m['params']['seed']}); truth mask `{STEM}_truth.tif`; library `lib.sli` (1 nm, 350-2510 nm: "
              f"{TARGET}, grey, green vegetation, asphalt).", ""]
    if m:
        H, W, B = (int(x) for x in m["shape"].split("x"))
        L += [f"The pixels are {H * W * B * 4} bytes ({H * W * B * 4 / 1e9:.2f} GB); the file is larger by its "
              "256 x 256 tiles' padding at the right and bottom edges. The mosaic repeats every tile pixel "
              f"{m['params']['tiles'] ** 2} times, so many scores tie: a `top:N` threshold keeps every pixel tied "
              "with the N-th score, hence more than N detection pixels.", ""]
    L += ["Commands (paths relative to the bench folder, `$HADCORE_BENCH_DATA/targets_scale`):", ""]
    for s, r in rows.items():
        L.append(f"- `{s}`: `{short(r['command'])}`")
    L += ["", "Peak RSS and wall from `/usr/bin/time -f \"%M %e\"`. AUC: `hadcore.metrics.roc_auc` of the score "
          "GeoTIFF against the truth mask (the airport's own anomalies count as background). 'targets in top N': "
          "implanted pixels among the N highest scores, N the number implanted. 'on target': detections whose peak "
          "pixel is implanted. 'read again': the program printed that spectra were re-read from the scene. "
          "'cached': fraction of the scene in the page cache before the step.", "",
          "| step | status | wall s | peak RSS MB | peak / mem-limit | AUC | targets in top N | detections "
          "(on target) | detection_spectra table (ids) | detection 1 implanted | read again | cached | load "
          "before / after |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, r in rows.items():
        spectra = (f"yes ({r.get('spectra_ids')})" if r.get("spectra_table") else
                   ("no" if "spectra_table" in r else ""))
        det = r.get("detections", "")
        if "detections_on_targets" in r:
            det = f"{det} ({r['detections_on_targets']})"
        L.append(f"| {s} | {r['status']} | {r['wall_s']} | {r['peak_rss_mb']} | {r['peak_over_mem_limit']} | "
                 f"{r.get('auc', '')} | {r.get('targets_in_top_n', '')} | {det} | {spectra} | "
                 f"{r.get('det1_is_target', '')} | {'yes' if r['read_again'] else 'no'} | {r['cached_before']} | "
                 f"{r['load_before']} / {r['load_after']} |")
    if base:
        L += ["", f"The baseline (the same `ace` command on the 100 x 100 tile) peaks at {base} MB: interpreter, "
              "numpy, GDAL, geopandas. Budget = --mem-limit + that overhead:"]
        for s, r in rows.items():
            if s != "baseline" and r["status"] == "ok":
                L.append(f"- `{s}`: peak {r['peak_rss_mb']} MB = {r['peak_over_mem_limit']} x --mem-limit "
                         f"{r['mem_limit']}; {r['peak_rss_mb'] / (r['mem_limit'] + base):.2f} x "
                         f"(--mem-limit + baseline {base:.0f} MB)")
    over = [(s, r) for s, r in rows.items() if s != "baseline" and r["status"] == "ok" and base
            and r["peak_rss_mb"] > r["mem_limit"] + base]
    for s, r in over:
        budget = r["mem_limit"] + base
        L += ["", f"**`{s}` is over --mem-limit + baseline** by {r['peak_rss_mb'] - budget:.0f} MB "
              f"({100 * (r['peak_rss_mb'] / budget - 1):.0f} %): peak {r['peak_rss_mb']} MB against "
              f"{r['mem_limit']} + {base:.0f} = {budget:.0f} MB ({r.get('detections')} detections, "
              f"{r.get('detection_pixels')} detection pixels, {r.get('spectra_rows')} rows of spectra)."]
    L += ["", "History: the first measurement (2026-12-07 00:37, before the fixes of that session) had `ace_default` "
          "at 2591 MB (2.5 x --mem-limit) and `ace` at 1314 MB. Its trace showed the score pass at 1345 MB, then "
          "2151 MB while 23,400 detection pixels were read again (GDAL's block cache, reset to its 5 %-of-RAM "
          "default after the run by the score writer's environment, held 1.2 GB of input blocks) and 2470 MB while "
          "the 6-million-row spectra table was written whole. Since then every raster read holds GDAL's cache to "
          "64 MB, the table is written in parts, and the collector keeps as many pixels as the threshold will flag "
          "(none read again) with its memory taken out of --mem-limit."]
    for s in STEPS:
        tp = OUT / "steps" / f"{s}_trace.json"
        if not tp.exists():
            continue
        tr = json.loads(tp.read_text())
        L += ["", f"Where `{s}`'s memory goes (`python bench/bench_targets_scale.py trace {s}`: the same command "
              f"again, VmRSS sampled every 0.25 s; a phase ends when the program prints a line; load "
              f"{tr['load_before']}):", "", "| phase ends with the line | seconds | peak RSS MB (sampled) |",
              "|---|---|---|"]
        L += [f"| {ph['until'].replace(str(OUT) + '/', '').replace('|', '/')} | {ph['s']} | {ph['peak_rss_mb']} |"
              for ph in tr["phases"]]
    notes = [(s, r["notes"]) for s, r in rows.items() if r.get("notes")]
    if notes:
        L += ["", "What each run printed (last lines, progress bars left out):", ""]
        for s, n in notes:
            L.append(f"- `{s}`:")
            L += [f"  - {short(ln)}" for ln in n]
    DOC.write_text("\n".join(L) + "\n")
    print(f"wrote {DOC}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("make")
    p.add_argument("--bands", type=int, default=191)
    p.add_argument("--tiles", type=int, default=30)
    p.add_argument("--n-targets", type=int, default=500)
    p.add_argument("--fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=2026)
    p.set_defaults(fn=cmd_make)
    p = sp.add_parser("run")
    p.add_argument("--steps", default=",".join(STEPS))
    p.add_argument("--threshold", default="top:1000")
    p.add_argument("--mem-limit", type=int, default=1024)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per step (then killed)")
    p.add_argument("--force", action="store_true", help="redo finished steps")
    p.set_defaults(fn=cmd_run)
    p = sp.add_parser("trace")
    p.add_argument("step", choices=STEPS)
    p.add_argument("--threshold", default="top:1000")
    p.add_argument("--mem-limit", type=int, default=1024)
    p.set_defaults(fn=cmd_trace)
    p = sp.add_parser("report")
    p.set_defaults(fn=report)
    a = ap.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
