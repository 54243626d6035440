"""One score-layer tag schema (hadcore.tags): written by every writer, read by every reader, old QGIS layers too."""

import json

import numpy as np
import pytest

import hadcore
from hadcore.errors import ParameterError
from hadcore.tags import band_ranges, check_fpr, declares_chi2, declares_null_law, read_score_tags, score_tags
from hadcore.threshold import NullLaw

pytestmark = pytest.mark.cli


def test_only_rx_and_lrx_declare_chi_square_scores():
    chi2 = {n for n in hadcore.list_detectors() if declares_chi2(n)}
    assert chi2 == {"rx", "lrx"}
    for n in hadcore.list_detectors():
        assert hadcore.get_detector_class(n).null_distribution in (None, "chi2", "beta", "normal"), n
    assert {n for n in hadcore.list_detectors() if declares_null_law(n)} == {"rx", "lrx", "ace", "mf"}
    assert not declares_chi2("no-such-detector") and not declares_null_law("no-such-detector")


def test_tags_round_trip():
    t = score_tags("rx", {"ridge": 0.5}, n_bands=30, bands=[0, 1, 2, 9], normalized=False, extra={"source": "a.tif"})
    assert t["detector"] == "rx" and json.loads(t["parameters"]) == {"ridge": 0.5}
    assert t["bands"] == "30" and t["band_list"] == "1-3,10" and t["null_distribution"] == "chi2"
    info = read_score_tags(t)
    assert (info.detector, info.n_bands, info.normalized, info.chi2) == ("rx", 30, False, True)
    assert check_fpr(info) == NullLaw.chi2(30) and check_fpr(info, 12) == NullLaw.chi2(12)
    assert "null_distribution" not in score_tags("aed", {}, n_bands=30)
    assert read_score_tags(score_tags("aed", {}, n_bands=30)).chi2 is False


def test_the_qgis_plugins_earlier_tags_still_read():
    old = {"HADCORE_DETECTOR": "rx", "HADCORE_PARAMS": "{}", "HADCORE_BANDS": "1-20", "HADCORE_N_BANDS": "20",
           "HADCORE_SCALED": "no", "HADCORE_VERSION": "0.1.0"}
    info = read_score_tags(old)
    assert (info.detector, info.n_bands, info.normalized, info.chi2) == ("rx", 20, False, True)
    assert check_fpr(info) == NullLaw.chi2(20)
    scaled = read_score_tags({**old, "HADCORE_SCALED": "yes"})
    with pytest.raises(ParameterError, match="scaled to 0-1"):
        check_fpr(scaled)
    with pytest.raises(ParameterError, match="known null distribution; this layer was made by 'crd'"):
        check_fpr(read_score_tags({**old, "HADCORE_DETECTOR": "crd"}))
    with pytest.raises(ParameterError, match="band count"):
        check_fpr(read_score_tags({}))
    assert read_score_tags({}).chi2 is None


def test_band_ranges():
    assert band_ranges([]) == "" and band_ranges([4]) == "5" and band_ranges([0, 1, 2, 5, 7, 8]) == "1-3,6,8-9"


@pytest.mark.parametrize("schema", ["qgis-earlier", "current"])
def test_cli_thresholds_a_layer_written_by_gdal_as_qgis_writes_it_with_fpr(tmp_path, schema):
    """A score layer whose tags sit in GDAL's default metadata domain (where the QGIS plugin writes them), in the
    plugin's earlier schema and in the current one: `hadcore vectorize --threshold fpr:` reads its band count."""
    from click.testing import CliRunner
    import rasterio
    from rasterio.transform import from_origin
    from scipy.stats import chi2

    from hadcore_cli.main import main as cli

    rng = np.random.default_rng(0)
    B = 10
    s = rng.chisquare(B, size=(60, 50)).astype(np.float32)
    s[20:23, 30:33] = 200.0  # a hot block
    path = tmp_path / "qgis_scores.tif"
    tags = (score_tags("rx", {}, n_bands=B, bands=list(range(B))) if schema == "current"
            else {"HADCORE_DETECTOR": "rx", "HADCORE_N_BANDS": str(B), "HADCORE_SCALED": "no"})
    with rasterio.open(path, "w", driver="GTiff", width=50, height=60, count=1, dtype="float32", crs="EPSG:32615",
                       transform=from_origin(500000.0, 3300000.0, 3.0, 3.0)) as dst:
        dst.write(s, 1)
        dst.update_tags(**tags)  # GDAL's default metadata domain, where the plugin's SetMetadata writes
    out = tmp_path / "det.geojson"
    r = CliRunner().invoke(cli, ["vectorize", str(path), "-o", str(out), "--threshold", "fpr:1e-3", "--quiet"])
    assert r.exit_code == 0, r.output
    import geopandas as gpd

    frame = gpd.read_file(out)
    expected = int((s >= chi2.ppf(1 - 1e-3, B)).sum())
    assert int(frame["pixels"].sum()) == expected and expected >= 9
