"""``hadcore spectra DETECTIONS [SCENE]``: the spectra behind detections as a plot and/or a long table.

The spectra come from the table stored with the detections (``hadcore detect ... --vector``: a GeoPackage's
``detection_spectra`` table, or ``NAME_spectra.csv`` beside a GeoJSON/Shapefile, or that CSV itself); a layer
without one (detections written with ``--no-spectra``, or polygons drawn by hand) needs the SCENE, whose pixels
under each polygon are read (:class:`hadcore.spectra.SpectraCollector`).

Polygons on the scene grid: a pixel belongs to a polygon when its centre lies inside it (where polygons
overlap, to the later one); a polygon smaller than a pixel, which holds no pixel centre, takes the pixels it
touches; pixels the scene marks invalid (nodata, outside a swath) are left out. A polygon's id is its ``id``
attribute when every feature has a distinct positive integer one, else its position in the layer (1 = the
first). Its peak pixel is the pixel at the layer's ``peak_x``/``peak_y`` when those attributes place one inside
it (a detection layer), else its pixel farthest from the background in standardised distance
(``sqrt(mean_b ((x_b - m_b) / s_b) ** 2)`` with ``m``/``s`` the background's mean and SD: the RX idea with a
diagonal covariance), the most anomalous pixel as a detection's peak is its highest score.
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import overwrite_opt, parse_range, quiet_opt, refuse_input_as_output, say

__all__ = ["spectra_cmd"]

DEFAULT_PLOT_IDS = 8
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
_BATCH_VALUES = 32 * 2 ** 20  # float64 values of pixel spectra held at once when choosing peaks (256 MB)


@click.command("spectra")
@click.argument("detections", type=click.Path(dir_okay=False), metavar="DETECTIONS")
@click.argument("scene", required=False, type=click.Path(dir_okay=False), metavar="[SCENE]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="The plot: .png (or .svg, .pdf); needs matplotlib (hadcore[plots]).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="The long table: id, band, wavelength_nm, mean, std, peak, pixels (id 0 = background).")
@click.option("--ids", default=None, metavar="LIST",
              help=f"Detection ids, e.g. '1,2,5' or '1-4' (default: the first {DEFAULT_PLOT_IDS} in the plot, "
                   "all in the table; given, both hold these only).")
@click.option("--stat", type=click.Choice(["mean", "peak"]), default="mean", show_default=True,
              help="Plot each detection's mean spectrum (with ±1 SD) or its peak pixel's spectrum.")
@click.option("--bands", default=None, metavar="SPEC", help="SCENE's 1-based bands to use, e.g. '1-50,60'.")
@click.option("--wavelengths", default=None, metavar="LO:HI",
              help="Use SCENE's bands whose wavelength lies in LO..HI, in nm (both below 30: in micrometres).")
@click.option("--bad-bands", default=None, metavar="SPEC",
              help="SCENE's bands to drop besides those the product flags bad: 1-based SPEC; 'auto' also drops "
                   "water-vapour windows and constant bands; 'none' keeps even flagged bands.")
@overwrite_opt
@quiet_opt
def spectra_cmd(detections, scene, output, csv_path, ids, stat, bands, wavelengths, bad_bands, overwrite, quiet):
    """Plot (-o) and/or tabulate (--csv) the spectra of DETECTIONS (.gpkg, .geojson, .shp, or a spectra .csv):
    each detection's mean ± SD or peak spectrum against the background's.

    DETECTIONS written by `hadcore detect --vector` carry their spectra, and SCENE is optional (it gives
    wavelengths to a table without them). Any other polygon layer (drawn by hand, or written with
    --no-spectra) needs SCENE: the spectra are read from the pixels whose centres lie inside each polygon; the
    layer is reprojected to the scene's CRS. Give SCENE's band options as for the detection run.

    Examples:

      hadcore spectra rx.gpkg -o spectra.png

      hadcore spectra rx.gpkg --ids 1,3 --stat peak -o peaks.png --csv peaks.csv

      hadcore spectra fields.gpkg scene.tif -o fields.png --bad-bands auto
    """
    from hadcore.errors import FileError, HadcoreError, InputError

    if output is None and csv_path is None:
        raise click.UsageError("give -o/--output (the plot) and/or --csv (the table)")
    det_path = Path(detections)
    if not det_path.exists():
        raise FileError(f"detections not found: {det_path}")
    if det_path.is_dir():
        raise FileError(f"detections is a folder, not a vector file: {det_path}")
    if scene is not None and not Path(scene).exists():
        raise FileError(f"scene not found: {scene}")
    if scene is None and (bands or wavelengths or bad_bands):
        raise click.UsageError("--bands, --wavelengths and --bad-bands choose SCENE's bands: give SCENE")
    wanted = parse_ids(ids)
    wl_range = parse_range(wavelengths)
    outs = [Path(p) for p in (output, csv_path) if p is not None]
    if len(outs) == 2 and outs[0].resolve() == outs[1].resolve():
        raise click.UsageError("-o and --csv name the same file")
    if output is not None:
        from hadcore.plots import have_matplotlib

        if Path(output).suffix.lower() not in PLOT_SUFFIXES:
            raise FileError(f"unknown plot format {Path(output).suffix!r} for {Path(output).name}; "
                            f"use {', '.join(PLOT_SUFFIXES)}")
        if not have_matplotlib():
            raise HadcoreError('the plot needs matplotlib: pip install "hadcore[plots]" (or write --csv only)')
    from hadcore.io import check_output
    from hadcore.vectorize import VECTOR_DRIVERS, spectra_csv_path

    suffix = det_path.suffix.lower()
    if suffix not in VECTOR_DRIVERS and suffix != ".csv":
        raise FileError(f"unknown detections format {det_path.suffix!r} for {det_path.name}; use "
                        f"{', '.join(VECTOR_DRIVERS)} or a spectra .csv")
    inputs = [det_path] + ([Path(scene)] if scene else [])
    if suffix in VECTOR_DRIVERS and suffix != ".gpkg":
        inputs.append(spectra_csv_path(det_path))
    for out in outs:
        refuse_input_as_output(out, inputs)
        check_output(out, overwrite)  # before anything is computed

    from hadcore.vectorize import has_detection_spectra

    has_table = has_detection_spectra(det_path)
    layer = None if suffix == ".csv" else _read_layer(det_path, required=not has_table)
    if has_table:
        from hadcore.vectorize import read_detection_spectra

        found = read_detection_spectra(det_path)
        if scene is not None:
            found = _wavelengths_from_scene(found, scene, bands, wl_range, bad_bands, quiet)
        matches = _matches(layer, None)
    else:
        if scene is None:
            raise InputError(f"{det_path.name} carries no detection spectra; give the SCENE to read them from: "
                             f"hadcore spectra {det_path.name} SCENE ...")
        found, feature_ids = polygon_spectra(layer, scene, bands=bands, wl_range=wl_range, bad_bands=bad_bands,
                                             name=det_path.name, quiet=quiet)
        matches = _matches(layer, feature_ids)
    if found.ids.size == 0:
        raise InputError(f"{det_path.name} holds no detections")
    if wanted is not None:
        for i in wanted:
            found.spectrum(i)  # an unknown id: one line naming the known ones
        found = subset(found, wanted)
    if csv_path is not None:
        import pandas as pd

        from hadcore.io import atomic_output

        with atomic_output(csv_path, overwrite) as tmp:
            pd.DataFrame(found.to_columns()).to_csv(tmp, index=False)  # full precision, as detect writes it
        say(quiet, f"wrote {csv_path}: spectra of {found.ids.size} detection(s) and the background, "
                   f"{found.n_bands} bands")
    if output is not None:
        from hadcore.io import atomic_output
        from hadcore.plots import plot_detection_spectra

        show = wanted if wanted is not None else [int(i) for i in found.ids[:DEFAULT_PLOT_IDS]]
        title = f"{det_path.name}: " + ("mean spectra ± 1 SD" if stat == "mean" else "peak-pixel spectra")
        with atomic_output(output, overwrite) as tmp:
            plot_detection_spectra(found, tmp, ids=show, stat=stat, title=title, matches=matches)
        more = f" (of {found.ids.size}; --ids for others)" if wanted is None and found.ids.size > len(show) else ""
        say(quiet, f"wrote {output}: {stat} spectra of {len(show)} detection(s){more}")
    return found


# ------------------------------------------------------------------------------------------------ helpers
def parse_ids(text):
    """``"1,2,5"`` / ``"1-4,7"`` -> [1, 2, 5] / [1, 2, 3, 4, 7] (order kept, repeats dropped); None -> None."""
    from hadcore.errors import ParameterError

    if text is None:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ParameterError(f"--ids: expected ids like '1,2,5' or '1-4', got {text!r}") from None
        if a < 1 or b < a:
            raise ParameterError(f"--ids: ids are positive integers and ranges LO-HI with LO <= HI, got {part!r}")
        out.extend(i for i in range(a, b + 1) if i not in out)
    if not out:
        raise ParameterError(f"--ids: no id in {text!r}")
    return out


def subset(found, ids):
    """The :class:`~hadcore.spectra.DetectionSpectra` of ``ids`` only (the background unchanged)."""
    import dataclasses

    import numpy as np

    rows = np.asarray([int(np.flatnonzero(found.ids == i)[0]) for i in ids], dtype=np.int64)
    return dataclasses.replace(found, ids=found.ids[rows], pixels=found.pixels[rows], mean=found.mean[rows],
                               std=found.std[rows], peak=found.peak[rows], notes=list(found.notes))


def _gpkg_layers(path: Path) -> dict:
    """``{layer name: geometry type or None}`` of a GeoPackage; an unreadable file is one line."""
    import pyogrio

    from hadcore.errors import FileError

    try:
        return {str(name): geom for name, geom in pyogrio.list_layers(path)}
    except Exception as exc:  # noqa: BLE001 - a corrupt file: one line
        raise FileError(f"cannot read {path.name}: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from None


def _read_layer(path: Path, required: bool = True):
    """The polygon layer of ``path``: a GeoPackage's ``detections`` layer, else its first layer with geometry
    (None when there is none and it is not ``required``)."""
    import warnings

    import geopandas as gpd

    from hadcore.errors import FileError, InputError

    kwargs = {}
    if path.suffix.lower() == ".gpkg":
        from hadcore.vectorize import SPECTRA_LAYER

        layers = _gpkg_layers(path)
        spatial = [n for n, g in layers.items() if g is not None and n != SPECTRA_LAYER]
        if "detections" in layers:
            kwargs["layer"] = "detections"
        elif spatial:
            kwargs["layer"] = spatial[0]
        elif required:
            raise InputError(f"{path.name} holds no layer with geometries")
        else:
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gpd.read_file(path, engine="pyogrio", **kwargs)
    except Exception as exc:  # noqa: BLE001 - an unreadable file: one line
        raise FileError(f"cannot read {path.name}: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from None


def _matches(layer, feature_ids):
    """``{id: {"match_1": ..., "angle_1": ...}}`` from a layer with library matches (``hadcore detect
    --library``), else None. ``feature_ids``: the ids given to the features (None: the layer's ``id``)."""
    import numpy as np

    if layer is None or "match_1" not in layer.columns:
        return None
    if feature_ids is None:
        if "id" not in layer.columns:
            return None
        feature_ids = layer["id"]
    angles = layer["angle_1"] if "angle_1" in layer.columns else [np.nan] * len(layer)
    out = {}
    for i, name, angle in zip(feature_ids, layer["match_1"], angles):
        try:
            out[int(i)] = {"match_1": name, "angle_1": angle}
        except (TypeError, ValueError):
            continue
    return out


def _band_list(numbers) -> str:
    from hadcore.tags import band_ranges

    return band_ranges([int(b) - 1 for b in numbers])


def _wavelengths_from_scene(found, scene_path, bands, wl_range, bad_bands, quiet):
    """A stored table without wavelengths takes the scene's, when the scene's chosen bands are the table's."""
    import dataclasses

    import numpy as np

    from hadcore.errors import InputError
    from hadcore.scene import open_scene

    if found.wavelengths is not None:
        say(quiet, f"{Path(scene_path).name}: not read (the detections' spectra carry their wavelengths)")
        return found
    sc = open_scene(scene_path, bands=bands, wavelength_range=wl_range, bad_bands=bad_bands)
    B = int(sc.shape[2])
    if B != found.n_bands:
        raise InputError(f"the detections' spectra have {found.n_bands} bands, {Path(scene_path).name} "
                         f"{B} (bands {_band_list(np.asarray(sc.band_indices) + 1)}); give the band options of "
                         "the detection run")
    numbers = np.asarray(sc.band_indices, dtype=np.int64) + 1
    if found.bands is not None and not np.array_equal(np.asarray(found.bands), numbers):
        raise InputError(f"the detections' spectra are of bands {_band_list(found.bands)}, "
                         f"{Path(scene_path).name} chose bands {_band_list(numbers)}; give the band options of "
                         "the detection run")
    if sc.wavelengths is None:
        say(quiet, f"{Path(scene_path).name}: no band wavelengths; the x axis is the band number")
        return found
    return dataclasses.replace(found, wavelengths=np.asarray(sc.wavelengths, dtype=np.float64))


# ------------------------------------------------------------------------------------------------ polygons
def _feature_ids(layer):
    """``(ids, from_attribute)``: the ``id`` attribute when it is a distinct positive integer for every feature
    (and fits the label image's int32), else 1..n in layer order."""
    import numpy as np

    n = len(layer)
    if "id" in layer.columns:
        try:
            vals = np.asarray(layer["id"], dtype=np.float64)
        except (TypeError, ValueError):
            vals = None
        if (vals is not None and vals.size == n and np.all(np.isfinite(vals)) and np.all(vals == np.round(vals))
                and np.all(vals >= 1) and np.all(vals < 2 ** 31) and np.unique(vals).size == n):
            return vals.astype(np.int64), True
    return np.arange(1, n + 1, dtype=np.int64), False


def _source_keys(flat, output, H, W, width_src):
    """Flat source-grid keys of the flat map-grid pixels ``flat`` (-1 where a swath product maps none)."""
    import numpy as np

    rr, cc = np.divmod(flat, W)
    if output is not None:
        rr, cc = output.rows[rr, cc].astype(np.int64), output.cols[rr, cc].astype(np.int64)
        bad = (rr < 0) | (cc < 0)
        keys = rr * width_src + cc
        keys[bad] = -1
        return keys
    return rr.astype(np.int64) * width_src + cc


def _apply(T, x, y):
    """``T`` (an Affine) applied to one point (without the ``*`` operator newer affine releases deprecate)."""
    return T.a * x + T.b * y + T.c, T.d * x + T.e * y + T.f


def polygon_spectra(layer, scene_path, *, bands=None, wl_range=None, bad_bands=None, name="the layer",
                    quiet=True):
    """``(DetectionSpectra, feature ids)`` of a polygon layer on a scene (see the module docstring)."""
    import numpy as np
    from affine import Affine
    from rasterio import features
    from rasterio.enums import MergeAlg

    from hadcore.errors import InputError
    from hadcore.scene import open_scene
    from hadcore.spectra import SpectraCollector, read_pixels

    scene_name = Path(scene_path).name
    sc = open_scene(scene_path, bands=bands, wavelength_range=wl_range, bad_bands=bad_bands)
    for note in sc.notes:
        say(quiet, f"{scene_name}: {note}")
    H, W = sc.output_shape
    Hs, Ws, B = sc.shape
    T = sc.transform if sc.transform is not None else Affine.identity()
    if len(layer) == 0:
        raise InputError(f"{name} holds no features")
    feature_ids, from_attr = _feature_ids(layer)
    if not from_attr:
        say(quiet, f"{name}: no distinct positive integer 'id' attribute; the features are numbered 1..{len(layer)}"
                   " in layer order")
    geoms = layer.geometry
    peaks = None
    if {"peak_x", "peak_y"} <= set(layer.columns):
        import geopandas as gpd
        from shapely.geometry import Point

        try:
            px = np.asarray(layer["peak_x"], dtype=np.float64)
            py = np.asarray(layer["peak_y"], dtype=np.float64)
        except (TypeError, ValueError):  # not numbers: no peaks given
            px = py = np.full(len(layer), np.nan)
        peaks = gpd.GeoSeries([Point(x, y) if np.isfinite(x) and np.isfinite(y) else None for x, y in zip(px, py)],
                              crs=layer.crs)
    if layer.crs is None:
        if sc.crs is not None:
            say(quiet, f"{name}: no CRS; taken to be the scene's")
    elif sc.crs is None:
        raise InputError(f"{scene_name} has no CRS and {name} is in {layer.crs.to_string()}: the polygons cannot "
                         "be placed on it")
    elif not layer.crs.equals(sc.crs):
        try:
            geoms = geoms.to_crs(sc.crs)
            if peaks is not None:
                peaks = peaks.to_crs(sc.crs)
        except Exception as exc:  # noqa: BLE001 - a CRS pyproj cannot transform: one line
            raise InputError(f"cannot reproject {name} from {layer.crs.to_string()} to the CRS of {scene_name}: "
                             f"{(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    usable = np.asarray([g is not None and not g.is_empty for g in geoms], dtype=bool)
    if not usable.any():
        raise InputError(f"{name} holds no geometry")
    shapes = [(g, int(i)) for g, i, u in zip(geoms, feature_ids, usable) if u]
    # a pixel is a polygon's when its centre is inside; where polygons overlap, the later one's
    labels = features.rasterize(shapes, out_shape=(H, W), transform=T, fill=0, dtype="int32")
    cover = features.rasterize([(g, 1) for g, _ in shapes], out_shape=(H, W), transform=T, fill=0, dtype="int32",
                               merge_alg=MergeAlg.add)
    n_overlap = int((cover > 1).sum())
    del cover
    if n_overlap:
        say(quiet, f"{name}: {n_overlap} pixel(s) lie in more than one polygon; each counts in the later one")
    present = set(np.unique(labels[labels > 0]).tolist()) if labels.any() else set()
    small = [(g, i) for g, i in shapes if i not in present]
    if small:  # smaller than a pixel (no pixel centre inside): the pixels it touches
        touched = features.rasterize(small, out_shape=(H, W), transform=T, fill=0, dtype="int32", all_touched=True)
        free = (labels == 0) & (touched > 0)
        labels[free] = touched[free]
        del touched, free
    # pixels the scene cannot give (nodata, outside a swath) are not the polygons'
    flat = np.flatnonzero(labels)
    keys = _source_keys(flat, sc.output, H, W, Ws)
    ok = keys >= 0
    valid = np.zeros(flat.size, dtype=bool)
    valid[ok], _ = read_pixels(sc.source, keys[ok], Ws, spectra=False)
    n_invalid = int((~valid).sum())
    if n_invalid:
        say(quiet, f"{name}: {n_invalid} pixel(s) inside the polygons are not valid in {scene_name}; left out")
        labels.ravel()[flat[~valid]] = 0
        flat, keys = flat[valid], keys[valid]
    lab = labels.ravel()[flat].astype(np.int64)
    if flat.size == 0:
        xmin, ymin, xmax, ymax = geoms[usable].total_bounds
        left, top = _apply(T, 0, 0)
        right, bottom = _apply(T, W, H)
        raise InputError(f"none of the {int(usable.sum())} feature(s) of {name} covers a valid pixel of {scene_name} "
                         f"(features: x {xmin:.10g}..{xmax:.10g}, y {ymin:.10g}..{ymax:.10g}; scene: x "
                         f"{min(left, right):.10g}..{max(left, right):.10g}, y {min(top, bottom):.10g}.."
                         f"{max(top, bottom):.10g})")
    order = np.argsort(lab, kind="stable")
    lab_s, flat_s, keys_s = lab[order], flat[order], keys[order]
    uid, first = np.unique(lab_s, return_index=True)
    have = set(uid.tolist())
    kept = [int(i) for i in feature_ids if int(i) in have]
    lost = [int(i) for i, u in zip(feature_ids, usable) if u and int(i) not in have]
    if lost:
        say(quiet, f"{name}: feature(s) {', '.join(map(str, lost[:10]))}{' ...' if len(lost) > 10 else ''} "
                   f"cover no valid pixel of {scene_name}; left out")
    # the peak pixel: the layer's peak_x/peak_y where it lies in the polygon, else the most anomalous (below)
    start = dict(zip(uid.tolist(), first.tolist()))
    stop = dict(zip(uid.tolist(), np.r_[first[1:], lab_s.size].tolist()))
    given = {}
    if peaks is not None:
        inv = ~T
        for i, pt in zip(feature_ids, peaks):
            i = int(i)
            if i not in start or pt is None or pt.is_empty:
                continue
            c, r = _apply(inv, pt.x, pt.y)
            r, c = int(np.floor(r)), int(np.floor(c))
            if 0 <= r < H and 0 <= c < W and labels[r, c] == i:
                given[i] = (r, c)
    table = []
    for i in kept:
        r, c = given.get(i) or divmod(int(flat_s[start[i]]), W)
        table.append({"id": i, "peak_row": int(r), "peak_col": int(c)})
    found = SpectraCollector.empty(B, Ws).finish(labels, table, sc.source, output=sc.output,
                                                 wavelengths=sc.wavelengths,
                                                 band_numbers=np.asarray(sc.band_indices) + 1)
    _choose_peaks(found, [i for i in kept if i not in given], keys_s, start, stop, sc.source, Ws)
    for note in found.notes:
        if "read again for the background" not in note:
            say(quiet, f"{scene_name}: {note}")
    return found, feature_ids


def _choose_peaks(found, ids, keys_s, start, stop, source, width):
    """Set the peak spectrum of each of ``ids`` to its pixel farthest from the background in standardised
    distance (the polygon's own mean and SD where there is no background); pixels read in batches."""
    import numpy as np

    from hadcore.spectra import read_pixels

    if not ids:
        return
    m, s = found.background_mean, found.background_std
    batch, held = [], 0
    for n, i in enumerate(ids):
        batch.append(i)
        held += (stop[i] - start[i]) * found.n_bands
        if held < _BATCH_VALUES and n + 1 < len(ids):
            continue
        keys = np.concatenate([keys_s[start[j]:stop[j]] for j in batch])
        _, X = read_pixels(source, keys, width)
        pos = 0
        for j in batch:
            k = int(np.flatnonzero(found.ids == j)[0])
            part = X[pos:pos + stop[j] - start[j]]
            pos += stop[j] - start[j]
            ref_m, ref_s = (m, s) if np.all(np.isfinite(m)) else (found.mean[k], found.std[k])
            use = np.isfinite(ref_s) & (ref_s > 0)
            if use.any():
                z = (part[:, use] - ref_m[use]) / ref_s[use]
                d = np.einsum("ij,ij->i", z, z)
            else:
                d = np.einsum("ij,ij->i", part - ref_m, part - ref_m)
            found.peak[k] = part[int(np.argmax(d))]
        batch, held = [], 0
