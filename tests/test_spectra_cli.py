"""``hadcore spectra``: the spectra behind detections, from the table stored with them or from a scene under
hand-drawn polygons, as a plot and a long table; checked against the pixels of the sample scene itself.

Needs the CLI extras (rasterio, geopandas; marked ``cli``, imported inside the tests so that the core-only run
collects and deselects this module); the plot checks need matplotlib and are skipped without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_DIR, user_error
from conftest import run_cli as run

pytestmark = pytest.mark.cli

SAMPLE = SAMPLE_DIR / "abu-airport-1.tif"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def no_leftovers(folder: Path, name: str):
    assert not (folder / name).exists()
    assert not list(folder.glob(f".{name}.hadcore-*")), "a temporary output was left behind"


def read_cube(path=SAMPLE):
    import rasterio

    with rasterio.open(path) as src:
        return np.moveaxis(src.read(), 0, -1).astype(np.float64), src.transform, src.crs


@pytest.fixture(scope="module")
def rx_run(tmp_path_factory):
    """RX on the sample scene with detections and their spectra in a GeoPackage (10 detections, some of
    several pixels), and the label image and table the detections were drawn from."""
    from hadcore.components import label_detections
    from hadcore.io import read_scores

    d = tmp_path_factory.mktemp("spectra")
    thr = "percentile:99.8"
    r = run("detect", "rx", SAMPLE, "-o", d / "rx.tif", "--vector", d / "rx.gpkg", "--threshold", thr, "-q")
    assert r.exit_code == 0, r.output
    scores, _, _ = read_scores(d / "rx.tif")
    labels, table = label_detections(scores, thr, n_bands=205)
    assert len(table) >= 3 and max(t["pixels"] for t in table) > 1
    return d, labels, table


def test_stored_spectra_to_csv_are_the_detections_pixels(rx_run, tmp_path):
    """(a) detect --vector gpkg, then spectra --csv: each id's mean/std over exactly its pixels, its peak pixel's
    spectrum, the background over every other pixel; the CSV reads back as the GeoPackage's table."""
    import geopandas as gpd
    import pandas as pd

    from hadcore.vectorize import read_detection_spectra

    d, labels, table = rx_run
    out = tmp_path / "s.csv"
    r = run("spectra", d / "rx.gpkg", "--csv", out, "-q")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    cube, T, _ = read_cube()
    csv = pd.read_csv(out)
    assert list(csv.columns) == ["id", "band", "wavelength_nm", "mean", "std", "peak", "pixels"]
    assert sorted(set(csv["id"])) == [0] + [t["id"] for t in table]  # all ids without --ids
    for t in table:
        px = cube[labels == t["id"]]
        rows = csv[csv["id"] == t["id"]]
        assert (rows["band"].to_numpy() == np.arange(1, 206)).all()
        assert (rows["pixels"] == px.shape[0]).all() and px.shape[0] == t["pixels"]
        np.testing.assert_allclose(rows["mean"], px.mean(axis=0), rtol=1e-7)
        np.testing.assert_allclose(rows["std"], px.std(axis=0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(rows["peak"], cube[t["peak_row"], t["peak_col"]], rtol=1e-7)
    bg = csv[csv["id"] == 0]
    np.testing.assert_allclose(bg["mean"], cube[labels == 0].mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(bg["std"], cube[labels == 0].std(axis=0), rtol=1e-6)
    assert (bg["pixels"] == int((labels == 0).sum())).all()
    # the CSV is a spectra table hadcore reads back, equal to the one in the GeoPackage
    a, b = read_detection_spectra(d / "rx.gpkg"), read_detection_spectra(out)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    for name in ("mean", "std", "peak", "background_mean", "background_std"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-8, err_msg=name)
    # the layer's polygons are the labels: id 1's polygon holds the pixels of its spectra
    from rasterio.features import rasterize

    poly = gpd.read_file(d / "rx.gpkg", layer="detections")
    assert list(poly["id"]) == [t["id"] for t in table]
    burnt = rasterize([(poly.geometry[0], 1)], out_shape=labels.shape, transform=T, dtype="uint8")
    np.testing.assert_array_equal(burnt.astype(bool), labels == 1)
    # --ids keeps those ids (and the background) in the table
    r = run("spectra", d / "rx.gpkg", "--csv", tmp_path / "two.csv", "--ids", "3,1", "-q")
    assert r.exit_code == 0, r.output
    assert list(pd.read_csv(tmp_path / "two.csv")["id"].unique()) == [0, 3, 1]


def test_stored_spectra_plot_is_a_png(rx_run, tmp_path):
    """(a) the plot: a valid PNG of a readable size, for the mean and the peak spectra."""
    pytest.importorskip("matplotlib")
    import matplotlib.image

    d, _, _ = rx_run
    for stat in ("mean", "peak"):
        out = tmp_path / f"{stat}.png"
        r = run("spectra", d / "rx.gpkg", "-o", out, "--stat", stat, "-q")
        assert r.exit_code == 0, r.output
        assert out.read_bytes()[:8] == PNG_MAGIC
        img = matplotlib.image.imread(out)
        assert img.ndim == 3 and img.shape[0] >= 400 and img.shape[1] >= 800
        assert float(img[..., :3].std()) > 0.05  # something was drawn


def _drawn_layer(T, crs):
    """Hand-drawn features in the scene's CRS: a rectangle on pixel edges, a triangle (pixel centres well away
    from its edges), a rectangle half outside the scene and a point-sized disc inside one pixel."""
    import geopandas as gpd
    from shapely.geometry import Point, Polygon, box

    def xy(col, row):
        return T.c + T.a * col + T.b * row, T.f + T.d * col + T.e * row

    rect = box(*xy(10, 20), *xy(15, 12))  # columns 10-14, rows 12-19: 40 pixels
    tri = Polygon([xy(30.2, 40.3), xy(47.9, 44.1), xy(35.6, 58.7)])
    edge = box(*xy(95, 5), *xy(120, 2))  # columns 95-99 in the scene, rows 2-4
    dot = Point(*xy(60.3, 70.6)).buffer(0.5)  # no pixel centre: the pixel it touches
    return gpd.GeoDataFrame({"name": ["rect", "tri", "edge", "dot"]}, geometry=[rect, tri, edge, dot], crs=crs)


def _centres_inside(geom, T, H, W):
    """The mask of pixels whose centre lies inside ``geom`` (shapely, independently of GDAL's rasterizer)."""
    import shapely

    cols, rows = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    xs = T.c + T.a * cols + T.b * rows
    ys = T.f + T.d * cols + T.e * rows
    pts = shapely.points(xs.ravel(), ys.ravel())
    inside = shapely.contains(geom, pts).reshape(H, W)
    # the fixture puts no centre near an edge, so a reprojection round trip cannot move one across it
    near = shapely.distance(geom.boundary, pts).reshape(H, W) < 1e-3
    assert not near.any()
    return inside


def test_drawn_polygons_with_scene_are_the_pixels_inside(tmp_path):
    """(b) a hand-drawn layer (no spectra table, no id; drawn in EPSG:4326, reprojected by the command): each
    polygon's spectrum is over exactly the pixels whose centre is inside it; the background over the rest; the
    peak is the pixel farthest from the background in standardised distance."""
    import pandas as pd

    cube, T, crs = read_cube()
    H, W, B = cube.shape
    layer = _drawn_layer(T, crs)
    layer.to_crs("EPSG:4326").to_file(tmp_path / "drawn.geojson")
    out = tmp_path / "drawn.csv"
    r = run("spectra", tmp_path / "drawn.geojson", SAMPLE, "--csv", out, "-q")
    assert r.exit_code == 0, r.output
    csv = pd.read_csv(out)
    masks = [_centres_inside(g, T, H, W) for g in layer.geometry[:3]]
    assert [int(m.sum()) for m in masks] == [40, int(masks[1].sum()), 15] and masks[1].sum() > 20
    dot = np.zeros((H, W), bool)
    dot[70, 60] = True
    masks.append(dot)
    assert not np.any(np.sum(masks, axis=0) > 1)
    union = np.any(masks, axis=0)
    bg_mean, bg_std = cube[~union].mean(axis=0), cube[~union].std(axis=0)
    for k, m in enumerate(masks, start=1):  # ids: layer order
        rows = csv[csv["id"] == k]
        px = cube[m]
        assert (rows["pixels"] == m.sum()).all(), k
        np.testing.assert_allclose(rows["mean"], px.mean(axis=0), rtol=1e-7)
        np.testing.assert_allclose(rows["std"], px.std(axis=0), rtol=1e-6, atol=1e-6)
        z = (px - bg_mean) / bg_std
        np.testing.assert_allclose(rows["peak"], px[np.argmax((z * z).sum(axis=1))], rtol=1e-7)
    bg = csv[csv["id"] == 0]
    assert (bg["pixels"] == int((~union).sum())).all()
    np.testing.assert_allclose(bg["mean"], bg_mean, rtol=1e-7)
    # the same layer in the scene's own CRS, in a GeoPackage under another layer name: the same table
    layer.to_file(tmp_path / "drawn.gpkg", layer="my polygons")
    r = run("spectra", tmp_path / "drawn.gpkg", SAMPLE, "--csv", tmp_path / "same.csv", "-q")
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "same.csv"), csv)


def test_detection_layer_without_table_uses_its_peaks(rx_run, tmp_path):
    """A detection layer written without spectra, given its scene, gives the table detect would have stored:
    its ids and its peak_x/peak_y pixels."""
    import pandas as pd

    d, _, _ = rx_run
    r = run("detect", "rx", SAMPLE, "-o", tmp_path / "rx.tif", "--vector", tmp_path / "bare.geojson",
            "--threshold", "percentile:99.8", "--no-spectra", "-q")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "bare_spectra.csv").exists()
    r = run("spectra", tmp_path / "bare.geojson", SAMPLE, "--csv", tmp_path / "from_scene.csv", "-q")
    assert r.exit_code == 0, r.output
    r = run("spectra", d / "rx.gpkg", "--csv", tmp_path / "stored.csv", "-q")
    assert r.exit_code == 0, r.output
    a, b = pd.read_csv(tmp_path / "stored.csv"), pd.read_csv(tmp_path / "from_scene.csv")
    pd.testing.assert_frame_equal(a, b, rtol=1e-8)


def test_wavelengths_and_gaps(rx_run, tmp_path):
    """A scene with wavelengths: the table takes them (from the detection run, or from SCENE for a table
    without them), and the plot's axis breaks where the water-vapour windows were dropped."""
    import pandas as pd

    from hadcore.io import write_cube
    from hadcore.plots import spectra_axis
    from hadcore.scene import open_scene
    from hadcore.vectorize import read_detection_spectra

    d, _, _ = rx_run
    cube, T, crs = read_cube()
    wl = np.linspace(366.0, 2496.0, cube.shape[2])  # assigned for the test (the sample holds none)
    write_cube(tmp_path / "wl.tif", cube.astype(np.uint16), crs=crs, transform=T, nodata=0, wavelengths=wl,
               wavelength_units="nanometers")
    # a stored table without wavelengths + SCENE of the same bands: the scene's wavelengths
    r = run("spectra", d / "rx.gpkg", tmp_path / "wl.tif", "--csv", tmp_path / "wl.csv", "-q")
    assert r.exit_code == 0, r.output
    got = pd.read_csv(tmp_path / "wl.csv")
    held = open_scene(tmp_path / "wl.tif").wavelengths  # as the GeoTIFF holds them (6 digits)
    np.testing.assert_allclose(held, wl, rtol=1e-5)
    np.testing.assert_allclose(got.loc[got["id"] == 1, "wavelength_nm"], held, rtol=1e-9)
    # detect with the water-vapour windows dropped: gaps in the axis there, none elsewhere
    r = run("detect", "rx", tmp_path / "wl.tif", "-o", tmp_path / "rx.tif", "--vector", tmp_path / "rx.geojson",
            "--threshold", "percentile:99.8", "--bad-bands", "auto", "-q")
    assert r.exit_code == 0, r.output
    found = read_detection_spectra(tmp_path / "rx.geojson")
    assert found.wavelengths is not None and found.n_bands < wl.size
    x, label, order, gaps = spectra_axis(found)
    assert label == "wavelength (nm)"
    spans = [(x[i], x[i + 1]) for i in gaps]
    assert any(a < 1400 < b for a, b in spans) and any(a < 1850 < b for a, b in spans)
    assert all(b - a > 50 for a, b in spans)
    from hadcore.plots import have_matplotlib

    if have_matplotlib():
        r = run("spectra", tmp_path / "rx.geojson", "-o", tmp_path / "wl.png", "--ids", "1-3", "-q")
        assert r.exit_code == 0, r.output
        assert (tmp_path / "wl.png").read_bytes()[:8] == PNG_MAGIC


def test_html_report(rx_run, tmp_path):
    pytest.importorskip("matplotlib")
    from hadcore.plots import plot_detection_spectra, spectra_html
    from hadcore.vectorize import read_detection_spectra

    d, _, _ = rx_run
    found = read_detection_spectra(d / "rx.gpkg")
    png = plot_detection_spectra(found, tmp_path / "p.png", ids=[1, 2],
                                 matches={1: {"match_1": "red <paint>", "angle_1": 3.25}})
    html = spectra_html(found, png, ids=[1, 2], matches={1: {"match_1": "red <paint>", "angle_1": 3.25}},
                        title="rx")
    assert "<table" in html and "data:image/png;base64," in html
    assert "red &lt;paint&gt; (3.2°)" in html or "red &lt;paint&gt; (3.3°)" in html
    assert f"<td>1</td><td align=\"right\">{int(found.pixels[0])}</td>" in html
    linked = spectra_html(found, png, embed=False)
    assert png.resolve().as_uri() in linked and "base64" not in linked


def test_one_line_errors_leave_no_output(rx_run, tmp_path):
    """(c) an unknown id, a layer without spectra and no SCENE, an existing output without --overwrite, a
    scene whose bands differ, polygons off the scene, no output asked for: exit 2, one line, nothing written."""
    import geopandas as gpd
    from shapely.geometry import box

    d, _, _ = rx_run
    user_error(run("spectra", d / "rx.gpkg", "--csv", tmp_path / "a.csv", "--ids", "1,99", "-q"),
               "no detection with id 99")
    no_leftovers(tmp_path, "a.csv")
    user_error(run("spectra", d / "rx.gpkg", "-o", tmp_path / "a.png", "--ids", "1,x", "-q"), "--ids")
    no_leftovers(tmp_path, "a.png")

    cube, T, crs = read_cube()
    _drawn_layer(T, crs).to_file(tmp_path / "drawn.gpkg")
    user_error(run("spectra", tmp_path / "drawn.gpkg", "--csv", tmp_path / "b.csv", "-q"),
               "carries no detection spectra; give the SCENE")
    no_leftovers(tmp_path, "b.csv")

    existing = tmp_path / "c.csv"
    existing.write_text("keep me\n")
    user_error(run("spectra", d / "rx.gpkg", "--csv", existing, "-q"), "exists; use --overwrite")
    assert existing.read_text() == "keep me\n"
    assert run("spectra", d / "rx.gpkg", "--csv", existing, "--overwrite", "-q").exit_code == 0
    assert existing.read_text().startswith("id,band,")

    user_error(run("spectra", d / "rx.gpkg", SAMPLE, "--bands", "1-100", "--csv", tmp_path / "d.csv", "-q"),
               "205 bands")
    no_leftovers(tmp_path, "d.csv")

    gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 100, 100)], crs=crs).to_file(tmp_path / "far.gpkg")
    user_error(run("spectra", tmp_path / "far.gpkg", SAMPLE, "--csv", tmp_path / "e.csv", "-q"),
               "covers a valid pixel")
    no_leftovers(tmp_path, "e.csv")

    user_error(run("spectra", d / "rx.gpkg", "--csv", d / "rx.gpkg", "--overwrite", "-q"), "over the input")
    r = run("spectra", d / "rx.gpkg", "-q")
    assert r.exit_code == 2 and "-o/--output" in r.output


def test_swath_product_layer_without_table_matches_detect(tmp_path):
    """An EMIT granule (swath scored, labelled on the GLT's map grid): a detection layer without spectra, given
    the granule, gives the table detect stores (map pixels read through the GLT; fill pixels and map pixels
    outside the swath are not the polygons')."""
    pytest.importorskip("netCDF4")
    import geopandas as gpd
    import pandas as pd
    import rasterio
    from conftest import load_scene
    from product_fixtures.emit import make_emit
    from shapely.geometry import box

    cube, _ = load_scene("abu-airport-1")
    granule = make_emit(tmp_path / "emit", cube[:40, :50], fill=[(5, 5), (6, 7)])
    for name, more in (("stored", []), ("bare", ["--no-spectra"])):
        r = run("detect", "rx", granule, "-o", tmp_path / f"{name}.tif", "--vector", tmp_path / f"{name}.gpkg",
                "--threshold", "percentile:99", "-q", *more)
        assert r.exit_code == 0, r.output
    assert run("spectra", tmp_path / "stored.gpkg", "--csv", tmp_path / "a.csv", "-q").exit_code == 0
    r = run("spectra", tmp_path / "bare.gpkg", granule, "--csv", tmp_path / "b.csv", "-q")
    assert r.exit_code == 0, r.output
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert a["id"].nunique() > 2
    pd.testing.assert_frame_equal(a, b, rtol=1e-7)
    # one polygon over the whole map grid: only the valid swath pixels the GLT maps
    with rasterio.open(tmp_path / "stored.tif") as src:
        bounds, crs, (H, W) = src.bounds, src.crs, src.shape
    gpd.GeoDataFrame({"n": [1]}, geometry=[box(*bounds)], crs=crs).to_file(tmp_path / "all.gpkg")
    r = run("spectra", tmp_path / "all.gpkg", granule, "--csv", tmp_path / "all.csv", "-q")
    assert r.exit_code == 0, r.output
    n = pd.read_csv(tmp_path / "all.csv").groupby("id")["pixels"].first()
    assert 0 < n[1] < H * W
    assert np.isfinite(pd.read_csv(tmp_path / "all.csv")["mean"]).all()
