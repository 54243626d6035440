"""Which ensemble of registry detectors, chosen by leave-one-scene-out on the nine shared scenes.

Every member's score map on every scene is computed once with its defaults (cached as .npy under ``--cache``);
the ensemble of a member set is the mean (or another ``--combine``) of the rank-normalised maps, exactly as
:class:`hadcore.detectors.ensemble.Ensemble` computes it in memory. For each held-out scene, the member set with
the best criterion on the other eight is chosen and scored on the held-out one (the figure reported); the
criterion is the mean AUC(PD,PF) minus a penalty for the worst shortfall against global RX on those eight
(``--penalty``; the protocol prefers settings that never fall far below RX over settings that win the mean),
plus ``--bs-weight`` times the mean AUC_BS (background suppression: what an analyst sees on the map).

The default ensemble (lrx+glrt2s+aed, geo-range) was chosen by::

    python bench/bench_ensemble.py --members rx,lrx,crd,glrt2s,lsmad,kifd,aed,msrfqft,pcatlrsr --max-size 3 \
        --combine geo-range --floor 0.01 --bs-weight 0.25 --out docs/ensemble/

Prints per-scene tables and writes ``ensemble_loso.md`` and ``ensemble_loso.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import hadcore  # noqa: E402
from hadcore.detectors.ensemble import combine_scores  # noqa: E402
from hadcore.metrics import evaluate, roc_auc  # noqa: E402

SCENES = ["abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1", "abu-urban-2",
          "sandiego-lren", "hydice-162", "pavia-100"]


def scores(det, scene, data, cache):
    f = cache / det / f"{scene}.npy"
    if f.exists():
        return np.load(f), float((f.with_suffix(".sec")).read_text()) if f.with_suffix(".sec").exists() else np.nan
    z = np.load(data / f"{scene}.npz")
    t = time.perf_counter()
    s = hadcore.get_detector(det).detect(z["cube"])
    dt = time.perf_counter() - t
    f.parent.mkdir(parents=True, exist_ok=True)
    np.save(f, s)
    f.with_suffix(".sec").write_text(f"{dt:.2f}")
    return s, dt


HOWS = ("mean-range", "geo-range", "mean-rank")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", default="rx,lrx,crd,glrt2s,lsmad,kifd,aed")
    ap.add_argument("--max-size", type=int, default=4)
    ap.add_argument("--combine", default="mean-range", choices=["mean-range", "geo-range", "mean-rank", "fisher", "median-rank"])
    ap.add_argument("--floor", type=float, default=0.01, help="geo-range's floor")
    ap.add_argument("--penalty", type=float, default=0.5, help="weight of the worst shortfall against RX")
    ap.add_argument("--bs-weight", type=float, default=0.0,
                    help="weight of the mean AUC_BS (background suppression) in the criterion")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--cache", default="/work/bench_data/scores")
    ap.add_argument("--out", default="bench_out")
    a = ap.parse_args(argv)

    def combine(maps, mask, how):
        return combine_scores(maps, mask, how, a.floor)

    data, cache, out = Path(a.data), Path(a.cache), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    members = [m.strip() for m in a.members.split(",") if m.strip()]
    gts, maps, secs = {}, {}, {}
    for sc in SCENES:
        with np.load(data / f"{sc}.npz") as z:
            gts[sc] = z["gt"].astype(np.uint8)
    for det in ["rx"] + [m for m in members if m != "rx"]:
        for sc in SCENES:
            maps[det, sc], secs[det, sc] = scores(det, sc, data, cache)
    masks = {sc: np.isfinite(maps["rx", sc]) for sc in SCENES}
    single = {(d, sc): roc_auc(maps[d, sc], gts[sc]) for d in members for sc in SCENES}
    rx = {sc: roc_auc(maps["rx", sc], gts[sc]) for sc in SCENES}
    combos = [c for k in range(1, a.max_size + 1) for c in itertools.combinations(members, k)]
    auc, abs_ = {}, {}
    for c in combos:
        for sc in SCENES:
            s = combine([maps[d, sc] for d in c], masks[sc], a.combine) if len(c) > 1 else maps[c[0], sc]
            if a.bs_weight:
                ev = evaluate(s, gts[sc])
                auc[c, sc], abs_[c, sc] = ev["auc_pd_pf"], ev["auc_bs"]
            else:
                auc[c, sc] = roc_auc(s, gts[sc])

    def crit(c, scenes):
        v = np.array([auc[c, s] for s in scenes])
        short = max(0.0, max(rx[s] - auc[c, s] for s in scenes))
        bs_term = a.bs_weight * np.mean([abs_[c, s] for s in scenes]) if a.bs_weight else 0.0
        return v.mean() - a.penalty * short + bs_term

    loso = {}
    for held in SCENES:
        rest = [s for s in SCENES if s != held]
        best = max(combos, key=lambda c: crit(c, rest))
        loso[held] = (best, auc[best, held])
    chosen = max(combos, key=lambda c: crit(c, SCENES))
    # AUC_BS of the chosen ensemble and of every single member
    bs = {}
    for d in members + ["ensemble"]:
        vals = []
        for sc in SCENES:
            s = combine([maps[m, sc] for m in chosen], masks[sc], a.combine) if d == "ensemble" else maps[d, sc]
            vals.append(evaluate(s, gts[sc])["auc_bs"])
        bs[d] = float(np.mean(vals))
    lines = [f"# Ensemble by leave-one-scene-out ({a.combine}, up to {a.max_size} of {', '.join(members)}; "
             f"criterion: mean AUC - {a.penalty} x worst shortfall against RX"
             + (f" + {a.bs_weight} x mean AUC_BS" if a.bs_weight else "")
             + (f"; floor {a.floor}" if a.combine == "geo-range" else "") + ")", "",
             "| held-out scene | RX | members chosen on the other eight | AUC(PD,PF) held out | vs RX |",
             "|---|---|---|---|---|"]
    for sc in SCENES:
        c, v = loso[sc]
        lines.append(f"| {sc} | {rx[sc]:.4f} | {'+'.join(c)} | {v:.4f} | {v - rx[sc]:+.4f} |")
    lm = np.mean([loso[s][1] for s in SCENES])
    worst = min(loso[s][1] - rx[s] for s in SCENES)
    lines += ["", f"Leave-one-scene-out mean AUC(PD,PF): **{lm:.4f}** (RX {np.mean(list(rx.values())):.4f}); "
              f"worst difference to RX: {worst:+.4f}.", "",
              f"Chosen on all nine (the default): **{'+'.join(chosen)}**, in-sample mean "
              f"{np.mean([auc[chosen, s] for s in SCENES]):.4f}.", "",
              "| detector | mean AUC(PD,PF) | worst vs RX | mean AUC_BS | seconds (nine scenes) |", "|---|---|---|---|---|"]
    for d in members:
        v = [single[d, s] for s in SCENES]
        lines.append(f"| {d} | {np.mean(v):.4f} | {min(single[d, s] - rx[s] for s in SCENES):+.4f} | {bs[d]:.4f} | "
                     f"{np.nansum([secs[d, s] for s in SCENES]):.1f} |")
    ev = [auc[chosen, s] for s in SCENES]
    lines.append(f"| ensemble ({'+'.join(chosen)}) | {np.mean(ev):.4f} | "
                 f"{min(auc[chosen, s] - rx[s] for s in SCENES):+.4f} | {bs['ensemble']:.4f} | "
                 f"{np.nansum([secs[d, s] for d in chosen for s in SCENES]):.1f} |")
    # one member inverted (its scores negated), as AED is on one held-out 64-band scene: how each way of
    # combining the chosen members survives it
    lines += ["", "One member inverted (its scores negated; AED scores 0.18 on one held-out scene): mean and worst "
              "AUC(PD,PF) of the chosen members over the nine scenes.", "",
              "| inverted member | " + " | ".join(HOWS) + " |", "|---|" + "---|" * len(HOWS)]
    for inv in chosen:
        cells = []
        for how in HOWS:
            v = [roc_auc(combine([-maps[m, sc] if m == inv else maps[m, sc] for m in chosen], masks[sc], how),
                         gts[sc]) for sc in SCENES]
            cells.append(f"{np.mean(v):.4f} (worst {min(v):.4f})")
        lines.append(f"| {inv} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "ensemble_loso.md").write_text(text)
    (out / "ensemble_loso.json").write_text(json.dumps({
        "loso": {s: {"members": list(loso[s][0]), "auc": loso[s][1], "rx": rx[s]} for s in SCENES},
        "loso_mean": lm, "chosen": list(chosen), "auc_bs": bs, "combine": a.combine, "floor": a.floor,
        "bs_weight": a.bs_weight, "penalty": a.penalty,
        "single": {d: {s: single[d, s] for s in SCENES} for d in members}}, indent=2))


if __name__ == "__main__":
    main()
