"""hadcore.detect with xarray in and out: rioxarray's CRS and transform kept, dask-backed input lazy, the band
coordinate's wavelengths and good-band flags honoured; a product path lands on its map grid."""

from __future__ import annotations

import numpy as np
import pytest

import hadcore
from conftest import SAMPLE_DIR, load_scene, require

rioxarray = require("rioxarray")
xr = require("xarray")

SAMPLE = SAMPLE_DIR / "abu-airport-1.tif"


@pytest.fixture(scope="module")
def da():
    return rioxarray.open_rasterio(SAMPLE)


def test_dataarray_in_dataarray_out_with_crs_and_transform(da):
    s = hadcore.detect("rx", da)
    assert isinstance(s, xr.DataArray) and s.dims == ("y", "x")
    assert s.rio.crs == da.rio.crs and s.rio.transform() == da.rio.transform()
    ref = hadcore.get_detector("rx").detect(np.moveaxis(da.values, 0, -1))
    np.testing.assert_allclose(s.values, ref, rtol=1e-5)
    # per-band attributes of the input (rioxarray's long_name tuple, GDAL statistics) are not the score's
    assert s.attrs["long_name"] == "rx anomaly score" and s.attrs["bands_used"] == da.sizes["band"]
    assert not any(k.startswith("STATISTICS_") for k in s.attrs)


def test_dask_backed_dataarray_gives_a_lazy_equal_result(da):
    require("dask")
    lazy = rioxarray.open_rasterio(SAMPLE, chunks={"x": 40, "y": 40})
    s = hadcore.detect("rx", lazy)
    assert type(s.data).__module__.startswith("dask")
    ref = hadcore.detect("rx", da)
    np.testing.assert_allclose(s.values, ref.values, rtol=1e-5)
    assert s.rio.crs == da.rio.crs


def test_band_coordinate_wavelengths_and_good_flags_select_bands(da):
    B = da.sizes["band"]
    wl_um = np.linspace(0.4, 2.5, B)
    good = np.ones(B, dtype=np.uint8)
    good[:5] = 0
    d = da.assign_coords(band=("band", wl_um), good_wavelengths=("band", good))
    d["band"].attrs["units"] = "micrometers"
    s = hadcore.detect("rx", d, wavelength_range=(400, 1000))  # nm, against a coordinate in um
    keep = [i for i in range(B) if good[i] and 400 <= wl_um[i] * 1e3 <= 1000]
    assert s.attrs["bands_used"] == len(keep) < B
    ref = hadcore.get_detector("rx").detect(np.moveaxis(da.values, 0, -1)[:, :, keep])
    np.testing.assert_allclose(s.values, ref, rtol=1e-5)
    # the same range in micrometres, and 'auto' also dropping the water-vapour windows
    s_um = hadcore.detect("rx", d, wavelength_range=(0.4, 1.0))
    np.testing.assert_array_equal(s_um.values, s.values)
    auto = hadcore.detect("rx", d, bad_bands="auto")
    n_wv = sum(1 for i in range(B) if good[i] and any(a <= wl_um[i] * 1e3 < b for a, b in
                                                      ((1350, 1450), (1800, 1950), (2450, np.inf))))
    assert auto.attrs["bands_used"] == int(good.sum()) - n_wv


def test_band_numbers_are_not_wavelengths(da):
    """rioxarray's band coordinate 1..B is not a wavelength axis: a wavelength range is refused."""
    with pytest.raises(hadcore.ParameterError, match="no band wavelengths"):
        hadcore.detect("rx", da, wavelength_range=(400, 1000))


def test_product_path_scores_land_on_the_glt_grid(tmp_path):
    from product_fixtures.emit import make_emit

    cube, gt = load_scene("hydice-162")
    path = make_emit(tmp_path, cube[:30, :40], gt[:30, :40])
    s = hadcore.detect("rx", str(path))
    import h5py

    with h5py.File(path) as f:
        gy, gx = f["location/glt_y"][()], f["location/glt_x"][()]
    assert s.shape == gy.shape
    assert np.isnan(s[(gy == 0) | (gx == 0)]).all() and np.isfinite(s[(gy > 0) & (gx > 0)]).any()
