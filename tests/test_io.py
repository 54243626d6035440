"""Raster I/O: formats, band selection, masks, georeference round trip, safe writing."""

import numpy as np
import pytest
from conftest import SAMPLE_DIR, load_scene

import rasterio  # noqa: E402
from affine import Affine  # noqa: E402
from rasterio.crs import CRS  # noqa: E402

from hadcore.errors import FileError, InputError, OverwriteError, ParameterError  # noqa: E402
from hadcore.io import atomic_output, read_raster, read_scores, write_cube, write_scores  # noqa: E402

T = Affine(2.0, 0.0, 1000.0, 0.0, -2.0, 5000.0)
CRS_ = CRS.from_epsg(32633)


@pytest.fixture
def scene_tif(tmp_path):
    cube, gt = load_scene("hydice-162")
    cube = cube[:30, :40, :20]
    cube[0, 0] = -9999  # a nodata pixel
    wl = np.linspace(0.4, 2.5, 20)
    p = tmp_path / "scene.tif"
    write_cube(p, cube, crs=CRS_, transform=T, wavelengths=wl, nodata=-9999)
    write_cube(tmp_path / "scene_gt.tif", gt[:30, :40], crs=CRS_, transform=T)
    return p, cube, gt[:30, :40], wl


def test_geotiff_round_trip_keeps_georeference_wavelengths_and_gt(scene_tif):
    p, cube, gt, wl = scene_tif
    r = read_raster(p)
    assert r.cube.shape == cube.shape and r.cube.dtype == np.float32
    np.testing.assert_array_equal(r.cube, cube)
    assert r.crs == CRS_ and r.transform == T and r.nodata == -9999
    np.testing.assert_allclose(r.wavelengths, wl, rtol=1e-5)
    assert not r.mask[0, 0] and r.mask.sum() == cube.shape[0] * cube.shape[1] - 1
    np.testing.assert_array_equal(r.gt, gt)


def test_band_selection_by_index_wavelength_and_bad_bands(scene_tif):
    p, cube, _, wl = scene_tif
    r = read_raster(p, bands="1-5,10")
    np.testing.assert_array_equal(r.cube, cube[:, :, [0, 1, 2, 3, 4, 9]])
    r = read_raster(p, wavelength_range=(1.0, 1.6))
    keep = np.flatnonzero((wl >= 1.0) & (wl <= 1.6))
    np.testing.assert_array_equal(r.cube, cube[:, :, keep])
    r = read_raster(p, bad_bands="2-19")
    np.testing.assert_array_equal(r.cube, cube[:, :, [0, 19]])
    with pytest.raises(ParameterError, match="outside 1-20"):
        read_raster(p, bands="1-21")
    with pytest.raises(ParameterError, match="bad band spec"):
        read_raster(p, bands="a-b")
    with pytest.raises(ParameterError, match="no band in wavelength range"):
        read_raster(p, wavelength_range=(5.0, 6.0))


def test_npz_and_mat_scenes(tmp_path):
    from scipy.io import savemat

    cube, gt = load_scene("pavia-100")
    savemat(tmp_path / "p.mat", {"data": cube[:20, :20], "map": gt[:20, :20]})
    r = read_raster(tmp_path / "p.mat")
    np.testing.assert_array_equal(r.cube, cube[:20, :20])
    np.testing.assert_array_equal(r.gt, gt[:20, :20])
    np.savez(tmp_path / "p.npz", cube=cube[:20, :20], gt=gt[:20, :20])
    assert read_raster(tmp_path / "p.npz", bands="1-3").cube.shape == (20, 20, 3)
    np.savez(tmp_path / "bad.npz", other=cube[:2])
    with pytest.raises(FileError, match="needs an array 'cube'"):
        read_raster(tmp_path / "bad.npz")


def test_missing_unreadable_and_nan_inputs(tmp_path):
    with pytest.raises(FileError, match="not found"):
        read_raster(tmp_path / "nope.tif")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    with pytest.raises(FileError, match="cannot read"):
        read_raster(tmp_path / "junk.tif")
    cube = np.random.default_rng(0).random((10, 10, 4)).astype(np.float32)
    cube[2, 2, 1] = np.nan
    cube[3, 3] = 0
    write_cube(tmp_path / "nan.tif", cube)
    r = read_raster(tmp_path / "nan.tif")
    assert not r.mask[2, 2] and not r.mask[3, 3] and r.mask.sum() == 98


def test_write_scores_keeps_georeference_nodata_and_tags(tmp_path, scene_tif):
    p, *_ = scene_tif
    r = read_raster(p)
    scores = np.random.default_rng(1).random(r.mask.shape).astype(np.float32)
    scores[~r.mask] = np.nan
    out = tmp_path / "s.tif"
    write_scores(out, scores, crs=r.crs, transform=r.transform, input_nodata=r.nodata, detector="rx",
                 params={"ridge": 0.0}, n_bands=20)
    with rasterio.open(out) as src:
        assert src.count == 1 and src.dtypes[0] == "float32"
        assert src.crs == CRS_ and src.transform == T and src.nodata == -9999
        assert src.profile.get("tiled") and src.compression is not None
        tags = src.tags()
        assert tags["detector"] == "rx" and tags["bands"] == "20" and '"ridge": 0.0' in tags["parameters"]
        assert src.descriptions[0] == "rx anomaly score"
    s, _, _ = read_scores(out)
    np.testing.assert_array_equal(np.isnan(s), ~r.mask)
    np.testing.assert_allclose(s[r.mask], scores[r.mask])


def test_normalized_scores_and_nodata_clash(tmp_path):
    scores = np.array([[0.0, 1.0], [3.0, np.nan]], dtype=np.float32)
    write_scores(tmp_path / "n.tif", scores, input_nodata=0.0, normalize=True)
    s, georef, tags = read_scores(tmp_path / "n.tif")
    assert georef["nodata"] == 0.0 and tags["normalized"] == "true"
    assert np.isnan(s[1, 1]) and s[0, 0] > 0 and s[0, 0] < 1e-30  # the minimum stays valid
    np.testing.assert_allclose(s[0, 1:], [1 / 3]), np.testing.assert_allclose(s[1, 0], 1.0)


def test_existing_output_is_kept_and_failures_leave_nothing(tmp_path):
    out = tmp_path / "s.tif"
    out.write_bytes(b"precious")
    with pytest.raises(OverwriteError, match="--overwrite"):
        write_scores(out, np.ones((4, 4), np.float32))
    assert out.read_bytes() == b"precious"
    with pytest.raises(RuntimeError):
        with atomic_output(out, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert out.read_bytes() == b"precious"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.tif"]
    with pytest.raises(InputError):
        write_scores(tmp_path / "x.tif", np.ones((4, 4, 2), np.float32))
    with pytest.raises(FileError, match="output folder does not exist"):
        write_scores(tmp_path / "no" / "x.tif", np.ones((4, 4), np.float32))


def test_sample_data_is_georeferenced_with_ground_truth():
    r = read_raster(SAMPLE_DIR / "abu-airport-1.tif")
    assert r.cube.shape == (100, 100, 205) and r.crs.to_epsg() == 32611
    assert r.transform.a == pytest.approx(7.1) and r.gt is not None and r.gt.sum() == 144
    assert r.mask.all()
    cube, gt = load_scene("abu-airport-1")
    np.testing.assert_array_equal(r.cube, cube)


def test_band_metadata_round_trip_as_enmap_box_reads_it(tmp_path):
    """write_cube's band-level wavelength / wavelength_units / fwhm / bbl come back through open_scene: units
    normalised to nm, bbl 0 dropped by default and kept with bad_bands='none'."""
    import rasterio

    from hadcore.scene import open_scene

    cube = np.random.default_rng(0).random((12, 10, 6)).astype(np.float32)
    wl = np.array([0.45, 0.55, 0.65, 1.40, 1.60, 2.20])
    bbl = [1, 1, 1, 0, 1, 1]
    p = write_cube(tmp_path / "c.tif", cube, wavelengths=wl, wavelength_units="micrometers", fwhm=wl * 0.01,
                   bbl=bbl)
    with rasterio.open(p) as ds:
        assert ds.tags(4) == {"wavelength": "1.4", "wavelength_units": "micrometers", "fwhm": "0.014", "bbl": "0"}
    sc = open_scene(p)
    assert sc.band_indices == [0, 1, 2, 4, 5]
    np.testing.assert_allclose(sc.wavelengths, wl[[0, 1, 2, 4, 5]] * 1e3)
    np.testing.assert_allclose(sc.fwhm, wl[[0, 1, 2, 4, 5]] * 10)
    assert open_scene(p, bad_bands="none").band_indices == list(range(6))
    # 'auto' also drops the 2.2 um band? no: only beyond 2.45 um; 1.4 um is already flagged
    assert open_scene(p, bad_bands="auto").band_indices == [0, 1, 2, 4, 5]
    assert open_scene(p, wavelength_range=(500, 1700)).band_indices == [1, 2, 4]


def test_wavelengths_from_gdal_imagery_domain_first(tmp_path):
    """GDAL >= 3.10's IMAGERY domain (CENTRAL_WAVELENGTH_UM, FWHM_UM) wins over band-level keys."""
    import rasterio

    from hadcore.scene import open_scene

    cube = np.random.default_rng(1).random((8, 9, 4)).astype(np.float32)
    p = write_cube(tmp_path / "im.tif", cube, wavelengths=[1, 2, 3, 4], wavelength_units="nm")  # band numbers
    with rasterio.open(p, "r+") as ds:
        for i, (c, f) in enumerate([(0.5, 0.01), (0.6, 0.01), (0.7, 0.012), (0.8, 0.012)], start=1):
            ds.update_tags(i, ns="IMAGERY", CENTRAL_WAVELENGTH_UM=str(c), FWHM_UM=str(f))
    sc = open_scene(p)
    np.testing.assert_allclose(sc.wavelengths, [500, 600, 700, 800])
    np.testing.assert_allclose(sc.fwhm, [10, 10, 12, 12])
    assert open_scene(p, wavelength_range=(550, 750)).band_indices == [1, 2]
    # without the IMAGERY domain, band numbers 1..4 "nm" are not wavelengths: a range is refused
    q = write_cube(tmp_path / "plain.tif", cube, wavelengths=[1, 2, 3, 4], wavelength_units="nm")
    assert open_scene(q).wavelengths is None
    with pytest.raises(ParameterError, match="no band wavelengths"):
        open_scene(q, wavelength_range=(1, 3))


@pytest.mark.parametrize("bad_bands", [None, "none", "auto", "auto,2", "5-6"])
def test_read_raster_chooses_the_bands_open_scene_chooses(tmp_path, bad_bands):
    """One band rule: read_raster (training, the benchmark) and open_scene (detect, Python, QGIS) take the same
    bands of a GeoTIFF with ``bbl`` flags, a constant band and bands in a water-vapour window, and of an .npz."""
    from hadcore.scene import open_scene

    cube = load_scene("abu-urban-1")[0][:24, :24, ::17].copy()  # 12 bands
    B = cube.shape[2]
    cube[:, :, 2] = 7.0  # constant ("auto" drops it)
    wl = np.linspace(420.0, 2400.0, B)  # band 9 at 1860 nm: a water-vapour window
    p = tmp_path / "flags.tif"
    write_cube(p, cube, crs=CRS_, transform=T, wavelengths=wl, wavelength_units="nm",
               bbl=[b != 3 for b in range(B)])
    r, sc = read_raster(p, bad_bands=bad_bands), open_scene(p, bad_bands=bad_bands)
    assert r.band_indices == sc.band_indices
    np.testing.assert_array_equal(r.cube, sc.source.read(0, 24, 0, 24))
    # bbl: 1 band; auto: + the 1860 nm band and the constant one; a list: + its bands
    expected = {None: 1, "none": 0, "auto": 1 + 2, "auto,2": 1 + 2 + 1, "5-6": 1 + 2}[bad_bands]
    assert B - len(r.band_indices) == expected
    assert (3 in r.band_indices) == (bad_bands == "none")  # band 4 flagged bbl = 0

    np.savez(tmp_path / "flags.npz", cube=cube, gt=np.zeros(cube.shape[:2], np.uint8))
    r, sc = read_raster(tmp_path / "flags.npz", bad_bands=bad_bands), open_scene(tmp_path / "flags.npz",
                                                                                  bad_bands=bad_bands)
    assert r.band_indices == sc.band_indices
    assert (2 in r.band_indices) == (bad_bands not in ("auto", "auto,2"))  # an array has no flags: constant only
    import hadcore

    # Python on the array in memory chooses as the file readers do (an array carries no flags)
    np.testing.assert_allclose(hadcore.detect("rx", cube, bad_bands=bad_bands),
                               hadcore.detect("rx", str(tmp_path / "flags.npz"), bad_bands=bad_bands),
                               rtol=1e-5, equal_nan=True)
