"""Null laws (hadcore.threshold.NullLaw): ``fpr:R`` thresholds for RX (chi-square), ACE (beta, signed-beta) and MF
(normal). On Gaussian backgrounds with a real scene's statistics the threshold flags R of the pixels within
sampling error; the law travels with a score layer as its ``null_law`` tag; old chi-square layers still read;
detectors without a law are one-line errors."""

import json

import numpy as np
import pytest
from conftest import load_scene

import hadcore
from hadcore.components import label_detections
from hadcore.errors import ParameterError
from hadcore.registry import get_detector_class
from hadcore.tags import check_fpr, read_score_tags, score_tags
from hadcore.targets import Whitener, ace_scores, mf_scores
from hadcore.threshold import NullLaw, threshold_value

R = 1e-2


def within_sampling_error(flagged: np.ndarray, r: float = R, z: float = 4.5) -> bool:
    """The share of True in ``flagged`` is ``r`` within ``z`` binomial standard errors."""
    n = flagged.size
    return abs(flagged.mean() - r) <= z * np.sqrt(r * (1 - r) / n)


@pytest.fixture(scope="module")
def urban():
    """abu-urban-1 (100 x 100 x 204): the background's mean and covariance (pixels outside the ground truth) and
    the mean spectrum of its anomalies as the target."""
    cube, gt = load_scene("abu-urban-1")
    X = cube.reshape(-1, cube.shape[2]).astype(np.float64)
    bg = X[gt.ravel() == 0]
    return cube, gt, bg.mean(0), np.cov(bg, rowvar=False), X[gt.ravel() == 1].mean(0)


def gaussian(mean, cov, n, seed):
    rng = np.random.default_rng(seed)
    return mean + rng.standard_normal((n, mean.size)) @ np.linalg.cholesky(cov).T


def build(name, target=None, **params):
    det = get_detector_class(name)(**params)
    if target is not None:
        det.set_spectrum("target", target)
    return det


# ------------------------------------------------------------------------------------------------ the laws
def test_null_law_text_round_trip():
    laws = [NullLaw.chi2(224), NullLaw.normal(0, 0.0123), NullLaw.beta(0.5, 111.5), NullLaw.signed_beta(0.5, 9.5),
            NullLaw.normal(-1.5, 1 / np.sqrt(7.0)), NullLaw.chi2(2.5), NullLaw.normal(0, 1e-7)]
    assert [str(law) for law in laws[:4]] == ["chi2:224", "normal:0:0.0123", "beta:0.5:111.5", "signed-beta:0.5:9.5"]
    for law in laws:
        back = NullLaw.parse(str(law))
        assert back == law and back.params == law.params and str(back) == str(law)  # exact, to the last bit
    assert NullLaw.parse(" Chi2:30 ") == NullLaw.chi2(30) and NullLaw.parse(laws[0]) is laws[0]
    for bad in ("chi2", "chi2:0", "chi2:1:2", "normal:0", "normal:0:-1", "beta:0.5:x", "gamma:1:2", "beta:nan:1", ""):
        with pytest.raises(ParameterError) as e:
            NullLaw.parse(bad)
        assert "\n" not in str(e.value), bad


def test_isf_is_scipy_stats_and_inverts_sf():
    from scipy import stats

    B = 50
    for r in (1e-6, 1e-3, R, 0.3, 0.5, 0.9):
        assert NullLaw.chi2(B).isf(r) == pytest.approx(stats.chi2.isf(r, B), rel=1e-10)
        assert NullLaw.normal(2.0, 0.5).isf(r) == pytest.approx(stats.norm.isf(r, 2.0, 0.5), rel=1e-10, abs=1e-12)
        assert NullLaw.beta(0.5, (B - 1) / 2).isf(r) == pytest.approx(stats.beta.isf(r, 0.5, (B - 1) / 2), rel=1e-8)
        for law in (NullLaw.chi2(B), NullLaw.normal(2.0, 0.5), NullLaw.beta(0.5, 24.5), NullLaw.signed_beta(0.5, 24.5)):
            assert law.sf(law.isf(r)) == pytest.approx(r, rel=1e-8), (law, r)
    # signed: the positive tail is half the squared law's; symmetric about 0
    sb, b = NullLaw.signed_beta(0.5, 24.5), NullLaw.beta(0.5, 24.5)
    assert sb.isf(R) == pytest.approx(np.sqrt(b.isf(2 * R)), rel=1e-12)
    assert sb.isf(1 - R) == pytest.approx(-sb.isf(R), rel=1e-12) and sb.isf(0.5) == 0.0
    with pytest.raises(ParameterError, match="false-alarm rate"):
        b.isf(1.0)


def test_threshold_value_uses_the_law_and_keeps_the_chi_square_default():
    from scipy.stats import chi2

    s = np.linspace(0, 1, 101)
    law = NullLaw.normal(0.1, 0.02)
    assert threshold_value(s, "fpr:1e-2", null=law) == law.isf(R)
    assert threshold_value(s, "fpr:1e-2", null="normal:0.1:0.02") == law.isf(R)  # its text
    assert threshold_value(s, "fpr:1e-3", n_bands=10) == pytest.approx(chi2.isf(1e-3, 10))  # as before laws
    assert threshold_value(s, "fpr:1e-3", n_bands=10, null=law) == law.isf(1e-3)  # the law wins
    assert threshold_value(s, "fpr:1e-2", n_bands=law) == law.isf(R)  # a law handed on as n_bands (QGIS tool)
    assert threshold_value(s, "percentile:50", null=law) == pytest.approx(0.5)  # other specs ignore it
    with pytest.raises(ParameterError, match="null law, or the band count"):
        threshold_value(s, "fpr:0.01")
    labels, table = label_detections(s.reshape(1, -1), "fpr:1e-2", null=law)
    assert table[0]["threshold"] == law.isf(R) and (labels > 0).sum() == int((s >= law.isf(R)).sum())


# ------------------------------------------------------------------------------------------------ calibration
def test_fpr_flags_r_of_a_gaussian_background_with_a_real_scenes_statistics(urban):
    """Gaussian pixels with abu-urban-1's background mean and covariance (204 bands), scored with those true
    statistics: each law's fpr:1e-2 threshold flags 1 % of them within sampling error."""
    _, _, mu, C, t = urban
    B = mu.size
    Y = gaussian(mu, C, 60_000, seed=0)
    w = Whitener(mu, C)
    s = w(t)
    Z = w(Y)
    cases = {
        "ace": (ace_scores(w, Y, t), NullLaw.beta(0.5, (B - 1) / 2)),
        "ace signed": (ace_scores(w, Y, t, signed=True), NullLaw.signed_beta(0.5, (B - 1) / 2)),
        "mf zscore": (mf_scores(w, Y, t, zscore=True), NullLaw.normal(0, 1)),
        "mf target": (mf_scores(w, Y, t), NullLaw.normal(0, 1 / np.sqrt(s @ s))),
        "rx": (np.einsum("ij,ij->i", Z, Z), NullLaw.chi2(B)),
    }
    for name, (scores, law) in cases.items():
        flagged = scores >= threshold_value(scores, "fpr:1e-2", null=law)
        assert within_sampling_error(flagged), (name, flagged.mean())
    # the signed cosine needs its own law: at the squared law's threshold (its square root) it flags only the
    # positively correlated half, R / 2
    assert within_sampling_error(cases["ace signed"][0] >= np.sqrt(cases["ace"][1].isf(R)), R / 2)


def test_the_detectors_give_their_laws_and_flag_r_of_a_simulated_gaussian_scene(urban):
    """The registry detectors on a Gaussian scene (50 000 pixels, every 8th band of abu-urban-1's background
    statistics): fitted on the scene itself (estimated statistics), their null_law's fpr:1e-2 flags 1 %."""
    _, _, mu, C, t = urban
    idx = np.arange(0, mu.size, 8)
    mu, C, t = mu[idx], C[np.ix_(idx, idx)], t[idx]
    B = idx.size
    cube = gaussian(mu, C, 250 * 200, seed=1).reshape(250, 200, B).astype(np.float32)
    cases = [("ace", {}, f"beta:0.5:{(B - 1) / 2:g}"), ("ace", {"signed": True}, f"signed-beta:0.5:{(B - 1) / 2:g}"),
             ("mf", {"scale": "zscore"}, "normal:0:1"), ("mf", {"scale": "target"}, None), ("rx", {}, f"chi2:{B}")]
    for name, params, text in cases:
        det = build(name, None if name == "rx" else t, **params)
        if (name, params) == ("mf", {"scale": "target"}):
            with pytest.raises(ParameterError, match="known after fit"):
                det.null_law(B)
        scores = det.detect(cube)
        law = det.null_law(B)
        if text is not None:
            assert str(law) == text
        else:  # normal(0, 1 / sqrt(s^T s)) with the scene's own statistics: the scores' standard deviation
            assert law.kind == "normal" and law.params[0] == 0
            assert np.std(scores) == pytest.approx(law.params[1], rel=1e-3)
        if name != "rx":
            assert det.run_report() == {"null_law": str(law)}
        labels, table = label_detections(scores, "fpr:1e-2", null=law, connectivity=4)
        assert table and table[0]["threshold"] == law.isf(R)
        assert within_sampling_error(labels > 0), (name, params, (labels > 0).mean())


def test_on_the_real_scene_the_laws_scale_is_its_scores_and_targets_pass_fpr(urban):
    """abu-urban-1 itself, with the mean anomaly spectrum as target: MF's scores have exactly the law's mean and
    scale over the scene (the law's Gaussian shape is the assumption); fpr:1e-2 keeps most anomaly pixels and
    flags under 5 % of the (non-Gaussian) background."""
    cube, gt, _, _, t = urban
    B = cube.shape[2]
    anomaly = gt.astype(bool)
    for params in ({"scale": "zscore"}, {"scale": "target"}):
        det = build("mf", t, **params)
        s = det.detect(cube).astype(np.float64)
        law = det.null_law()
        n = s.size
        assert abs(s.mean()) <= 1e-5 * law.params[1]
        assert s.std() * np.sqrt(n / (n - 1)) == pytest.approx(law.params[1], rel=1e-4)
        flagged = s >= law.isf(R)
        assert flagged[anomaly].mean() > 0.9 and flagged[~anomaly].mean() < 0.05, params
    for signed in (False, True):
        det = build("ace", t, signed=signed)
        s = det.detect(cube)
        flagged = s >= det.null_law(B).isf(R)
        assert flagged[anomaly].mean() > 0.9 and flagged[~anomaly].mean() < 0.05, signed


# ------------------------------------------------------------------------------------------------ tags
def test_score_tags_carry_the_law_and_check_fpr_returns_it():
    t = score_tags("ace", {"target": "1,2,3", "signed": False}, n_bands=224)
    assert (t["null_distribution"], t["null_law"]) == ("beta", "beta:0.5:111.5")
    info = read_score_tags(t)
    assert info.null_law == NullLaw.beta(0.5, 111.5) and info.null_distribution == "beta" and info.chi2 is False
    assert check_fpr(info) == NullLaw.beta(0.5, 111.5)
    assert score_tags("ace", {"signed": True}, n_bands=3)["null_law"] == "signed-beta:0.5:1"
    assert score_tags("mf", {"scale": "zscore"}, n_bands=30)["null_law"] == "normal:0:1"
    # MF on the target scale: the law needs the fit; a run's report (extra) or the caller gives it
    assert "null_law" not in score_tags("mf", {"scale": "target"}, n_bands=30)
    assert score_tags("mf", {}, n_bands=30, extra={"null_law": "normal:0:0.25"})["null_law"] == "normal:0:0.25"
    assert score_tags("mf", {}, n_bands=30, null_law=NullLaw.normal(0, 0.5))["null_law"] == "normal:0:0.5"
    rx = score_tags("rx", {}, n_bands=30)
    assert (rx["null_distribution"], rx["null_law"]) == ("chi2", "chi2:30")
    assert check_fpr(read_score_tags(rx)) == NullLaw.chi2(30) and check_fpr(read_score_tags(rx), 12) == NullLaw.chi2(12)


def test_old_chi_square_layers_still_threshold():
    # written before null_law: null_distribution=chi2 and the band count
    old_rx = {"detector": "rx", "bands": "20", "null_distribution": "chi2"}
    assert check_fpr(read_score_tags(old_rx)) == NullLaw.chi2(20)
    # before null_distribution too (the detector's declaration), and the QGIS plugin's earlier schema
    assert check_fpr(read_score_tags({"detector": "lrx", "bands": "7"})) == NullLaw.chi2(7)
    assert check_fpr(read_score_tags({"HADCORE_DETECTOR": "rx", "HADCORE_N_BANDS": "20"})) == NullLaw.chi2(20)
    # a layer that says nothing: chi-square with the user's band count (RX's law, as before)
    assert check_fpr(read_score_tags({}), 9) == NullLaw.chi2(9)
    # a layer of a law-declaring detector written before null_law: its law from parameters and band count
    old_ace = {"detector": "ace", "bands": "11", "parameters": json.dumps({"signed": True, "target": "x.sli:a"})}
    assert check_fpr(read_score_tags(old_ace)) == NullLaw.signed_beta(0.5, 5)
    with pytest.raises(ParameterError, match="rerun the detector") as e:
        check_fpr(read_score_tags({"detector": "mf", "bands": "11", "null_distribution": "normal",
                                   "parameters": json.dumps({"scale": "target"})}))
    assert "\n" not in str(e.value)


@pytest.mark.cli
def test_the_law_round_trips_through_written_score_layers(tmp_path):
    """`hadcore detect` writes the law (MF's target scale from its fit, through the run report); `hadcore
    vectorize --threshold fpr:` thresholds the layer at that law's quantile; a layer written by write_scores
    with only the old chi-square tags thresholds as before."""
    import rasterio
    from click.testing import CliRunner

    from hadcore.io import write_cube, write_scores
    from hadcore_cli.main import main

    rng = np.random.default_rng(3)
    B = 12
    A = rng.standard_normal((B, B)) / np.sqrt(B) + np.eye(B)
    cube = (100.0 + rng.standard_normal((80, 60, B)) @ A.T).astype(np.float32)
    target = 100.0 + 3.0 * A[:, 0]
    write_cube(tmp_path / "scene.tif", cube)
    spec = ",".join(f"{v:.9g}" for v in target)
    for name, params in (("ace", []), ("ace", ["-p", "signed=true"]), ("mf", []), ("mf", ["-p", "scale=zscore"])):
        out = tmp_path / f"{name}{len(params)}.tif"
        r = CliRunner().invoke(main, ["detect", name, str(tmp_path / "scene.tif"), "-p", f"target={spec}", *params,
                                      "-o", str(out), "-q"])
        assert r.exit_code == 0, r.output
        with rasterio.open(out) as ds:
            tags, s = ds.tags(), ds.read(1)
        det = build(name, target, **({"signed": True} if "signed=true" in params else
                                     {"scale": "zscore"} if "scale=zscore" in params else {}))
        det.fit(cube)
        law = check_fpr(read_score_tags(tags))
        assert tags["null_law"] == str(law)
        assert law.kind == det.null_law(B).kind and law.params == pytest.approx(det.null_law(B).params, rel=1e-6)
        vec = tmp_path / f"{name}{len(params)}.geojson"
        r = CliRunner().invoke(main, ["vectorize", str(out), "-o", str(vec), "--threshold", "fpr:1e-2", "-q"])
        assert r.exit_code == 0, r.output
        import geopandas as gpd

        frame = gpd.read_file(vec)
        assert int(frame["pixels"].sum()) == int((s >= law.isf(R)).sum()) > 0, name
        assert np.allclose(frame["threshold"], law.isf(R))
    # a chi-square layer with only the tags written before null_law: thresholds as before
    old = tmp_path / "old_rx.tif"
    rxs = rng.chisquare(B, size=(80, 60)).astype(np.float32)
    write_scores(old, rxs, detector="rx", n_bands=B)
    with rasterio.open(old, "r+") as ds:
        tags = ds.tags()
        assert tags["null_law"] == f"chi2:{B}"
        ds.update_tags(null_law="")  # GDAL cannot delete a tag: an empty one reads as absent
    with rasterio.open(old) as ds:
        assert read_score_tags(ds.tags()).null_law is None
    from scipy.stats import chi2

    r = CliRunner().invoke(main, ["vectorize", str(old), "-o", str(tmp_path / "old.geojson"),
                                  "--threshold", "fpr:1e-2", "-q"])
    assert r.exit_code == 0, r.output
    import geopandas as gpd

    assert int(gpd.read_file(tmp_path / "old.geojson")["pixels"].sum()) == int((rxs >= chi2.isf(R, B)).sum())


# ------------------------------------------------------------------------------------------------ no law
def test_detectors_without_a_law_are_one_line_errors():
    for name in ("cemf", "sam"):
        det = get_detector_class(name)(target="1,2,3")
        assert det.null_distribution is None and det.null_law(3) is None
        tags = score_tags(name, det.get_params(), n_bands=3)
        assert "null_law" not in tags and "null_distribution" not in tags
        with pytest.raises(ParameterError) as e:
            check_fpr(read_score_tags(tags))
        msg = str(e.value)
        assert msg == f"threshold 'fpr' needs scores with a known null distribution; this layer was made by {name!r}"
    with pytest.raises(ParameterError, match="scaled to 0-1") as e:
        check_fpr(read_score_tags(score_tags("ace", {}, n_bands=30, normalized=True)))
    assert "\n" not in str(e.value)
    assert hadcore.get_detector_class("rx")().null_law(5) == NullLaw.chi2(5)
    with pytest.raises(ParameterError, match="band count"):
        hadcore.get_detector_class("rx")().null_law()


@pytest.mark.cli
def test_cli_vectorize_refuses_fpr_on_a_layer_without_a_law(tmp_path):
    from click.testing import CliRunner

    from hadcore.io import write_scores
    from hadcore_cli.main import main

    path = tmp_path / "cem.tif"
    write_scores(path, np.random.default_rng(0).random((20, 20)).astype(np.float32), detector="cemf",
                 params={"target": "1,2"}, n_bands=2)
    r = CliRunner().invoke(main, ["vectorize", str(path), "-o", str(tmp_path / "d.gpkg"), "--threshold", "fpr:1e-3"])
    assert r.exit_code == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "known null distribution; this layer was made by 'cemf'" in err[0], r.stderr
