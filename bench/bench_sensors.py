"""Every registry detector on the nine shared scenes and their simulated sensor variants (``bench/sensors.py``),
each score map cached on disk, so that choosing a default re-runs from the cache in seconds.

    python bench/bench_sensors.py run [--detectors all|a,b] [--variants ...] [--shard 0/2] [--threads 1]
    python bench/bench_sensors.py collect          # the cache's figures -> docs/robustness-sensors.jsonl
    python bench/bench_sensors.py report           # docs/robustness-sensors.jsonl -> docs/robustness.md

Cache: ``$HADCORE_BENCH_CACHE`` (default ``/work/bench_data/sensor-maps``), one ``.npy`` score map (float32) and
one ``.json`` (AUC, wall and CPU seconds, load, error) per (variant, scene, detector, seed): a run skips what is
there, so it can be stopped and resumed, and two processes can share the work (``--shard 0/2`` and ``1/2``).
Files are written under a temporary name and renamed. Detectors run with their defaults; a detector with a
``seed`` runs with seed 0 (``--seeds`` for more). ``--redo`` recomputes the named detectors (after a change of
their defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sensors import VARIANTS, make_variant  # noqa: E402

DATA = Path(os.environ.get("HADCORE_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("HADCORE_BENCH_CACHE", "/work/bench_data/sensor-maps"))
SCENES = ["abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2",
          "sandiego-lren", "hydice-162", "pavia-100"]
RUNS = ROOT / "docs" / "robustness-sensors.jsonl"


def map_path(variant, scene, det, seed=0) -> Path:
    return CACHE / variant / scene / f"{det}-s{seed}.npy"


def load_scene(scene, variant):
    with np.load(DATA / f"{scene}.npz") as z:
        return make_variant(z["cube"], z["gt"], scene, variant)


def load_map(variant, scene, det, seed=0):
    p = map_path(variant, scene, det, seed)
    return np.load(p) if p.exists() else None


def cmd_run(a):
    from threadpoolctl import threadpool_limits

    import hadcore
    from hadcore.metrics import roc_auc

    try:
        import torch

        torch.set_num_threads(a.threads)
    except ImportError:
        pass
    names = ([n for n in hadcore.list_detectors() if hadcore.get_detector_class(n).family != "target"]
             if a.detectors == "all" else a.detectors.split(","))
    shard, nshard = (int(x) for x in a.shard.split("/"))
    seeds = [int(s) for s in a.seeds.split(",")]
    for variant in a.variants.split(","):
        for scene in a.scenes.split(","):
            cube = gt = None
            for name in names:
                cls = hadcore.get_detector_class(name)
                seeded = any(p.name == "seed" for p in cls.params)
                for seed in (seeds if seeded else [0]):
                    key = f"{variant}/{scene}/{name}/{seed}"
                    if zlib.crc32(key.encode()) % nshard != shard:
                        continue
                    p = map_path(variant, scene, name, seed)
                    if p.exists() and not a.redo:
                        continue
                    if cube is None:
                        cube, gt, _wl = load_scene(scene, variant)
                    kw = {"seed": seed} if seeded else {}
                    t0, c0 = time.perf_counter(), time.process_time()
                    err, s = None, None
                    try:
                        with threadpool_limits(a.threads):
                            s = np.asarray(hadcore.get_detector(name, **kw).detect(cube), dtype=np.float32)
                        auc = float(roc_auc(s, gt))
                    except Exception as exc:  # noqa: BLE001 - a failure is a result here
                        auc, err = None, f"{type(exc).__name__}: {exc}"[:300]
                    row = {"detector": name, "scene": scene, "variant": variant, "seed": seed, "auc": auc,
                           "error": err, "bands": int(cube.shape[-1]), "pixels": int(cube.shape[0] * cube.shape[1]),
                           "wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
                           "threads": a.threads, "load": round(os.getloadavg()[0], 2),
                           "time": time.strftime("%Y-%m-%d %H:%M:%S")}
                    p.parent.mkdir(parents=True, exist_ok=True)
                    if s is not None:
                        tmp = p.with_name(p.stem + ".tmp.npy")
                        np.save(tmp, s)
                        os.replace(tmp, p)
                    else:  # a failure is recorded too (no map): skipped on resume like a success
                        np.save(p, np.zeros(0, np.float32))
                    tmp = p.with_suffix(".json.tmp")
                    tmp.write_text(json.dumps(row))
                    os.replace(tmp, p.with_suffix(".json"))
                    print(variant, scene, name, seed, "—" if auc is None else round(auc, 4), err or "",
                          f"{row['wall_s']} s", flush=True)


def cmd_collect(a):
    rows = []
    for f in sorted(CACHE.glob("*/*/*.json")):
        rows.append(json.loads(f.read_text()))
    rows.sort(key=lambda r: (VARIANTS.index(r["variant"]) if r["variant"] in VARIANTS else 99,
                             SCENES.index(r["scene"]) if r["scene"] in SCENES else 99, r["detector"], r["seed"]))
    RUNS.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} runs -> {RUNS}")


#: composite detectors scored from their members' cached maps (hadcore's own combination, exactly: tests show the
#: detector and :meth:`Ensemble.combine_maps` of its members' maps agree)
COMPOSITES = {"auto": "aed,glrt2s,msrfqft", "ensemble (before issue 25)": "lrx,glrt2s,aed"}
VARIANT_TEXT = {
    "orig": "as stored", "vnir64": "64-band VNIR imager, 375-1050 nm, 10-20 nm bands", "enmap": "EnMAP band set",
    "emit": "EMIT band set", "prisma": "PRISMA band set", "hymap": "HyMap band set (126 bands, 16 nm)",
    "hyperion": "Hyperion band set, its noise and stripes", "snr100": "white noise, SNR 100",
    "snr25": "white noise, SNR 25", "coarse2": "pixels twice as coarse (2 x 2 means)"}


def composite_rows():
    """AUC rows of the composite detectors, from their members' cached maps."""
    from hadcore.detectors.ensemble import Ensemble
    from hadcore.metrics import roc_auc

    rows = []
    for name, members in COMPOSITES.items():
        names = members.split(",")
        for variant in VARIANTS:
            for scene in SCENES:
                maps = [load_map(variant, scene, m) for m in names]
                if any(m is None or m.size == 0 for m in maps):
                    continue
                _c, gt, _w = load_scene(scene, variant)
                mask = np.ones(gt.shape, bool)
                s, used = Ensemble(members=members).combine_maps([m.astype(np.float64) for m in maps], mask, names)
                rows.append({"detector": name, "scene": scene, "variant": variant, "seed": 0,
                             "auc": float(roc_auc(s, gt)), "error": None, "members_used": ",".join(used)})
    return rows


def cmd_report(a):
    import hadcore

    rows = [json.loads(x) for x in RUNS.read_text().splitlines() if x.strip()] + composite_rows()
    auc = {(r["detector"], r["variant"], r["scene"]): r["auc"] for r in rows if r["auc"] is not None}
    errors = [r for r in rows if r.get("error")]
    order = ["auto"] + [d for d in hadcore.list_detectors() if d not in ("auto", "ensemble")
                        and hadcore.get_detector_class(d).family != "target"] + ["ensemble (before issue 25)"]
    rx = {(v, s): auc.get(("rx", v, s)) for v in VARIANTS for s in SCENES}

    def stats(d, v):
        x = [auc.get((d, v, s)) for s in SCENES]
        if any(y is None for y in x):
            n = sum(y is not None for y in x)
            return None, None, n
        worst = min((auc[d, v, s] - rx[v, s], s) for s in SCENES)
        return float(np.mean(x)), worst, len(x)

    n_runs = sum(1 for r in rows if r["detector"] not in COMPOSITES)
    out = ["# Robustness: every detector on the nine shared scenes and on simulated sensors", "",
           f"Generated by `python bench/bench_sensors.py report` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) "
           f"from {n_runs} runs cached by `bench/bench_sensors.py run` (raw figures: "
           "[robustness-sensors.jsonl](robustness-sensors.jsonl)); every detector with its default parameters, "
           "seed 0. AUC(PD,PF), exact. `auto` (the default) and the ensemble's previous default are computed from "
           "their members' score maps with hadcore's own combination and guard.", "",
           "The variants (`bench/sensors.py`: how each is made and the sensor facts behind it): each scene "
           "resampled with Gaussian band responses from its own wavelengths to another sensor's band set, or "
           "degraded on its own bands:", ""]
    out += [f"- `{v}`: {VARIANT_TEXT[v]}" for v in VARIANTS]
    out += ["", "## Which detector to trust on which kind of sensor", "",
            "Each cell: the mean AUC over the nine scenes on that variant. **Bold**: on at least one scene the "
            "detector falls more than 0.02 below global RX on the same cube; the last column lists where. A "
            "detector that holds on every variant is one to trust on a sensor it has not seen; `—`: not run on "
            "that variant (the slow deep detectors run only where they were candidates, and as far as the two "
            "cores allowed).", "",
            "| detector | " + " | ".join(VARIANTS) + " | more than 0.02 below RX on |",
            "|---|" + "---|" * (len(VARIANTS) + 1)]
    for d in order:
        cells, bad = [], []
        for v in VARIANTS:
            m, w, n = stats(d, v)
            if m is None:
                cells.append("—" if n == 0 else f"({n}/9)")
                continue
            cells.append(f"**{m:.4f}**" if w[0] < -0.02 else f"{m:.4f}")
            if w[0] < -0.02:
                bad.append((w[0], v, w[1]))
        ran = [v for v, c in zip(VARIANTS, cells) if not c.startswith(("—", "("))]
        if bad:
            worst = min(bad)
            where = "every variant run" if len(bad) == len(ran) else ", ".join(b[1] for b in bad)
            verdict = f"{where} (worst {worst[0]:+.3f}: {worst[2]}, {worst[1]})"
        else:
            verdict = "nowhere" if len(ran) == len(VARIANTS) else f"nowhere on the {len(ran)} variants run"
        out.append(f"| {d} | " + " | ".join(cells) + f" | {verdict} |")
    out += ["", "## Worst scene against global RX, per variant", "",
            "Each cell: the detector's AUC minus global RX's on the scene where that difference is lowest.", "",
            "| detector | " + " | ".join(VARIANTS) + " |", "|---|" + "---|" * len(VARIANTS)]
    for d in order:
        cells = []
        for v in VARIANTS:
            m, w, n = stats(d, v)
            cells.append("—" if m is None else (f"**{w[0]:+.4f}**" if w[0] < -0.02 else f"{w[0]:+.4f}"))
        out.append(f"| {d} | " + " | ".join(cells) + " |")
    out += ["", "## Reading it", "",
            "- The band-set shifts (VNIR-only, EnMAP, EMIT, PRISMA, HyMap, Hyperion) move most detectors by less "
            "than 0.01: what breaks detectors is noise (SNR 25) and coarse pixels, where sub-pixel anomalies mix "
            "with their background and the spatial detectors (AED's area filters, the windows of LRX and 2S-GLRT) "
            "lose their shape. Global RX, which sees only spectra, loses least there.",
            "- The held-out 64-band scene on which the previous ensemble fell to 0.82 is a different scene type as "
            "well as a different sensor: resampling these nine scenes to a 64-band VNIR grid does not reproduce "
            "that inversion (no detector inverts here). The default's protection against it is the guard "
            "(`hadcore.detectors.ensemble.guard_members`), tested by negating each member on each scene.",
            "- How the default was chosen from these runs: [ensemble/default_selection.md]"
            "(ensemble/default_selection.md). Value scaling (min-max, x 1e-4, first 64 bands) and seeds: "
            "[robustness-seeds.md](robustness-seeds.md).", ""]
    if errors:
        out += ["## Errors", ""] + [f"- {r['detector']} {r['scene']} {r['variant']}: {r['error']}" for r in errors]
        out.append("")
    secs = {}
    for r in rows:
        if r["variant"] == "orig" and r.get("wall_s") is not None:
            secs.setdefault(r["detector"], []).append(r["wall_s"])
    out += ["## Seconds", "", "Mean wall seconds of one run on a shared scene as stored (one thread; two runs "
            "shared the two cores, so these are upper bounds).", "", "| detector | seconds |", "|---|---|"]
    out += [f"| {d} | {np.mean(s):.1f} |" for d, s in secs.items()]
    Path(a.out).write_text("\n".join(out) + "\n")
    print(f"wrote {a.out}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("run")
    p.add_argument("--detectors", default="all")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--scenes", default=",".join(SCENES))
    p.add_argument("--seeds", default="0")
    p.add_argument("--shard", default="0/1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--redo", action="store_true")
    p.set_defaults(fn=cmd_run)
    p = sp.add_parser("collect")
    p.set_defaults(fn=cmd_collect)
    p = sp.add_parser("report")
    p.add_argument("--out", default=str(ROOT / "docs" / "robustness.md"))
    p.set_defaults(fn=cmd_report)
    a = ap.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
