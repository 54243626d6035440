"""Options shared by several hadcore commands, each defined once."""

from __future__ import annotations

import sys
from typing import Dict, Optional, Tuple

import click

import hadcore
from hadcore.errors import ParameterError
from hadcore.threshold import THRESHOLD_HELP

overwrite_opt = click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
json_opt = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
quiet_opt = click.option("-q", "--quiet", is_flag=True, help="No progress bar or messages on stderr.")
param_opt = click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
    help="Detector parameter (repeatable); see `hadcore info NAME`.",
)
seed_opt = click.option("--seed", type=int, default=None, help="Random seed for detectors that take one.")
threshold_opt = click.option(
    "--threshold", "threshold", default="percentile:99.5", show_default=True, metavar="SPEC", help=THRESHOLD_HELP
)
connectivity_opt = click.option(
    "--connectivity", type=click.Choice(["4", "8"]), default="8", show_default=True,
    help="Neighbours joining detection pixels into one polygon.",
)
min_size_opt = click.option(
    "--min-size", type=click.IntRange(min=1), default=1, show_default=True, help="Smallest detection, pixels."
)


def parse_params(items) -> Dict[str, str]:
    """``("k=v", ...)`` -> dict; values stay strings (the detector's declaration parses them)."""
    out: Dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="'-p'")
        out[key.strip()] = value.strip()
    return out


def parse_range(text: Optional[str]) -> Optional[Tuple[float, float]]:
    if text is None:
        return None
    lo, sep, hi = text.replace(",", ":").partition(":")
    try:
        a, b = float(lo), float(hi)
    except ValueError:
        raise click.BadParameter(f"expected LO:HI, got {text!r}", param_hint="'--wavelengths'") from None
    if not sep or b < a:
        raise click.BadParameter(f"expected LO:HI with LO <= HI, got {text!r}", param_hint="'--wavelengths'")
    return a, b


class ProgressBar:
    """A tqdm bar on stderr fed by hadcore's fraction callbacks; off with -q or when stderr is not a terminal."""

    def __init__(self, desc: str, quiet: bool):
        self._bar = None
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=1000, desc=desc, file=sys.stderr, leave=False, disable=None,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def __call__(self, fraction: float, message=None) -> None:
        if self._bar is not None:
            target = int(round(1000 * fraction))
            if target > self._bar.n:
                self._bar.update(target - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def say(quiet: bool, message: str) -> None:
    """A message for the user on stderr (results go to stdout)."""
    if not quiet:
        click.echo(message, err=True)


def build_detector(name, params, seed):
    """The detector NAME configured from ``-p`` items and ``--seed`` (checked against its declaration)."""
    cls = hadcore.get_detector_class(name)
    kwargs = parse_params(params)
    if seed is not None:
        if "seed" not in {p.name for p in cls.params}:
            raise ParameterError(f"detector {cls.name!r} is deterministic and takes no seed")
        if "seed" in kwargs and int(float(kwargs["seed"])) != seed:
            raise ParameterError(f"--seed {seed} contradicts -p seed={kwargs['seed']}")
        kwargs["seed"] = seed
    return cls(**kwargs)


def refuse_input_as_output(out, inputs) -> None:
    """An output that names one of ``inputs`` (paths; the same file under another name too) is refused with one
    line, --overwrite or not."""
    import os
    from pathlib import Path

    from hadcore.errors import FileError

    out = Path(out)
    for cand in inputs:
        cand = Path(cand)
        same = out.resolve() == cand.resolve()
        if not same and out.exists() and cand.exists():
            same = os.path.samefile(out, cand)
        if same:
            raise FileError(f"refusing to write {out} over the input {cand}; choose another output name")
