"""OSP, orthogonal subspace projection (Harsanyi & Chang 1994), in the registry: a sub-pixel target implanted in
a real scene is found and its fill fraction estimated; streamed equals in memory; the scores are the published
formula; a target inside the background subspace is a one-line error; the CLI runs it with a library target."""

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import implant_paint, streamed_in_blocks

import hadcore
from hadcore.errors import InputError, ParameterError
from hadcore.metrics import roc_auc
from hadcore.targets import background_subspace, osp, osp_scores
from hadcore_cli.main import main

FILL = 0.1  # the implanted targets' fill fraction


def osp_detector(target, **params):
    det = hadcore.get_detector("osp", **params)
    det.set_spectrum("target", target)
    return det


@pytest.fixture(scope="module")
def implanted(tmp_path_factory):
    """abu-urban-1 with 40 background pixels holding 10 % of a 'paint' spectrum, as a GeoTIFF, and a 1 nm library
    holding that spectrum (:func:`conftest.implant_paint`)."""
    d = tmp_path_factory.mktemp("osp")
    X, truth, _, t = implant_paint(d, FILL)
    return d, X, truth, t


def reference(X, t, n):
    """OSP written out from the paper with numpy: P = I - U U^+ on the n leading eigenvectors of the sample
    covariance, score d^T P (x - mu) / d^T P d with d = t - mu."""
    P = X.reshape(-1, X.shape[2]).astype(np.float64)
    mu = P.mean(0)
    lam, V = np.linalg.eigh(np.cov(P, rowvar=False))
    U = V[:, np.argsort(lam)[::-1][:n]]
    proj = np.eye(P.shape[1]) - U @ np.linalg.pinv(U)
    d = t - mu
    return ((P - mu) @ proj @ d / (d @ proj @ d)).reshape(X.shape[:2])


def test_implanted_subpixel_targets_are_found_and_their_fill_estimated(implanted):
    _, X, truth, t = implanted
    s = hadcore.detect("osp", X, target=t)
    assert roc_auc(s, truth) > 0.99
    # an abundance estimate: the implanted pixels score their fill fraction, the background about 0
    assert np.median(s[truth]) == pytest.approx(FILL, abs=0.02)
    assert abs(np.median(s[~truth])) < 0.01 and np.percentile(np.abs(s[~truth]), 99) < 0.05
    # annihilating the background is what finds them: a single component leaves the clutter in
    one = hadcore.detect("osp", X, target=t, n_background=1)
    assert roc_auc(one, truth) < 0.8


def test_streamed_equals_in_memory_and_the_formula(implanted):
    _, X, _, t = implanted
    whole = osp_detector(t).detect(X)
    streamed, info = streamed_in_blocks(osp_detector(t), X)
    assert info.plan.n_blocks > 1
    np.testing.assert_allclose(streamed, whole, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(whole, reference(X, t, 10), rtol=1e-5, atol=1e-6)


def test_scores_are_the_published_formula_on_a_small_cube(implanted):
    _, X, _, t = implanted
    small = X[30:60, 40:70, ::6].astype(np.float64)  # 30 x 30 x 34
    ts = t[::6]
    for n in (1, 4, 10):
        np.testing.assert_allclose(osp_detector(ts, n_background=n).detect(small), reference(small, ts, n),
                                   rtol=1e-5, atol=1e-6)
    # n_background beyond the bands is clipped to B - 1 (P keeps one direction)
    np.testing.assert_allclose(osp_detector(ts, n_background=500).detect(small), reference(small, ts, 33),
                               rtol=1e-5, atol=1e-6)
    P = small.reshape(-1, 34)
    mu, C = P.mean(0), np.cov(P, rowvar=False)
    U = background_subspace(C, 10)
    assert U.shape == (34, 10) and np.allclose(U.T @ U, np.eye(10))
    np.testing.assert_allclose(osp(P, ts, mu, C, 10), reference(small, ts, 10).ravel(), rtol=1e-9, atol=1e-12)
    # the target scores 1, the mean and any background variation mu + U g score 0
    g = np.sqrt(np.linalg.eigvalsh(C)[::-1][:10]) * np.linspace(-2, 2, 10)
    assert osp(np.stack([ts, mu, mu + U @ g]), ts, mu, C, 10) == pytest.approx([1.0, 0.0, 0.0], abs=1e-9)
    # undesired signatures as in the paper (any full-rank U, here three pixels): P = I - U (U^T U)^-1 U^T
    E = P[[5, 400, 800]].T - mu[:, None]
    proj = np.eye(34) - E @ np.linalg.inv(E.T @ E) @ E.T
    d = ts - mu
    s = osp_scores(P, ts, mu, E)
    np.testing.assert_allclose(s, (P - mu) @ proj @ d / (d @ proj @ d), rtol=1e-9, atol=1e-12)
    assert np.abs(s[[5, 400, 800]]).max() < 1e-12  # the undesired signatures themselves are annihilated


def test_a_target_in_the_background_subspace_is_one_line(implanted):
    d, X, _, t = implanted
    P = X.reshape(-1, X.shape[2]).astype(np.float64)
    mu, C = P.mean(0), np.cov(P, rowvar=False)
    U = background_subspace(C, 10)
    inside = mu + U[:, :3] @ (3.0 * np.sqrt(np.linalg.eigvalsh(C)[::-1][:3]))  # mu + 3 sigma on 3 components
    for target, n in ((inside, 10), (t, X.shape[2] - 1)):  # a built one; the paint with every component but one
        with pytest.raises(InputError, match="lies in the background subspace.*lower n_background") as e:
            hadcore.detect("osp", X, target=target, n_background=n)
        assert "\n" not in str(e.value)
    assert np.isfinite(hadcore.detect("osp", X, target=inside, n_background=2)).all()  # outside 2 components
    with pytest.raises(ParameterError, match="equals the background mean"):
        osp(P, mu, mu, C)
    # the CLI: exit 2, one line, no output
    out = d / "inside.tif"
    r = CliRunner().invoke(main, ["detect", "osp", str(d / "scene.tif"), "-p",
                                  "target=" + ",".join(repr(float(v)) for v in inside), "-o", str(out), "-q"])
    assert r.exit_code == 2 and "lies in the background subspace" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()


def test_cli_finds_a_library_target_by_name(implanted):
    d, X, truth, t = implanted
    for n in (10, 5):
        out = d / f"osp{n}.tif"
        r = CliRunner().invoke(main, ["detect", "osp", str(d / "scene.tif"), "-p", f"target={d / 'lib.sli'}:red paint",
                                      "-p", f"n_background={n}", "-o", str(out), "-q", "--overwrite"])
        assert r.exit_code == 0, r.output
        with rasterio.open(out) as ds:
            s = ds.read(1)
            assert ds.tags()["detector"] == "osp"
        assert roc_auc(s, truth) > 0.99
        # the library spectrum resampled to the scene's bands is the target (float32 in the library)
        np.testing.assert_allclose(s, hadcore.detect("osp", X, target=t, n_background=n), rtol=1e-3, atol=1e-4)
