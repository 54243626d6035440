"""``hadcore evaluate`` and ``hadcore vectorize``: what one does with a score layer afterwards (metrics against
ground truth, detection polygons)."""

from __future__ import annotations

import json

import click

from .options import (
    connectivity_opt,
    json_opt,
    min_size_opt,
    overwrite_opt,
    quiet_opt,
    say,
    threshold_opt,
)

__all__ = ["evaluate_cmd", "vectorize_cmd"]


@click.command("evaluate")
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
@click.command("vectorize")
@click.argument("scores", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Detections: .gpkg, .geojson or .shp.")
@threshold_opt
@connectivity_opt
@min_size_opt
@click.option("--n-bands", type=click.IntRange(min=1), default=None,
              help="Band count of the detector's input for fpr: on chi-square (RX) scores (default: read from "
                   "the layer's tags).")
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
        from hadcore.tags import check_fpr, read_score_tags
        from hadcore.threshold import ThresholdSpec

        # the scores' null law from the layer's tags (this schema or the QGIS plugin's earlier one); its
        # (1 - R) quantile is the threshold value
        law = check_fpr(read_score_tags(tags), n_bands)
        spec = ThresholdSpec("value", law.isf(spec.value))
    frame = detections_to_frame(s, spec, transform=georef["transform"], crs=georef["crs"],
                                connectivity=int(connectivity), min_size=min_size, n_bands=n_bands)
    write_detections(frame, output, overwrite=overwrite)
    say(quiet, f"wrote {output}: {len(frame)} detection(s)"
        + ("" if len(frame) else f" - no pixel reached the threshold {threshold}"))
