"""``hadcore detect NAME INPUT...``: score layers (and detection polygons) of one or many scenes, in this
process or on Dask, through :func:`hadcore.engine.run_scene`."""

from __future__ import annotations

from pathlib import Path

import click

import hadcore
from hadcore.errors import ParameterError

from .options import (
    ProgressBar,
    build_detector,
    connectivity_opt,
    min_size_opt,
    overwrite_opt,
    param_opt,
    parse_range,
    quiet_opt,
    refuse_input_as_output,
    say,
    seed_opt,
    threshold_opt,
)

__all__ = ["detect_cmd"]


@click.command("detect")
@click.argument("args", nargs=-1, required=True, metavar="[NAME] INPUT...")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Score GeoTIFF (one input).")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Folder for outputs (any number of inputs).")
@param_opt
@click.option("--bands", default=None, metavar="SPEC", help="1-based bands to use, e.g. '1-50,60'.")
@click.option("--wavelengths", default=None, metavar="LO:HI",
              help="Use bands whose wavelength lies in LO..HI, in nm (both below 30: in micrometres).")
@click.option("--bad-bands", default=None, metavar="SPEC",
              help="Bands to drop besides those the product flags bad: 1-based SPEC; 'auto' also drops "
                   "water-vapour windows and constant bands; 'none' keeps even flagged bands.")
@click.option("--no-ortho", is_flag=True,
              help="Keep a swath product's sensor geometry (EMIT) instead of writing on its map grid.")
@click.option("--vector", default=None, metavar="OUT", help="Detections: .gpkg, .geojson or .shp (one input).")
@click.option("--vector-format", type=click.Choice(["gpkg", "geojson", "shp"]), default=None,
              help="With --out-dir: also write detections in this format.")
@click.option("--spectra/--no-spectra", default=True, show_default=True,
              help="With the detections, their mean, SD and peak spectra and the background's (a GeoPackage "
                   "table, or NAME_spectra.csv beside GeoJSON/Shapefile), gathered in the scoring pass.")
@click.option("--library", "library_path", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Spectral library (.sli or .csv): each detection's best matches by spectral angle and SID "
                   "as attributes match_1, angle_1, sid_1, ...")
@click.option("--matches", type=click.IntRange(min=1, max=20), default=3, show_default=True,
              help="How many library matches per detection.")
@click.option("--exclude", "exclude_spec", default=None, metavar="VECTOR|first-pass",
              help="Target detectors: keep these pixels out of the background statistics (they are still "
                   "scored): the polygons of a vector file, or 'first-pass' (the detections of a first run at "
                   "--threshold, grown by one pixel).")
@threshold_opt
@connectivity_opt
@min_size_opt
@click.option("--normalize", is_flag=True, help="Scale scores to 0-1 in the GeoTIFF.")
@click.option("--gt", "gt_path", default=None, type=click.Path(dir_okay=False),
              help="Ground truth raster: print the metrics (default: the input's own, if any).")
@click.option("--mem-limit", type=click.FloatRange(min=1), default=None, metavar="MB",
              help="Memory budget in MB for the blocks and the detector's work (default: a quarter of the "
                   "RAM, at most 2048).")
@click.option("--reduce", "reduce_spec", default=None, metavar="pca:K",
              help="Project every block on the first K principal components of the scene first.")
@click.option("--cog", is_flag=True, help="Write the score layer as a Cloud-Optimised GeoTIFF with overviews.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing Dask distributed cluster (tcp://HOST:PORT); needs hadcore[dask].")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Start a local Dask cluster of N worker processes for this run; needs hadcore[dask].")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="Threads of an in-process run (default: every core); Dask workers run one per task.")
@seed_opt
@overwrite_opt
@quiet_opt
def detect_cmd(args, output, out_dir, params, bands, wavelengths, bad_bands, no_ortho, vector, vector_format, spectra,
               library_path, matches, exclude_spec,
               threshold, connectivity, min_size, normalize, gt_path, mem_limit, reduce_spec, cog, scheduler,
               workers, threads, seed, overwrite, quiet):
    """Run detector NAME (default: auto, the recommended one) on INPUT raster(s); write the score GeoTIFF and,
    optionally, detection polygons.

    Scenes are streamed block by block under --mem-limit: any size runs on one machine, or on a Dask
    cluster with --scheduler / --workers.

    Examples:

      hadcore detect scene.tif -o scores.tif --vector detections.gpkg

      hadcore detect rx scene.tif -o rx.tif --vector rx.gpkg --threshold fpr:1e-3

      hadcore detect lrx *.tif --out-dir out/ -p inner=3 -p outer=17 --vector-format gpkg

      hadcore detect rx big.tif -o rx.tif --mem-limit 1024 --cog

      hadcore detect ace scene.tif -p target=lib.sli:"red paint" -o ace.tif --vector ace.gpkg --library lib.sli

      hadcore detect ace scene.tif -p target=ace.gpkg:3 -o more.tif   # more like detection 3
    """
    from hadcore.engine import parse_reduce
    from hadcore.io import check_output
    from hadcore.threshold import parse_threshold

    name, inputs = split_name(args)
    det = build_detector(name, params, seed)
    red = parse_reduce(reduce_spec)
    if parse_threshold(threshold).kind == "fpr":
        if det.null_distribution is None:
            raise ParameterError(f"threshold 'fpr' needs scores with a known null distribution; {det.name!r} "
                                 "scores have none")
        if normalize:
            raise ParameterError("threshold 'fpr:' applies to unscaled scores; drop --normalize")
    if (output is None) == (out_dir is None):
        raise click.UsageError("give exactly one of -o/--output (one input) or --out-dir")
    if output is not None and len(inputs) != 1:
        raise click.UsageError(f"-o takes one input, got {len(inputs)}; use --out-dir for several")
    if vector and out_dir:
        raise click.UsageError("--vector names one file; with --out-dir use --vector-format")
    if exclude_spec:
        if not getattr(det, "spectrum_params", ()) or not hasattr(det, "set_exclude"):
            raise click.UsageError(f"--exclude shapes a target detector's background; {det.name!r} is not one")
        if not (det.context().global_stats or det.context().sample):
            raise click.UsageError(f"--exclude: {det.name!r} estimates no background")
        if exclude_spec.strip().lower() != "first-pass" and not Path(exclude_spec).exists():
            raise hadcore.FileError(f"--exclude: {exclude_spec} is neither 'first-pass' nor an existing vector file")
    if library_path and not (vector or vector_format):
        raise click.UsageError("--library matches detections: give --vector (or --vector-format)")
    library = None
    if library_path:
        from hadcore.library import read_library

        library = read_library(library_path)
    if gt_path and len(inputs) != 1:
        raise click.UsageError("--gt goes with a single input")
    if scheduler and workers:
        raise click.UsageError("give at most one of --scheduler and --workers")
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
        for out in (score_out, vec_out):
            if out is not None:
                _refuse_input_as_output(out, inputs)
        if any(Path(j[1]).resolve() == Path(score_out).resolve() for j in jobs):
            raise hadcore.FileError(f"two inputs would write the same output {score_out}; give each input once "
                                    "(inputs with the same name from different folders need separate --out-dir)")
        check_output(score_out, overwrite)  # fail before computing anything
        if vec_out is not None:
            check_output(vec_out, overwrite)
            from hadcore.vectorize import VECTOR_DRIVERS, spectra_csv_path

            if vec_out.suffix.lower() not in VECTOR_DRIVERS:
                raise hadcore.FileError(f"unknown vector format {vec_out.suffix!r}; use .gpkg, .geojson or .shp")
            if spectra and vec_out.suffix.lower() != ".gpkg":
                _refuse_input_as_output(spectra_csv_path(vec_out), inputs)
                check_output(spectra_csv_path(vec_out), overwrite)
        jobs.append((inp, score_out, vec_out))

    client, cluster = _dask_client(scheduler, workers)
    try:
        return [_detect_one(det, inp, score_out, vec_out, bands=bands, wl_range=wl_range, bad_bands=bad_bands,
                            ortho=not no_ortho, spectra=spectra, library=library, matches=matches,
                            exclude=exclude_spec,
                            threshold=threshold, connectivity=connectivity, min_size=min_size, normalize=normalize,
                            gt_path=gt_path, mem_limit=mem_limit, red=red, cog=cog, client=client,
                            threads=threads, overwrite=overwrite, quiet=quiet)
                for inp, score_out, vec_out in jobs]
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def split_name(args):
    """``(NAME, INPUTS)`` from ``detect``'s arguments: the first is a detector name when the registry knows it;
    otherwise every argument is an input and the detector is ``auto``. A first argument that is neither a
    detector nor an existing file, followed by more, is reported as an unknown detector."""
    from hadcore.registry import list_detectors

    first = args[0]
    if first.strip().lower() in list_detectors():
        if len(args) < 2:
            raise click.UsageError(f"give an INPUT raster after the detector name {first!r}")
        return first, args[1:]
    if len(args) > 1 and not Path(first).exists():
        hadcore.get_detector_class(first)  # raises the one-line "unknown detector ...; available: ..."
    return "auto", args


def _refuse_input_as_output(out: Path, inputs) -> None:
    """An output that names one of the inputs (or its ground truth) is refused, --overwrite or not."""
    from hadcore.io import ground_truth_path

    refuse_input_as_output(out, [c for p in inputs for c in (Path(p), ground_truth_path(Path(p))) if c is not None])


def _dask_client(scheduler, workers):
    if not (scheduler or workers):
        return None, None
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise hadcore.HadcoreError("--scheduler and --workers need Dask: pip install 'hadcore[dask]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise hadcore.HadcoreError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def _detect_one(det, inp, score_out, vec_out, *, bands, wl_range, bad_bands, ortho=True, spectra=True, library=None,
                matches=3, exclude=None, threshold, connectivity, min_size, normalize, gt_path, mem_limit, red, cog,
                client, threads=None, overwrite, quiet):
    import numpy as np

    from hadcore.engine import run_scene
    from hadcore.io import ScoreWriter, read_ground_truth, read_scores
    from hadcore.scene import open_scene

    scene = open_scene(inp, bands=bands, wavelength_range=wl_range, bad_bands=bad_bands, ortho=ortho)
    H, W, B = scene.shape
    if B < det.min_bands:
        raise hadcore.InputError(f"{det.name}: needs at least {det.min_bands} bands, got {B} in {Path(inp).name}")
    for note in scene.notes:
        say(quiet, f"{Path(inp).name}: {note}")
    if getattr(det, "spectrum_params", ()):
        from hadcore.library import prepare_spectra

        if red:
            raise hadcore.ParameterError(f"{det.name}: --reduce does not apply to target detectors (the target "
                                         "is a spectrum on the scene's bands)")
        for note in prepare_spectra(det, scene.wavelengths, scene.fwhm, B):
            say(quiet, f"{Path(inp).name}: {note}")
    n_bands = red[1] if red else B
    tags = {"source": Path(inp).name, **scene.band_tags()}
    if red:
        tags["reduce"] = f"{red[0]}:{red[1]}"
    Ho, Wo = scene.output_shape
    if exclude:
        mask = _exclusion_mask(det, scene, exclude, threshold=threshold, connectivity=connectivity,
                               min_size=min_size, mem_limit=mem_limit, client=client, threads=threads, quiet=quiet)
        det.set_exclude(mask)
        say(quiet, f"{Path(inp).name}: --exclude {exclude}: {int(mask.sum())} pixel(s) left out of the background")
    collector = None
    if vec_out is not None and (spectra or library is not None):
        from hadcore.spectra import SpectraCollector, expected_detections
        from hadcore.threshold import parse_threshold

        ts = parse_threshold(threshold)
        collector = SpectraCollector(B, scene.shape[1], floor=ts.value if ts.kind == "value" else None,
                                     expected=expected_detections(ts, H * W))
    with ProgressBar(f"{det.name} {Path(inp).name}", quiet) as bar:
        with ScoreWriter(score_out, Ho, Wo, crs=scene.crs, transform=scene.transform, input_nodata=scene.nodata,
                         detector=det.name, params=det.get_params(), n_bands=n_bands, normalize=normalize,
                         overwrite=overwrite, extra_tags=tags, cog=cog) as writer:
            # a swath product is written on its map grid (run_scene re-grids it)
            info = run_scene(det, scene.source, writer, output=scene.output,
                             mem_limit_mb=mem_limit if collector is None else collector.engine_budget(mem_limit),
                             progress=bar, reduce=red, client=client, threads=threads, observer=collector)
            writer.extra_tags.update(info.detector_tags)
    say(quiet, f"wrote {score_out}")
    record = {"input": str(inp), "scores": str(score_out)}
    scores = None
    gt = None
    if gt_path or scene.gt_path:
        gt = read_ground_truth(gt_path or scene.gt_path)
        if scene.output is not None and gt.shape == (H, W):  # swath ground truth onto the map grid
            gt = np.nan_to_num(scene.output.remap(gt.astype(np.float32))).astype(np.uint8)
        if gt.shape != (Ho, Wo):
            raise hadcore.InputError(f"ground truth {gt_path or scene.gt_path} is {gt.shape[0]} x {gt.shape[1]} "
                                     f"pixels, the score layer {Ho} x {Wo}")
    elif scene.gt is not None:
        gt = scene.gt
    if vec_out is not None or gt is not None:
        scores, _, _ = read_scores(score_out)  # one band: the input is B times larger
    if vec_out is not None:
        from hadcore.components import label_detections
        from hadcore.vectorize import frame_from_labels, write_detections

        labels, table = label_detections(scores, threshold, connectivity=int(connectivity), min_size=min_size,
                                         n_bands=n_bands, null=_null_law(det, threshold, n_bands))
        found, extra = None, None
        if collector is not None:
            found = collector.finish(labels, table, scene.source, output=scene.output, wavelengths=scene.wavelengths,
                                     band_numbers=np.asarray(scene.band_indices) + 1)
            for note in found.notes:
                say(quiet, f"{Path(inp).name}: {note}")
            if library is not None:
                from hadcore.spectra import library_matches

                extra, notes = library_matches(found, library, k=matches, fwhm=scene.fwhm)
                for note in notes:
                    say(quiet, f"{Path(inp).name}: {note}")
        frame = frame_from_labels(labels, table, transform=scene.transform, crs=scene.crs,
                                  connectivity=int(connectivity), extra=extra)
        del labels
        write_detections(frame, vec_out, overwrite=overwrite, spectra=found if spectra else None)
        say(quiet, f"wrote {vec_out}: {len(frame)} detection(s)"
            + ("" if len(frame) else f" - no pixel reached the threshold {threshold}")
            + (" with their spectra" if spectra and found is not None else ""))
        record.update(vector=str(vec_out), detections=len(frame))
    if gt is not None:
        from hadcore.metrics import evaluate, format_metrics

        if normalize:
            pass  # normalisation is monotone: the metrics are the same
        m = evaluate(scores, gt)
        click.echo(f"{Path(inp).name}: {det.name} AUC(PD,PF) = {m['auc_pd_pf']:.4f}   ({format_metrics(m)})")
        record["metrics"] = m
    return record


def _null_law(det, threshold, n_bands):
    """The fitted detector's null law when the threshold is ``fpr:`` (the law of ACE or MF scores depends on the
    bands, MF's on its fit), else None."""
    from hadcore.threshold import parse_threshold

    return det.null_law(n_bands) if parse_threshold(threshold).kind == "fpr" else None


def _exclusion_mask(det, scene, spec, *, threshold, connectivity, min_size, mem_limit, client, threads, quiet):
    """The (H, W) mask on the scored grid (a swath product's swath) of ``--exclude``: the polygons of a vector
    layer (every pixel they touch), or the detections of a first run of ``det`` at ``threshold`` grown by one
    pixel (their edges are target too)."""
    import numpy as np

    from hadcore.engine import ArraySink, run_scene

    H, W = scene.shape[:2]
    if spec.strip().lower() == "first-pass":
        from scipy import ndimage

        from hadcore.components import label_detections

        with ProgressBar(f"{det.name} first pass", quiet) as bar:
            sink = ArraySink(H, W)
            run_scene(det, scene.source, sink, mem_limit_mb=mem_limit, progress=bar, client=client,
                      threads=threads)
        labels, _ = label_detections(sink.array, threshold, connectivity=int(connectivity), min_size=min_size,
                                     n_bands=scene.shape[2], null=_null_law(det, threshold, scene.shape[2]))
        return ndimage.binary_dilation(labels > 0, structure=np.ones((3, 3), bool))
    from hadcore.vectorize import rasterize_layer

    Ho, Wo = scene.output_shape
    grid = rasterize_layer(spec, Ho, Wo, scene.transform, scene.crs, all_touched=True) > 0
    if scene.output is None:
        return grid
    mask = np.zeros((H, W), dtype=bool)  # map pixels -> the swath pixels they show
    rr, cc = scene.output.rows[grid], scene.output.cols[grid]
    ok = (rr >= 0) & (cc >= 0)
    mask[rr[ok], cc[ok]] = True
    return mask


# ------------------------------------------------------------------------------------------------ evaluate
