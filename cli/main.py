"""The ``hadcore`` command line.

Every detector command is generated from the registry and the detectors' parameter declarations. User
errors (a missing file, a bad parameter, an existing output, ...) print one line on stderr and exit with
code 2; outputs are written under a temporary name and renamed, and kept unless ``--overwrite``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

import hadcore
from hadcore.errors import HadcoreError, ParameterError

from .options import (
    ProgressBar,
    build_detector,
    connectivity_opt,
    json_opt,
    min_size_opt,
    overwrite_opt,
    param_opt,
    parse_params,
    parse_range,
    quiet_opt,
    say,
    seed_opt,
    threshold_opt,
)

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


# ------------------------------------------------------------------------------------------------ list/info
@main.command("list")
@json_opt
def list_cmd(as_json):
    """List the registered detectors."""
    rows = []
    for name in hadcore.list_detectors():
        cls = hadcore.get_detector_class(name)
        rows.append({"name": name, "family": cls.family, "trains": cls.trains, "title": cls.title,
                     "summary": cls.summary})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['family']:<14}  {r['title']}")


@main.command("info")
@click.argument("name")
@json_opt
def info_cmd(name, as_json):
    """Describe detector NAME: summary, reference, parameters."""
    cls = hadcore.get_detector_class(name)
    d = cls.describe()
    if as_json:
        click.echo(json.dumps(d, indent=2, default=str))
        return
    click.echo(f"{d['name']} - {d['title']} ({d['family']}{', trains' if d['trains'] else ''})")
    click.echo(d["summary"])
    click.echo(f"Reference: {d['reference']}")
    ctx = d["context"]
    need = "whole scene" if ctx["whole_scene"] else "whole-image statistics" if ctx["global_stats"] else \
        f"halo of {ctx['halo']} pixels"
    click.echo(f"Context: {need}")
    click.echo("Parameters (-p NAME=VALUE):")
    for p in d["params"]:
        click.echo(f"  {p['name']:<16} default {p['default']!r:<12} {p['allowed']}")
        click.echo(f"  {'':<16} {p['help']}")


# ------------------------------------------------------------------------------------------------ detect
@main.command("detect")
@click.argument("name")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Score GeoTIFF (one input).")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Folder for outputs (any number of inputs).")
@param_opt
@click.option("--bands", default=None, metavar="SPEC", help="1-based bands to use, e.g. '1-50,60'.")
@click.option("--wavelengths", default=None, metavar="LO:HI", help="Use bands whose wavelength lies in LO..HI.")
@click.option("--bad-bands", default=None, metavar="SPEC", help="1-based bands to drop.")
@click.option("--vector", default=None, metavar="OUT", help="Detections: .gpkg, .geojson or .shp (one input).")
@click.option("--vector-format", type=click.Choice(["gpkg", "geojson", "shp"]), default=None,
              help="With --out-dir: also write detections in this format.")
@threshold_opt
@connectivity_opt
@min_size_opt
@click.option("--normalize", is_flag=True, help="Scale scores to 0-1 in the GeoTIFF.")
@click.option("--gt", "gt_path", default=None, type=click.Path(dir_okay=False),
              help="Ground truth raster: print the metrics (default: the input's own, if any).")
@seed_opt
@overwrite_opt
@quiet_opt
def detect_cmd(name, inputs, output, out_dir, params, bands, wavelengths, bad_bands, vector, vector_format,
               threshold, connectivity, min_size, normalize, gt_path, seed, overwrite, quiet):
    """Run detector NAME on INPUT raster(s); write the score GeoTIFF and, optionally, detection polygons.

    Examples:

      hadcore detect rx scene.tif -o rx.tif --vector rx.gpkg --threshold fpr:1e-3

      hadcore detect lrx *.tif --out-dir out/ -p inner=3 -p outer=17 --vector-format gpkg
    """
    from hadcore.io import check_output, read_ground_truth, read_raster, write_scores
    from hadcore.metrics import evaluate, format_metrics
    from hadcore.threshold import parse_threshold

    det = build_detector(name, params, seed)
    if parse_threshold(threshold).kind == "fpr" and det.name not in ("rx", "lrx"):
        raise ParameterError(f"threshold 'fpr' assumes chi-square RX scores; {det.name!r} scores are not")
    if (output is None) == (out_dir is None):
        raise click.UsageError("give exactly one of -o/--output (one input) or --out-dir")
    if output is not None and len(inputs) != 1:
        raise click.UsageError(f"-o takes one input, got {len(inputs)}; use --out-dir for several")
    if vector and out_dir:
        raise click.UsageError("--vector names one file; with --out-dir use --vector-format")
    if gt_path and len(inputs) != 1:
        raise click.UsageError("--gt goes with a single input")
    wl_range = parse_range(wavelengths)
    jobs = []
    for inp in inputs:
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            stem = Path(inp).stem
            score_out = Path(out_dir) / f"{stem}_{det.name}.tif"
            vec_out = Path(out_dir) / f"{stem}_{det.name}.{vector_format}" if vector_format else None
        else:
            score_out, vec_out = Path(output), Path(vector) if vector else None
        if not Path(inp).exists():
            raise hadcore.FileError(f"input not found: {inp}")
        check_output(score_out, overwrite)  # fail before computing anything
        if vec_out is not None:
            check_output(vec_out, overwrite)
            from hadcore.vectorize import VECTOR_DRIVERS

            if vec_out.suffix.lower() not in VECTOR_DRIVERS:
                raise hadcore.FileError(f"unknown vector format {vec_out.suffix!r}; use .gpkg, .geojson or .shp")
        jobs.append((inp, score_out, vec_out))

    results = []
    for inp, score_out, vec_out in jobs:
        raster = read_raster(inp, bands=bands, wavelength_range=wl_range, bad_bands=bad_bands)
        if raster.cube.shape[2] < det.min_bands:
            raise hadcore.InputError(f"{det.name}: needs at least {det.min_bands} bands, got "
                                     f"{raster.cube.shape[2]} in {Path(inp).name}")
        with ProgressBar(f"{det.name} {Path(inp).name}", quiet) as bar:
            scores = det.detect(raster.cube, raster.mask, progress=bar)
        n_bands = raster.cube.shape[2]
        write_scores(score_out, scores, crs=raster.crs, transform=raster.transform, input_nodata=raster.nodata,
                     detector=det.name, params=det.get_params(), n_bands=n_bands, normalize=normalize,
                     overwrite=overwrite, extra_tags={"source": Path(inp).name})
        say(quiet, f"wrote {score_out}")
        record = {"input": str(inp), "scores": str(score_out)}
        if vec_out is not None:
            from hadcore.vectorize import detections_to_frame, write_detections

            frame = detections_to_frame(scores, threshold, transform=raster.transform, crs=raster.crs,
                                        connectivity=int(connectivity), min_size=min_size, n_bands=n_bands)
            write_detections(frame, vec_out, overwrite=overwrite)
            say(quiet, f"wrote {vec_out}: {len(frame)} detection(s)"
                + ("" if len(frame) else f" - no pixel reached the threshold {threshold}"))
            record.update(vector=str(vec_out), detections=len(frame))
        gt = read_ground_truth(gt_path, scores.shape) if gt_path else raster.gt
        if gt is not None:
            m = evaluate(scores, gt, mask=raster.mask)
            click.echo(f"{Path(inp).name}: {det.name} AUC(PD,PF) = {m['auc_pd_pf']:.4f}   ({format_metrics(m)})")
            record["metrics"] = m
        results.append(record)
    return results


# ------------------------------------------------------------------------------------------------ evaluate
@main.command("evaluate")
@click.argument("scores", type=click.Path(dir_okay=False))
@click.argument("gt", type=click.Path(dir_okay=False))
@json_opt
def evaluate_cmd(scores, gt, as_json):
    """Metrics of a SCORES layer against a ground-truth raster GT (1 = anomaly)."""
    from hadcore.io import read_ground_truth, read_scores
    from hadcore.metrics import METRIC_NAMES, evaluate

    s, _, tags = read_scores(scores)
    g = read_ground_truth(gt, s.shape)
    m = evaluate(s, g)
    if as_json:
        click.echo(json.dumps({"scores": str(scores), "gt": str(gt), "detector": tags.get("detector"), **m},
                              indent=2))
        return
    labels = {"auc_pd_pf": "AUC(PD,PF)", "auc_pd_tau": "AUC(PD,tau)", "auc_pf_tau": "AUC(PF,tau)",
              "auc_bs": "AUC_BS", "snpr": "AUC_SNPR", "snpr_db": "AUC_SNPR (dB)"}
    for k in METRIC_NAMES:
        click.echo(f"{labels[k]:<14} {m[k]:.4f}")


# ------------------------------------------------------------------------------------------------ vectorize
@main.command("vectorize")
@click.argument("scores", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Detections: .gpkg, .geojson or .shp.")
@threshold_opt
@connectivity_opt
@min_size_opt
@click.option("--n-bands", type=click.IntRange(min=1), default=None,
              help="Band count of the RX input for fpr: (default: read from the layer's tags).")
@overwrite_opt
@quiet_opt
def vectorize_cmd(scores, output, threshold, connectivity, min_size, n_bands, overwrite, quiet):
    """Polygons of the detections in a SCORES layer above a threshold."""
    from hadcore.io import check_output, read_scores
    from hadcore.threshold import parse_threshold
    from hadcore.vectorize import detections_to_frame, write_detections

    spec = parse_threshold(threshold)
    check_output(output, overwrite)
    s, georef, tags = read_scores(scores)
    if spec.kind == "fpr":
        det = tags.get("detector", "")
        if det and det not in ("rx", "lrx"):
            raise ParameterError(f"threshold 'fpr' assumes chi-square RX scores; this layer was made by {det!r}")
        if tags.get("normalized") == "true":
            raise ParameterError("threshold 'fpr' needs raw RX scores; this layer was scaled to 0-1")
        n_bands = n_bands or (int(tags["bands"]) if "bands" in tags else None)
    frame = detections_to_frame(s, spec, transform=georef["transform"], crs=georef["crs"],
                                connectivity=int(connectivity), min_size=min_size, n_bands=n_bands)
    write_detections(frame, output, overwrite=overwrite)
    say(quiet, f"wrote {output}: {len(frame)} detection(s)"
        + ("" if len(frame) else f" - no pixel reached the threshold {threshold}"))


from .benchmark import benchmark  # noqa: E402  (commands living in their own modules)
from .synth import synth  # noqa: E402
from .train import train  # noqa: E402

main.add_command(benchmark)
main.add_command(synth)
main.add_command(train)


def run(argv=None):
    """Entry point that never shows a traceback for user errors (also used by tests)."""
    return main.main(args=argv, prog_name="hadcore", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
