import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from hadcore.components import label_detections
from hadcore.errors import FileError, InputError, ParameterError
from hadcore.threshold import otsu, parse_threshold, threshold_value
from hadcore.vectorize import detections_to_frame, write_detections

T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


def blobs():
    s = np.zeros((20, 20))
    s[2:4, 2:5] = 5.0          # 6 pixels, peak 5 (with one 6 below)
    s[3, 4] = 6.0
    s[10, 10] = 9.0            # diagonal pair: one component with 8-neighbours, two with 4
    s[11, 11] = 8.0
    s[15, 15] = 3.0
    s[0, 19] = np.nan
    return s


def test_threshold_specs():
    s = np.arange(100, dtype=float)
    assert threshold_value(s, "value:42") == 42
    assert threshold_value(s, "percentile:90") == pytest.approx(89.1)
    assert threshold_value(s, "top:5") == 95
    assert threshold_value(s, "top:500") == 0
    from scipy.stats import chi2

    assert threshold_value(s, "fpr:1e-3", n_bands=10) == pytest.approx(chi2.isf(1e-3, 10))
    bimodal = np.r_[np.zeros(100), np.full(20, 10.0)]
    assert 0 < otsu(bimodal) <= 10
    for bad in ("percentile:100", "top:0", "top:1.5", "fpr:2", "foo:1", "value:abc", "otsu:3", "value"):
        with pytest.raises(ParameterError):
            parse_threshold(bad)
    with pytest.raises(ParameterError, match="band count"):
        threshold_value(s, "fpr:0.01")
    with pytest.raises(InputError):
        threshold_value(np.full(4, np.nan), "otsu")


def test_components_connectivity_min_size_and_attributes():
    s = blobs()
    labels, table = label_detections(s, "value:3", connectivity=8)
    assert [d["pixels"] for d in table] == [2, 6, 1]   # ordered by peak: 9, 6, 3
    assert table[0]["peak"] == 9 and table[0]["mean"] == 8.5
    assert (table[1]["peak_row"], table[1]["peak_col"]) == (3, 4)
    assert labels.max() == 3 and (labels > 0).sum() == 9
    _, t4 = label_detections(s, "value:3", connectivity=4)
    assert len(t4) == 4
    _, big = label_detections(s, "value:3", min_size=2)
    assert [d["pixels"] for d in big] == [2, 6]
    with pytest.raises(ParameterError):
        label_detections(s, "value:3", connectivity=6)


def test_polygons_have_crs_area_and_peak_coordinates(tmp_path):
    crs = CRS.from_epsg(32633)
    f = detections_to_frame(blobs(), "value:3", transform=T, crs=crs)
    assert len(f) == 3 and f.crs == crs
    assert list(f["area"]) == [200.0, 600.0, 100.0]
    np.testing.assert_allclose(f.geometry.area, f["area"])  # polygons cover exactly their pixels
    assert (f.loc[0, "peak_x"], f.loc[0, "peak_y"]) == (500105.0, 3999895.0)
    for ext in ("gpkg", "geojson", "shp"):
        out = tmp_path / f"d.{ext}"
        write_detections(f, out)
        import geopandas as gpd

        back = gpd.read_file(out)
        assert len(back) == 3 and back.crs.to_epsg() == 32633
        assert sorted(back["pixels"]) == [1, 2, 6]


def test_no_detection_gives_a_valid_empty_layer(tmp_path):
    import geopandas as gpd

    f = detections_to_frame(blobs(), "value:100", transform=T, crs=CRS.from_epsg(32633))
    assert len(f) == 0
    for ext in ("gpkg", "geojson", "shp"):
        write_detections(f, tmp_path / f"e.{ext}")
        back = gpd.read_file(tmp_path / f"e.{ext}")
        assert len(back) == 0
        if ext != "geojson":  # GeoJSON has no schema without features
            assert "peak" in back.columns
    with pytest.raises(FileError, match="unknown vector format"):
        write_detections(f, tmp_path / "e.kml")
