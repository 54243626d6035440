"""``hadcore train NAME --data FILES_OR_DIR... --out weights.pt``: train a detector that learns weights.

Generic: builds the detector from its declaration and calls ``det.train(rasters, out, progress=..., resume=...)``.
Detectors whose class declares ``trains = True`` and has a ``train`` method support it; others get a one-line
error. Only cubes are read (``read_raster(path, read_gt=False)``), never ground truth.
"""

from __future__ import annotations

from pathlib import Path

import click

import hadcore

from .options import ProgressBar, build_detector, overwrite_opt, param_opt, quiet_opt, say, seed_opt

__all__ = ["train"]

#: raster files picked up when a folder is given to --data
DATA_SUFFIXES = (".npz", ".mat", ".tif", ".tiff", ".img", ".dat", ".bsq", ".bil", ".bip")


def _data_files(paths):
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in DATA_SUFFIXES
                           and not f.stem.endswith("_gt"))
            if not found:
                raise hadcore.FileError(f"no raster ({', '.join(DATA_SUFFIXES)}) in folder {p}")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise hadcore.FileError(f"no such file or folder: {p}")
    return files


@click.command("train")
@click.argument("name")
@click.option("--data", "data", multiple=True, required=True, metavar="FILES_OR_DIR",
              help="Training rasters, or folders of them (repeatable). Ground truth is never read.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Weights file to write.")
@param_opt
@seed_opt
@click.option("--resume", is_flag=True, help="Continue from the checkpoint <out>.ckpt if it exists.")
@overwrite_opt
@quiet_opt
def train(name, data, out, params, seed, resume, overwrite, quiet):
    """Train detector NAME on the cubes in --data and write its weights to --out."""
    from hadcore.io import check_output, read_raster

    cls = hadcore.get_detector_class(name)
    if not getattr(cls, "trains", False) or not callable(getattr(cls, "train", None)):
        raise hadcore.ParameterError(f"detector {cls.name!r} does not train (it has no weights to learn)")
    det = build_detector(name, params, seed)
    check_output(out, overwrite)
    files = _data_files(data)
    rasters = [read_raster(f, read_gt=False) for f in files]
    say(quiet, f"training {cls.name} on {len(rasters)} raster(s): {', '.join(f.name for f in files)}")
    with ProgressBar(f"train {cls.name}", quiet) as bar:
        meta = det.train(rasters, str(out), progress=bar, resume=resume)
    secs = meta.get("train_seconds") if isinstance(meta, dict) else None
    say(quiet, f"wrote {out}" + (f" ({secs} s)" if secs is not None else ""))
