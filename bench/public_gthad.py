"""Run the authors' public GT-HAD code (github.com/jeline0110/GT-HAD, dnnmethods/GT-HAD) on CPU, on a shared scene.

    python bench/public_gthad.py --repo PATH_TO_GT-HAD_CHECKOUT [--scenes abu-airport-1] [--threads 2]

Needs torch, scipy, scikit-learn and the `progress` package (the public code imports it).

The public code has no licence file, so nothing of it is copied into hadcore: this script copies its five
files from a checkout you supply (a work tree, or a bare git directory read with ``git show``) into a
temporary folder and makes only the substitutions that take it from CUDA to CPU (tensor types, ``.cuda()``
calls, the data and result folders, the scene named on the command line). Its settings are untouched: 150
epochs, blocks of 9 x 9 with stride 3, embedding 64, Adam 1e-3, a content matching every 25 epochs, the 3 x 3
x 5 average pooling of the squared error, the whole cube min-max scaled to [0, 1], and its per-scene seed
(``--seed`` replaces that seed).

The shared scenes abu-airport-1, abu-airport-2 and abu-beach-1 are identical (cube and ground truth) to the
repository's ``data/los-angeles-1.mat``, ``los-angeles-2.mat`` and ``cat-island.mat``; the script writes our
cube as the .mat the code reads and scores its saved map with hadcore's exact AUC. One JSON line per scene is
appended to ``--out`` (default ``../bench_data/public_gthad.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HADCORE_DATA", ROOT.parent / "shared" / "data"))
FILES = ("block.py", "data.py", "main.py", "net.py", "utils.py")
#: shared scene -> the public repository's name for the same cube (its seed_dict is keyed by these)
PUBLIC_NAME = {"abu-airport-1": "los-angeles-1", "abu-airport-2": "los-angeles-2", "abu-beach-1": "cat-island"}
#: (file, old, new): CUDA -> CPU, and the folders and scene list the script drives
SUBSTITUTIONS = (
    ("main.py", "dtype = torch.cuda.FloatTensor", "dtype = torch.FloatTensor"),
    ("main.py", "    net = net.cuda()", "    net = net"),
    ("main.py", "torch.cuda.LongTensor", "torch.LongTensor"),
    ("main.py", "batch_data['index'].cuda()", "batch_data['index']"),
    ("main.py", "data['index'].cuda()", "data['index']"),
    ("main.py", "data_dir = '../../data/'", "data_dir = './data/'"),
    ("main.py", "save_dir = '../../results/'", "save_dir = './results/'"),
    ("main.py", "    for file in ['los-angeles-1']: ",
     "    import sys\n    torch.set_num_threads(int(os.environ['THREADS']))\n    for file in sys.argv[1:]: "),
    ("net.py", "torch.eye(self.N).cuda()", "torch.eye(self.N)"),
    # the per-scene seed of its seed_dict, unless --seed names another
    ("main.py", "    seed = seed_dict[file]", "    seed = int(os.environ.get('SEED') or seed_dict[file])"),
)


def read_public(repo: Path, name: str) -> str:
    path = repo / "dnnmethods" / "GT-HAD" / name
    if path.exists():
        return path.read_text()
    return subprocess.run(["git", "--git-dir", str(repo), "show", f"HEAD:dnnmethods/GT-HAD/{name}"],
                          check=True, capture_output=True, text=True).stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="a GT-HAD checkout (work tree or bare git directory)")
    ap.add_argument("--scenes", default="abu-airport-1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None, help="instead of the code's per-scene seed")
    ap.add_argument("--out", default=str(ROOT.parent / "bench_data" / "public_gthad.jsonl"))
    a = ap.parse_args(argv)
    import scipy.io as sio

    sys.path.insert(0, str(ROOT))
    from hadcore.metrics import roc_auc

    repo = Path(a.repo)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = {f: read_public(repo, f) for f in FILES}
        for f, old, new in SUBSTITUTIONS:
            if old not in src[f]:
                raise SystemExit(f"{f}: expected text not found (another version of the code?): {old!r}")
            src[f] = src[f].replace(old, new)
        for f, text in src.items():
            (work / f).write_text(text)
        (work / "data").mkdir()
        for scene in a.scenes.split(","):
            pub = PUBLIC_NAME[scene]
            with np.load(DATA / f"{scene}.npz") as z:
                cube, gt = z["cube"], z["gt"]
            sio.savemat(work / "data" / f"{pub}.mat", {"data": cube.astype(np.float64), "map": gt.astype(np.float64)})
            t0 = time.perf_counter()
            run = subprocess.run([sys.executable, "-u", "main.py", pub], cwd=work, capture_output=True, text=True,
                                 env={**os.environ, "THREADS": str(a.threads),
                                      "SEED": "" if a.seed is None else str(a.seed)})
            wall = time.perf_counter() - t0
            if run.returncode:
                raise SystemExit(f"{scene}: the public code failed:\n{run.stderr[-2000:]}")
            score = sio.loadmat(work / "results" / pub / "GT-HAD_map.mat")["show"]
            row = {"scene": scene, "public_name": pub, "seed": a.seed if a.seed is not None else "seed_dict",
                   "auc": float(roc_auc(score, gt)), "wall_s": round(wall, 1),
                   "threads": a.threads, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "printed": [ln for ln in run.stdout.splitlines() if ln.startswith(("Auc", "Runtime"))]}
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            with open(a.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
