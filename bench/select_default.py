"""Choose the default detector (``auto``) from the score-map cache of ``bench/bench_sensors.py``, by
leave-one-scene-out across the nine shared scenes and the worst case across the simulated sensor variants.

    python bench/select_default.py [--budget 120] [--out docs/ensemble/]

Candidates: every registry detector alone, and ensembles (hadcore's ``ensemble`` combination and guard, exactly
as :class:`hadcore.detectors.ensemble.Ensemble` computes them on a scene) of two to four of the detectors cheap
enough at scale, under a cost budget: the sum of the members' seconds on the 1000 x 1000 x 224 tile
(``docs/scale.md``) at most ``--budget``. Combinations: ``geo-range``, ``mean-range``, ``mean-rank``; the guard on
(threshold 0.5, tail 1 %) for every ensemble.

Criterion of a candidate on a set of scenes: the worst over variants of its mean AUC(PD,PF) over the scenes, plus
half its worst shortfall against global RX on the same variant and scene (when negative). Leave-one-scene-out:
for each scene, the candidate with the best criterion on the other eight is scored on it, on every variant; the
means and worst cases of those held-out figures are the figures of the *selection procedure* (what a default
chosen this way scores on a scene it did not see). The candidate chosen on all nine is the default.
Also reported for every ensemble candidate: the negated-member test (each member's scores negated on each scene:
the largest change of the ensemble's AUC).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sensors import SCENES, load_map, load_scene  # noqa: E402
from sensors import VARIANTS  # noqa: E402

from hadcore.detectors.ensemble import Ensemble  # noqa: E402
from hadcore.metrics import roc_auc  # noqa: E402

#: the ensemble's unit of work: a member's wall seconds on one 384 x 384 x 224 scene tile (the ensemble's default
#: tile) cut from the 1000 x 1000 x 224 mosaic, 2 threads, idle machine (2026-12-06, ``detect`` in memory;
#: glrt2s after its ring sums became box sums, 15.4 s before). The ensemble scores the mosaic in 16 such tiles
#: (edge tiles smaller: 1.42 M pixels in all), so a set's cost on the mosaic is about ``TILES_PER_MOSAIC`` x the
#: sum of its members' seconds here: 8.9, calibrated on aed+glrt2s+msrfqft, 90.2 s on the mosaic (`hadcore
#: detect`, --mem-limit 2048, reading and writing included) for 10.15 s of member seconds per tile
TILE_SECONDS = {"rx": 1.16, "aed": 3.51, "glrt2s": 5.13, "msrfqft": 1.51, "stad": 1.60, "lsmad": 5.82,
                "crd": 17.22, "pcatlrsr": 44.79, "kifd": 19.87}
TILES_PER_MOSAIC = 8.9
#: the standalone runs on the 1000 x 1000 x 224 mosaic (docs/scale.md; streamed with global statistics)
MOSAIC_SECONDS = {"rx": 6.9, "stad": 15.1, "kdad": 38.5, "glrt2s": 63.9, "lsmad": 64.8, "aed": 53.2, "lrx": 521.9,
                  "crd": 128.8, "kifd": 156.6, "msrfqft": 73.1, "pcatlrsr": 240.2, "pdbsnet": 114.4,
                  "lrasr": 416.6, "pta": 964.5, "gthad": 781.6}
COMBINES = ("geo-range", "mean-range", "mean-rank")


def load_all(dets, variants):
    maps, gts, masks = {}, {}, {}
    for v in variants:
        for s in SCENES:
            _c, gt, _w = load_scene(s, v)
            gts[v, s] = gt
            masks[v, s] = np.ones(gt.shape, bool)
            for d in dets:
                m = load_map(v, s, d)
                if m is None or m.size == 0:
                    continue
                maps[d, v, s] = np.nan_to_num(m.astype(np.float64), nan=-np.inf)
    return maps, gts, masks


def ensemble_map(members, combine, maps, mask, negate=None):
    """The ensemble's score map from cached member maps: :meth:`Ensemble.combine_maps`, the detector's own."""
    ms = [(-maps[m] if m == negate else maps[m]) for m in members]
    return Ensemble(members=",".join(members), combine=combine).combine_maps(ms, mask, list(members))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=110.0, help="estimated seconds on the 1000 x 1000 x 224 "
                    "mosaic (TILES_PER_MOSAIC x the members' tile seconds); the goal is 120 s")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--pool", default="rx,aed,glrt2s,msrfqft,stad,lsmad,crd")
    ap.add_argument("--singles", default="all", help="single detectors (all: every registry detector whose maps "
                    "are cached on every variant and whose seconds on the mosaic are within the budget)")
    ap.add_argument("--max-size", type=int, default=4)
    ap.add_argument("--min-members", type=int, default=3,
                    help="fewest members of an ensemble candidate: the guard needs three to outvote one")
    ap.add_argument("--penalty", type=float, default=0.5)
    ap.add_argument("--max-shortfall", type=float, default=None,
                    help="a constraint instead of (or beside) the penalty: candidates with a scene more than this "
                         "below global RX on any variant rank after all the others")
    ap.add_argument("--criterion", default="mean", choices=["mean", "worst-variant"],
                    help="mean: the mean AUC over variants and scenes; worst-variant: the lowest variant mean")
    ap.add_argument("--out", default=str(ROOT / "docs" / "ensemble"))
    a = ap.parse_args(argv)
    variants = a.variants.split(",")
    import hadcore

    pool = a.pool.split(",")
    singles = ([d for d in hadcore.list_detectors() if d not in ("auto", "ensemble")
                and hadcore.get_detector_class(d).family != "target"] if a.singles == "all"
               else a.singles.split(","))
    over = [d for d in singles if MOSAIC_SECONDS.get(d, 0.0) > a.budget]
    singles = [d for d in singles if d not in over]
    dets = sorted(set(pool) | set(singles) | {"rx"})
    t0 = time.time()
    maps, gts, masks = load_all(dets, variants)
    missing = [(d, v, s) for d in dets for v in variants for s in SCENES if (d, v, s) not in maps]
    incomplete = sorted({m[0] for m in missing})
    if missing:
        print(f"{len(missing)} score maps missing from the cache ({', '.join(incomplete)}); not candidates")
        dets = [d for d in dets if d not in incomplete]
        pool = [d for d in pool if d in dets]
        singles = [d for d in singles if d in dets]
    cands = [((d,), None) for d in singles]
    for k in range(a.min_members, a.max_size + 1):
        for members in itertools.combinations(pool, k):
            if TILES_PER_MOSAIC * sum(TILE_SECONDS[m] for m in members) <= a.budget:
                cands += [(members, c) for c in COMBINES]
    print(f"{len(cands)} candidates; maps loaded in {time.time() - t0:.1f} s")

    auc = {}  # (cand, v, s) -> AUC
    used = {}
    for cand in cands:
        members, combine = cand
        for v in variants:
            for s in SCENES:
                if combine is None:
                    sc = maps[members[0], v, s]
                else:
                    sc, u = ensemble_map(list(members), combine, {m: maps[m, v, s] for m in members}, masks[v, s])
                    used[cand, v, s] = u
                auc[cand, v, s] = float(roc_auc(sc, gts[v, s]))
    rx = {(v, s): auc[(("rx",), None), v, s] for v in variants for s in SCENES}
    print(f"scored in {time.time() - t0:.1f} s")

    def crit(cand, scenes):
        per_variant = [np.mean([auc[cand, v, s] for s in scenes]) for v in variants]
        level = min(per_variant) if a.criterion == "worst-variant" else float(np.mean(per_variant))
        short = min(auc[cand, v, s] - rx[v, s] for v in variants for s in scenes)
        if a.max_shortfall is not None and short < -a.max_shortfall:
            return level - 1.0  # outside the constraint: after every candidate that meets it
        return level + a.penalty * min(0.0, short)

    def name(cand):
        members, combine = cand
        return members[0] if combine is None else f"{'+'.join(members)} ({combine})"

    loso = {}
    for s in SCENES:
        rest = [x for x in SCENES if x != s]
        best = max(cands, key=lambda c: crit(c, rest))
        loso[s] = {"chosen": name(best), **{v: auc[best, v, s] for v in variants}}
    final = max(cands, key=lambda c: crit(c, SCENES))
    ranking = sorted(cands, key=lambda c: -crit(c, SCENES))

    def negation(cand):
        members, combine = cand
        if combine is None:
            return None
        worst = 0.0
        for s in SCENES:
            base = auc[cand, "orig", s]
            for m in members:
                sc, _u = ensemble_map(list(members), combine, {x: maps[x, "orig", s] for x in members},
                                      masks["orig", s], negate=m)
                worst = max(worst, abs(float(roc_auc(sc, gts["orig", s])) - base))
        return worst

    lines = ["# Choosing the default detector: leave-one-scene-out and the worst sensor variant", "",
             f"Generated by `python bench/select_default.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) "
             f"from the score maps of `bench/bench_sensors.py`. {len(cands)} candidates: {len(singles)} single "
             f"detectors ({', '.join(singles)}; not candidates: {', '.join(over) or 'none'} over the time budget on "
             f"the mosaic, {', '.join(incomplete) or 'none'} not run on every variant) and ensembles of {a.min_members}-{a.max_size} of {', '.join(pool)} whose estimated seconds on the "
             f"1000 x 1000 x 224 mosaic ({TILES_PER_MOSAIC} x the sum of the members' seconds on one 384 x 384 "
             f"x 224 tile, measured at idle) are at most {a.budget:g} s, each with the combinations "
             f"{', '.join(COMBINES)} and the guard on. Criterion: the "
             + ("mean AUC(PD,PF) over the variants" if a.criterion == "mean" else "worst over the variants of the mean AUC(PD,PF)")
             + f" ({', '.join(variants)}) and the scenes, plus {a.penalty} x the worst shortfall against global RX "
             "on any variant and scene, when negative"
             + ("." if a.max_shortfall is None else f"; candidates with a scene more than {a.max_shortfall} below "
                "global RX on any variant rank last (a constraint)."), "",
             "## The selection procedure, held out", "",
             "For each scene: the candidate chosen on the other eight, and its AUC on the held-out scene, per "
             "variant (global RX below it).", "",
             "| held-out scene | chosen on the other eight | " + " | ".join(variants) + " |",
             "|---|---|" + "---|" * len(variants)]
    for s in SCENES:
        lines.append(f"| {s} | {loso[s]['chosen']} | " + " | ".join(f"{loso[s][v]:.4f}" for v in variants) + " |")
    lines.append("| **mean, held out** | | " + " | ".join(f"**{np.mean([loso[s][v] for s in SCENES]):.4f}**"
                                                     for v in variants) + " |")
    lines.append("| global RX mean | | " + " | ".join(f"{np.mean([rx[v, s] for s in SCENES]):.4f}" for v in variants)
                 + " |")
    lines.append("| worst held-out scene vs RX | | " + " | ".join(
        f"{min(loso[s][v] - rx[v, s] for s in SCENES):+.4f}" for v in variants) + " |")
    lines += ["", f"## Chosen on all nine scenes: **{name(final)}**", "",
              "| candidate | criterion | " + " | ".join(f"{v} mean" for v in variants)
              + " | worst vs RX (scene, variant) | est. s on the mosaic | negated member: largest AUC change |",
              "|---|---|" + "---|" * len(variants) + "---|---|---|"]
    rows = []
    for cand in ranking[:15] + [c for c in cands if c[1] is None and c not in ranking[:15]]:
        members, combine = cand
        w = min(((auc[cand, v, s] - rx[v, s]), s, v) for v in variants for s in SCENES)
        neg = negation(cand) if cand in ranking[:15] else None
        rows.append({"candidate": name(cand), "criterion": crit(cand, SCENES),
                     "means": {v: float(np.mean([auc[cand, v, s] for s in SCENES])) for v in variants},
                     "worst": [w[0], w[1], w[2]], "tile_s": (MOSAIC_SECONDS.get(members[0], np.nan) if combine is None else
                               TILES_PER_MOSAIC * sum(TILE_SECONDS.get(m, np.nan) for m in members)),
                     "negated": neg})
        lines.append(f"| {name(cand)} | {crit(cand, SCENES):.4f} | "
                     + " | ".join(f"{rows[-1]['means'][v]:.4f}" for v in variants)
                     + f" | {w[0]:+.4f} ({w[1]}, {w[2]}) | {rows[-1]['tile_s']:.0f} | "
                     + ("—" if neg is None else f"{neg:.4f}") + " |")
    if final[1] is not None:
        drops = {}
        for (c, v, s), u in used.items():
            if c == final and tuple(u) != tuple(final[0]):
                drops.setdefault(v, []).append(f"{s}: {','.join(u)}")
        lines += ["", "Where the guard changed the chosen ensemble's members (scene: members used, -name reversed), "
                  "per variant: "
                  + ("; ".join(f"{v}: {', '.join(x)}" for v, x in drops.items()) if drops else "none") + "."]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "default_selection.md").write_text("\n".join(lines) + "\n")
    (out / "default_selection.json").write_text(json.dumps({"final": name(final), "loso": loso, "ranking": rows},
                                                           indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
