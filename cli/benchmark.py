"""``hadcore benchmark``: run registry detectors over scenes with ground truth; write CSV, Markdown, PNGs."""

from __future__ import annotations

import sys

import click

from hadcore.errors import ParameterError

from .options import quiet_opt


@click.command("benchmark")
@click.option("--detectors", "-d", "detectors", required=True,
              help="Comma-separated registry names, e.g. rx,lrx,aed ('all' = every anomaly detector; target "
                   "detectors by name).")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of scenes: .npz/.mat with ground truth, or GeoTIFF with a sibling <stem>_gt.tif.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder (benchmark.csv, benchmark.md, bench_*.png).")
@click.option("-p", "--param", "params", multiple=True, metavar="DET.KEY=VALUE",
              help="Detector parameter, e.g. -p lrx.inner=5 (repeatable).")
@click.option("--scenes", default=None, help="Comma-separated scene names (file stems) to keep.")
@click.option("--no-figures", is_flag=True, help="Write the tables only.")
@quiet_opt
def benchmark(detectors, data_dir, out_dir, params, scenes, no_figures, quiet):
    """Benchmark detectors over every scene of --data: AUC(PD,PF), AUC(PD,tau), AUC(PF,tau), AUC_BS, SNPR
    and seconds per scene x detector, with ROC, 3-D ROC, box-plot and score-map figures."""
    from hadcore import benchmark as hb
    from hadcore.registry import list_detectors

    names = [d.strip().lower() for d in detectors.split(",") if d.strip()]
    if names == ["all"]:  # the anomaly detectors: a target detector needs its target (name it with -p)
        import hadcore

        names = [d for d in list_detectors() if hadcore.get_detector_class(d).family != "target"]
    det_params = hb.parse_detector_params(params, names)
    if not no_figures:
        from hadcore.plots import have_matplotlib

        if not have_matplotlib():  # the tables still come; say how to get the figures
            click.echo("note: no figures: matplotlib is not installed (pip install 'hadcore[plots]')", err=True)
            no_figures = True
    paths = hb.find_scenes(data_dir)
    if scenes:
        keep = {s.strip() for s in scenes.split(",") if s.strip()}
        missing = keep - {p.stem for p in paths}
        if missing:
            raise ParameterError(f"--scenes: no scene named {sorted(missing)[0]!r} in {data_dir}")
        paths = [p for p in paths if p.stem in keep]

    bar = None
    inner = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(paths) * len(names), desc="benchmark", unit="run", file=sys.stderr,
                   position=0)
        inner = tqdm(total=100, desc="", unit="%", file=sys.stderr, position=1, leave=False,
                     bar_format="{desc} {percentage:3.0f}%|{bar}|")
        state = {"k": -1}

        def on_progress(k, n, scene, det, frac):
            if k != state["k"]:
                if state["k"] >= 0:
                    bar.update(1)
                state["k"] = k
                inner.set_description_str(f"{det} on {scene}")
            inner.n = int(round(100 * frac))
            inner.refresh()
    else:
        on_progress = None

    result = hb.run_benchmark(names, paths, det_params, on_progress=on_progress,
                              keep_scores=not no_figures)
    if bar is not None:
        bar.update(bar.total - bar.n)
        inner.close()
        bar.close()
    written = hb.write_outputs(result, out_dir, figures=not no_figures)

    for r in result.rows:
        if r["error"]:
            click.echo(f"warning: {r['detector']} on {r['scene']}: {r['error']}", err=True)
    if not quiet:
        click.echo(f"{'detector':12s} {'mean AUC(PD,PF)':>16s} {'mean s':>8s}", err=True)
        for d in result.detectors:
            secs = [r["seconds"] for r in result.rows if r["detector"] == d and r["seconds"] is not None]
            mean_s = sum(secs) / len(secs) if secs else float("nan")
            click.echo(f"{d:12s} {result.mean(d, 'auc_pd_pf'):16.4f} {mean_s:8.2f}", err=True)
        click.echo(f"wrote {written['csv']} and {written['md']}", err=True)
