"""One band rule: the same GeoTIFF gets the same bands and scores in QGIS as in the CLI and Python.

The CLI (``hadcore detect``) and Python (``hadcore.detect``) open a file with ``hadcore.scene.open_scene``; the
plugin reads the layer through GDAL and asks ``hadcore.scene.raster_bands`` (through ``gdal_io.choose_bands``). A
12-band crop of abu-urban-1 carries wavelengths (420-2400 nm) and an ENVI-style ``bbl`` per band (band 4 flagged
bad); in the second file band 3 holds only the nodata value. ``BAD_BANDS`` as the CLI's ``--bad-bands``: default
(the file's flags), ``none``, ``auto`` (also water-vapour windows and constant or empty bands), a list.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import NODATA, load_npz, read_raster

WAVELENGTHS = np.linspace(420.0, 2400.0, 12)
BAD = 3  # 0-based: band 4 flagged bad (bbl = 0)
EMPTY = 2  # 0-based: band 3 all nodata in the second file
VAPOUR = 8  # 0-based: band 9, at 1860 nm, in a water-vapour window ("auto" drops it)


def _write(path, cube, nodata=None):
    from osgeo import gdal

    H, W, B = cube.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), W, H, B, gdal.GDT_Float32, ["INTERLEAVE=BAND"])
    ds.SetGeoTransform((500000.0, 3.5, 0.0, 3300000.0, 0.0, -3.5))
    for b in range(B):
        band = ds.GetRasterBand(b + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(cube[:, :, b])
        band.SetMetadata({"wavelength": f"{WAVELENGTHS[b]:.1f}", "wavelength_units": "Nanometers",
                          "bbl": "0" if b == BAD else "1"})
    ds = None
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    cube, _ = load_npz("abu-urban-1")
    crop = cube[20:60, 30:70, ::17][:, :, :12].astype(np.float32).copy()
    d = tmp_path_factory.mktemp("bands")
    with_empty = crop.copy()
    with_empty[:, :, EMPTY] = NODATA
    return {"bbl": _write(d / "bbl.tif", crop), "empty": _write(d / "bbl_empty.tif", with_empty, nodata=NODATA)}


def _cli_and_python(path, bad_bands):
    """What ``hadcore detect rx`` and ``hadcore.detect`` use and compute: (0-based bands, scores)."""
    from hadcore import get_detector
    from hadcore.engine import ArraySink, run
    from hadcore.scene import open_scene

    scene = open_scene(path, bad_bands=bad_bands)
    sink = ArraySink(*scene.shape[:2])
    run(get_detector("rx"), scene.source, sink)
    return list(scene.band_indices), sink.array


@pytest.mark.parametrize("case, bad_bands, dropped", [("bbl", None, {BAD}), ("bbl", "none", set()),
                                                     ("empty", "auto", {BAD, EMPTY, VAPOUR}),
                                                     ("bbl", "auto,1", {0, BAD, VAPOUR})])
def test_qgis_chooses_the_bands_and_scores_of_the_cli(plugin, files, tmp_path, case, bad_bands, dropped):
    import processing
    from osgeo import gdal

    from hadcore.tags import band_ranges

    path = files[case]
    bands, expected = _cli_and_python(path, bad_bands)
    assert set(range(12)) - set(bands) == dropped
    out = tmp_path / "rx.tif"
    processing.run("hadcore:rx", {"INPUT": str(path), "BAD_BANDS": bad_bands or "", "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("band_list") == band_ranges(bands)
    assert ds.GetMetadataItem("bands") == str(len(bands))
    ds = None
    scores = read_raster(out)[0]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6 * np.nanmax(np.abs(expected)))


def test_a_library_target_is_resampled_to_the_layers_bands_as_in_python(plugin, files, tmp_path):
    """Target detectors from the dialog: TARGET = LIBRARY.sli:NAME, resampled to the layer's own wavelengths
    (its flagged band dropped), the same scores as hadcore.detect on the file; a name not in the library stops
    the algorithm with the close names."""
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    import hadcore
    from hadcore.library import SpectralLibrary, write_library

    wl = np.arange(400.0, 2451.0, 5.0)
    lib = SpectralLibrary(names=["red paint", "grey"], wavelengths=wl,
                          spectra=np.stack([800 + 400 * np.exp(-0.5 * ((wl - 650) / 60) ** 2), np.full(wl.size, 900.0)]))
    write_library(lib, tmp_path / "lib.sli")
    spec = f"{tmp_path / 'lib.sli'}:red paint"
    out = tmp_path / "ace.tif"
    processing.run("hadcore:ace", {"INPUT": str(files["bbl"]), "TARGET": spec, "OUTPUT": str(out)},
                   feedback=QgsProcessingFeedback())
    ours = read_raster(out)[0]
    ref = hadcore.detect("ace", str(files["bbl"]), target=spec)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)
    with pytest.raises(QgsProcessingException, match="close names: red paint"):
        processing.run("hadcore:ace", {"INPUT": str(files["bbl"]), "TARGET": f"{tmp_path / 'lib.sli'}:red pain",
                                       "OUTPUT": str(tmp_path / "bad.tif")}, feedback=QgsProcessingFeedback())
    assert not (tmp_path / "bad.tif").exists()
