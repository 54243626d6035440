"""``hadcore synth OUT.tif``: write a synthetic thermal-infrared scene (see :mod:`hadcore.synthetic`)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import overwrite_opt

__all__ = ["synth"]


@click.command("synth")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--size", "size", nargs=2, type=click.IntRange(16, 10000), default=(100, 100), show_default=True,
              metavar="H W", help="Image height and width in pixels.")
@click.option("--bands", type=click.IntRange(2, 2000), default=110, show_default=True, help="Number of bands.")
@click.option("--wavelengths", "wl_range", nargs=2, type=float, default=(8.06, 11.22), show_default=True,
              metavar="FIRST LAST", help="First and last band centre (micrometres).")
@click.option("--targets", "n_targets", type=click.IntRange(0, None), default=12, show_default=True,
              help="Number of small targets.")
@click.option("--kind", "target_kind", type=click.Choice(["mixed", "emissivity", "temperature"]),
              default="mixed", show_default=True, help="How the targets differ from the background.")
@click.option("--delta-t", type=click.FloatRange(0, None), default=3.0, show_default=True,
              help="Temperature difference of temperature targets (K).")
@click.option("--nedt", type=click.FloatRange(0, None), default=0.1, show_default=True,
              help="Sensor noise as noise-equivalent temperature difference (K).")
@click.option("--materials", "n_materials", type=click.IntRange(1, 5), default=4, show_default=True,
              help="Background materials.")
@click.option("--seed", type=click.IntRange(0, None), default=0, show_default=True, help="Random seed.")
@click.option("--gt/--no-gt", "write_gt", default=True, show_default=True,
              help="Also write the ground truth as OUT_gt.tif (1 = target).")
@overwrite_opt
def synth(output, size, bands, wl_range, n_targets, target_kind, delta_t, nedt, n_materials, seed, write_gt,
          overwrite):
    """Write a synthetic thermal-infrared hyperspectral scene to OUTPUT (GeoTIFF, radiance in
    W m-2 sr-1 um-1, band wavelengths in micrometres), with its ground truth beside it."""
    from hadcore.io import check_output, write_cube
    from hadcore.synthetic import thermal_scene

    gt_path = output.with_name(output.stem + "_gt.tif")
    check_output(output, overwrite)  # check both outputs before computing or writing either
    if write_gt:
        check_output(gt_path, overwrite)
    scene = thermal_scene(height=size[0], width=size[1], bands=bands, wl_range=wl_range,
                          n_targets=n_targets, target_kind=target_kind, delta_t=delta_t, nedt=nedt,
                          n_materials=n_materials, seed=seed)
    tags = {"hadcore_synthetic": f"thermal_scene seed={seed} targets={n_targets} kind={target_kind}"}
    write_cube(output, scene.cube, wavelengths=list(map(float, scene.wavelengths)), overwrite=overwrite,
               tags=tags)
    if write_gt:
        write_cube(gt_path, scene.gt, overwrite=overwrite, tags=tags)
    click.echo(f"wrote {output} ({size[0]} x {size[1]} x {bands}, {int(scene.gt.sum())} target pixels)"
               + (f" and {gt_path}" if write_gt else ""))
