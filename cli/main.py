"""The ``hadcore`` command line.

Every detector command is generated from the registry and the detectors' parameter declarations. User
errors (a missing file, a bad parameter, an existing output, ...) print one line on stderr and exit with
code 2; outputs are written under a temporary name and renamed, and kept unless ``--overwrite``.
"""

from __future__ import annotations

import sys

import click

import hadcore
from hadcore.errors import HadcoreError

EXIT_USER_ERROR = 2


class HadcoreGroup(click.Group):
    """Turns user errors into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HadcoreError as exc:
            click.echo(f"hadcore: error: {exc}", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:  # pragma: no cover - interactive
            click.echo("hadcore: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=HadcoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(hadcore.__version__, prog_name="hadcore")
def main():
    """hadcore: hyperspectral anomaly detection, from rasters to georeferenced map layers."""


# the commands, one module per group
from .benchmark import benchmark  # noqa: E402
from .catalog import info_cmd, inspect_cmd, list_cmd  # noqa: E402
from .detect import detect_cmd  # noqa: E402
from .layers import evaluate_cmd, vectorize_cmd  # noqa: E402
from .spectra import spectra_cmd  # noqa: E402
from .synth import synth  # noqa: E402
from .train import train  # noqa: E402

for _cmd in (list_cmd, info_cmd, inspect_cmd, detect_cmd, evaluate_cmd, vectorize_cmd, spectra_cmd, benchmark,
             synth, train):
    main.add_command(_cmd)


def run(argv=None):
    """Entry point that never shows a traceback for user errors (also used by tests)."""
    return main.main(args=argv, prog_name="hadcore", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
