"""``hadcore list``, ``hadcore info NAME`` and ``hadcore inspect INPUT``: what detectors there are, what
a detector declares, and what a raster or product holds (its bands as the one band rule selects them)."""

from __future__ import annotations

import json
from pathlib import Path

import click

import hadcore

from .options import (
    json_opt,
    parse_range,
)

__all__ = ["list_cmd", "info_cmd", "inspect_cmd"]


# ------------------------------------------------------------------------------------------------ list/info
@click.command("list")
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


@click.command("info")
@click.argument("name", required=False, default="auto")
@json_opt
def info_cmd(name, as_json):
    """Describe detector NAME (default: auto, the recommended one): summary, why, reference, parameters."""
    cls = hadcore.get_detector_class(name)
    d = cls.describe()
    if as_json:
        click.echo(json.dumps(d, indent=2, default=str))
        return
    click.echo(f"{d['name']} - {d['title']} ({d['family']}{', trains' if d['trains'] else ''})")
    click.echo(d["summary"])
    if d.get("rationale"):
        click.echo(f"Why: {d['rationale']}")
    click.echo(f"Reference: {d['reference']}")
    click.echo(f"Scales by: {d['scaling']}")
    click.echo("Parameters (-p NAME=VALUE):")
    for p in d["params"]:
        click.echo(f"  {p['name']:<16} default {p['default']!r:<12} {p['allowed']}")
        click.echo(f"  {'':<16} {p['help']}")


# ------------------------------------------------------------------------------------------------ inspect
@click.command("inspect")
@click.argument("input_path", metavar="INPUT")
@click.option("--bands", default=None, metavar="SPEC", help="As for detect.")
@click.option("--wavelengths", default=None, metavar="LO:HI", help="As for detect.")
@click.option("--bad-bands", default=None, metavar="SPEC", help="As for detect ('auto', 'none' or a SPEC).")
@click.option("--no-ortho", is_flag=True, help="As for detect.")
@json_opt
def inspect_cmd(input_path, bands, wavelengths, bad_bands, no_ortho, as_json):
    """What a run on INPUT would use: product type, size, bands, wavelengths, good bands, CRS, nodata, grid.

    Reads only metadata (and, with --bad-bands auto, a sample of rows to find constant bands).
    """
    from hadcore.scene import open_scene

    sc = open_scene(input_path, bands=bands, wavelength_range=parse_range(wavelengths), bad_bands=bad_bands,
                    ortho=not no_ortho)
    H, W, B = sc.shape
    Ho, Wo = sc.output_shape
    wl = sc.wavelengths
    d = {
        "input": str(input_path),
        "product": sc.product,
        "size": [H, W],
        "bands_in_file": sc.n_source_bands,
        "bands_used": B,
        "good_bands_flagged_by_product": None if sc.good is None else int(sc.good.sum()),
        "wavelength_range_nm": None if wl is None else [round(float(wl.min()), 3), round(float(wl.max()), 3)],
        "fwhm": sc.fwhm is not None,
        "crs": None if sc.crs is None else sc.crs.to_string(),
        "transform": None if sc.transform is None else list(sc.transform)[:6],
        "nodata": sc.nodata,
        "output_grid": None if sc.output is None else {"size": [Ho, Wo], "by": sc.output.description},
        "notes": sc.notes,
    }
    if as_json:
        click.echo(json.dumps(d, indent=2, default=str))
        return
    click.echo(f"{Path(input_path).name}: {d['product']}, {H} x {W} pixels")
    click.echo(f"  bands: {B} used of {d['bands_in_file']}"
               + ("" if d["good_bands_flagged_by_product"] is None
                  else f" ({d['good_bands_flagged_by_product']} good by the product's flags)"))
    click.echo("  wavelengths: " + ("none in the file" if wl is None else
                                    f"{d['wavelength_range_nm'][0]:g}-{d['wavelength_range_nm'][1]:g} nm"
                                    + (", with FWHM" if d["fwhm"] else "")))
    click.echo(f"  CRS: {d['crs'] or 'none'}; nodata: {d['nodata'] if d['nodata'] is not None else 'none'}")
    if sc.output is not None:
        click.echo(f"  scores written on a {Ho} x {Wo} map grid ({sc.output.description}); --no-ortho keeps "
                   "the swath geometry")
    for note in sc.notes:
        click.echo(f"  note: {note}")


# ------------------------------------------------------------------------------------------------ detect
