"""STAD ablations (paper Table III) over the shared scenes: AUC(PD,PF) per scene and mean.

    python bench/stad_ablations.py [--weights PATH] [--data ../shared/data] [--weights-for SCENES=PATH ...]

``--weights-for a,b,c=PATH`` scores scenes a, b, c with PATH (cross-validation: weights trained without them).

Columns: global RX on the full cube, global RX on STAD's network input (the resampled, standardised cube:
"the same input"), then the five ``mode`` values of the ``stad`` detector. Uses the shipped weights unless
--weights is given. Ground truth is read here only to score.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCENES = [
    "abu-airport-1", "abu-airport-2", "abu-beach-1", "abu-beach-2", "abu-urban-1",
    "abu-urban-2", "sandiego-lren", "hydice-162", "pavia-100",
]
MODES = ("recon", "saliency", "mask", "recon_mask", "full")


def rx_on_input(cube, weights):
    """Global RX on STAD's network input (same resampling and scaling as the detector)."""
    from hadcore.base import prepare_cube
    from hadcore.detectors.stad import _load_student, prepare_input
    from hadcore.linalg import inv_psd, mahalanobis_sq, mean_cov

    cfg, _ = _load_student(weights, "cpu")
    X, valid = prepare_cube(cube)
    Y = prepare_input(X, valid, int(cfg["bands"]))
    pix = Y[valid].astype(np.float64)
    mu, cov = mean_cov(pix)
    s = np.full(valid.shape, np.nan)
    s[valid] = mahalanobis_sq(pix, mu, inv_psd(cov))
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="weights file (default: the shipped one)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--weights-for", action="append", default=[], metavar="SCENES=PATH",
                    help="use PATH for these comma-separated scenes (held-out folds)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    import hadcore
    from hadcore.detectors.stad import DEFAULT_WEIGHTS
    from hadcore.metrics import roc_auc

    default = args.weights or str(DEFAULT_WEIGHTS)
    per_scene = {}
    for item in args.weights_for:
        scenes, _, path = item.partition("=")
        per_scene.update({sc.strip(): path for sc in scenes.split(",")})
    weights = default
    cols = ["RX(full)", "RX(input)"] + list(MODES)
    print(f"weights: {default}" + "".join(f"; {k}: {v}" for k, v in per_scene.items()))
    print(f"{'scene':16s}" + "".join(f"{c:>12s}" for c in cols))
    table = []
    for name in SCENES:
        with np.load(Path(args.data) / f"{name}.npz") as z:
            cube, gt = z["cube"], z["gt"]
        weights = per_scene.get(name, default)
        row = [roc_auc(hadcore.get_detector("rx").detect(cube), gt), roc_auc(rx_on_input(cube, weights), gt)]
        for mode in MODES:
            det = hadcore.get_detector("stad", mode=mode, weights=weights, device="cpu")
            row.append(roc_auc(det.detect(cube), gt))
        table.append(row)
        print(f"{name:16s}" + "".join(f"{v:12.4f}" for v in row))
        sys.stdout.flush()
    mean = np.mean(table, axis=0)
    print(f"{'mean':16s}" + "".join(f"{v:12.4f}" for v in mean))


if __name__ == "__main__":
    main()
