"""STAD: band resampling, the small target filter, the gradient score, weights files, training round trip."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import hadcore
from hadcore.detectors import stad as S
from hadcore.errors import FileError, InputError, ParameterError

from conftest import load_scene, require

TINY = dict(bands=8, hidden=4, ffn=16, teacher_steps=3, student_steps=3, batch=2, patch=8)


# ------------------------------------------------------------------ numpy parts
def test_resampling_matrix_preserves_constants_and_mass():
    for n_in, n_out in [(205, 32), (64, 32), (17, 32), (32, 32)]:
        R = S.band_resampling_matrix(n_in, n_out)
        assert R.shape == (n_in, n_out)
        np.testing.assert_allclose(R.sum(axis=0), 1.0)  # each output band is a weighted mean
        np.testing.assert_allclose(np.full(n_in, 3.5) @ R, 3.5)
        np.testing.assert_allclose(R.sum(axis=1).sum(), n_out)
    np.testing.assert_allclose(S.band_resampling_matrix(32, 32), np.eye(32))
    # 64 -> 32: each output band is the mean of two neighbouring input bands
    x = np.arange(64.0)
    np.testing.assert_allclose(x @ S.band_resampling_matrix(64, 32), np.arange(32) * 2 + 0.5)


def test_prepare_input_is_standardised_over_valid_pixels(small_crop):
    cube, _ = small_crop
    cube = cube.astype(np.float64)
    valid = np.ones(cube.shape[:2], bool)
    valid[:5] = False
    cube[:5] = 1e9  # invalid pixels must not enter the statistics
    Y = S.prepare_input(cube, valid, 16)
    assert Y.shape == cube.shape[:2] + (16,) and Y.dtype == np.float32
    np.testing.assert_allclose(Y[valid].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Y[valid].std(axis=0), 1, atol=1e-4)
    assert np.all(Y[~valid] == 0)


def _bilateral_bruteforce(img, valid, r, ss, sc):
    H, W = img.shape
    out = np.zeros((H, W))
    for y in range(H):
        for x in range(W):
            if not valid[y, x]:
                continue
            num = den = 0.0
            for yy in range(max(0, y - r), min(H, y + r + 1)):
                for xx in range(max(0, x - r), min(W, x + r + 1)):
                    if not valid[yy, xx]:
                        continue
                    w = math.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * ss * ss))
                    w *= math.exp(-((img[y, x] - img[yy, xx]) ** 2) / (2 * sc * sc))
                    num += w * img[yy, xx]
                    den += w
            out[y, x] = num / den
    return out


def test_bilateral_filter_matches_bruteforce():
    rng = np.random.default_rng(3)
    img = rng.uniform(0, 255, (9, 11))
    valid = rng.random((9, 11)) > 0.15
    for r, ss, sc in [(1, 1.0, 80.0), (2, 1.5, 30.0)]:
        np.testing.assert_allclose(S.bilateral_filter(img, valid, r, ss, sc),
                                   _bilateral_bruteforce(img, valid, r, ss, sc), rtol=1e-12, atol=1e-9)


def test_stf_on_a_known_image():
    # one bright pixel in a flat image: after 0-255 scaling it is 255, everything else 0
    rx = np.zeros((7, 7))
    rx[3, 3] = 42.0
    valid = np.ones((7, 7), bool)
    M = S.stf_from_rx(rx, valid)
    c = math.exp(-(255.0 ** 2) / (2 * 80.0 ** 2))  # range weight between 255 and 0
    e1, e2 = math.exp(-0.5), math.exp(-1.0)  # spatial weights at distance 1 and sqrt(2)
    assert M[3, 3] == pytest.approx(255.0 / (1 + 4 * e1 * c + 4 * e2 * c))
    # an edge neighbour sees the bright pixel with weight e1*c among 9 (6 at the border) others of value 0
    assert M[2, 3] == pytest.approx(255.0 * e1 * c / (1 + 4 * e1 + 4 * e2 - e1 + e1 * c))
    assert M[2, 2] == pytest.approx(255.0 * e2 * c / (1 + 4 * e1 + 4 * e2 - e2 + e2 * c))
    # the median is 0, so exactly the 3 x 3 neighbourhood survives
    assert set(zip(*np.nonzero(M))) == {(3 + i, 3 + j) for i in (-1, 0, 1) for j in (-1, 0, 1)}


def test_stf_mask_on_real_scene_keeps_targets(airport):
    cube, gt = airport
    X, valid = hadcore.base.prepare_cube(cube)
    M = S.small_target_filter(S.prepare_input(X, valid, 32), valid)
    assert M.min() >= 0 and M.max() <= 255
    assert (M == 0).mean() >= 0.5  # at or below the median -> 0
    # anomalies are far more often kept than background
    assert (M[gt == 1] > 0).mean() > 2 * (M[gt == 0] > 0).mean()


# ------------------------------------------------------------------ gradient score
def test_gradient_score_matches_finite_differences():
    torch = require("torch")
    from hadcore.detectors.stad_nets import build

    torch.manual_seed(0)
    net = build().Student(3, 4, 3).double()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(1, 3, 4, 5)))
    m = torch.from_numpy(rng.uniform(0, 1, size=(1, 1, 4, 5)))
    score, g = S.gradient_score(net, x, m)
    eps = 1e-6
    fd = np.zeros(x.shape)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape):
            xp, xm = x.clone(), x.clone()
            xp[idx] += eps
            xm[idx] -= eps
            fd[idx] = (float(S.stad_loss(net, xp, m)) - float(S.stad_loss(net, xm, m))) / (2 * eps)
    np.testing.assert_allclose(g.numpy(), fd, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(score.numpy(), np.abs(fd).max(axis=1), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ training and weights
def _crops():
    a, _ = load_scene("abu-airport-1")
    p, _ = load_scene("pavia-100")
    return [a[:24, :24], p[:20, :30]]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    require("torch")
    out = tmp_path_factory.mktemp("stad") / "tiny.pt"
    meta = hadcore.get_detector("stad", seed=3, device="cpu", **TINY).train(_crops(), str(out))
    return out, meta


def test_train_save_load_detect_round_trip(tiny_weights, small_crop):
    torch = require("torch")
    out, meta = tiny_weights
    obj = torch.load(str(out), weights_only=True)
    assert obj["format"] == S.FORMAT and obj["config"]["bands"] == 8
    assert meta["seed"] == 3 and meta["train_params"]["teacher_steps"] == 3 and len(meta["data"]) == 2
    assert not out.with_name(out.name + ".ckpt").exists()
    cube, _ = small_crop
    cube = cube.copy()
    cube[0, 0] = np.nan
    for mode in S.MODES:
        s = hadcore.get_detector("stad", weights=str(out), mode=mode, device="cpu").detect(cube)
        assert s.shape == cube.shape[:2] and s.dtype == np.float32
        assert np.isnan(s[0, 0]) and np.isfinite(s).sum() == s.size - 1
        assert np.nanmax(s) > np.nanmin(s)
    det = hadcore.get_detector("stad", weights=str(out), device="cpu")
    np.testing.assert_array_equal(det.detect(cube), det.detect(cube))


def test_training_is_deterministic_and_resumable(tiny_weights, tmp_path):
    torch = require("torch")
    out, _ = tiny_weights
    ref = torch.load(str(out), weights_only=True)
    det = hadcore.get_detector("stad", seed=3, device="cpu", **TINY)
    # interrupted after the teacher phase (a checkpoint is written there), then resumed
    b = tmp_path / "b.pt"

    def stop_at_4(fraction, message=None):
        if fraction >= 4 / 6:
            raise hadcore.Cancelled("stop")

    with pytest.raises(hadcore.Cancelled):
        det.train(_crops(), str(b), progress=stop_at_4)
    assert b.with_name("b.pt.ckpt").exists() and not b.exists()
    det.train(_crops(), str(b), resume=True)
    got = torch.load(str(b), weights_only=True)
    for part in ("teacher", "student"):
        for k, v in ref[part].items():
            assert torch.equal(v, got[part][k]), (part, k)
    # another seed gives other weights
    c = tmp_path / "c.pt"
    hadcore.get_detector("stad", seed=4, device="cpu", **TINY).train(_crops(), str(c))
    other = torch.load(str(c), weights_only=True)
    assert not all(torch.equal(v, other["student"][k]) for k, v in ref["student"].items())


def test_tiled_equals_untiled(tiny_weights, small_crop):
    out, _ = tiny_weights
    cube, _ = small_crop
    big = hadcore.get_detector("stad", weights=str(out), tile=256, device="cpu").detect(cube)
    small = hadcore.get_detector("stad", weights=str(out), tile=16, device="cpu").detect(cube)
    np.testing.assert_allclose(small, big, rtol=1e-4, atol=1e-6 * float(np.nanmax(big)))


def test_bad_weights_files_give_clear_errors(tmp_path, small_crop):
    torch = require("torch")
    cube, _ = small_crop
    cases = {}
    (tmp_path / "junk.pt").write_bytes(b"\x00not a torch file" * 10)
    cases["junk.pt"] = "cannot read"

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": S.FORMAT, "x": Evil()}, fh, protocol=2)
    cases["evil.pt"] = "cannot read"
    torch.save({"format": "something else"}, str(tmp_path / "other.pt"))
    cases["other.pt"] = "not a STAD weights file"
    torch.save({"format": S.FORMAT, "format_version": 1, "config": {"bands": 8, "hidden": 4, "stages": 3,
                "heads": 2, "ffn": 16}, "meta": {}, "teacher": {}, "student": {"x": torch.zeros(2)}},
               str(tmp_path / "shape.pt"))
    cases["shape.pt"] = "does not fit"
    cases["missing.pt"] = "not found"
    for name, text in cases.items():
        det = hadcore.get_detector("stad", weights=str(tmp_path / name), device="cpu")
        with pytest.raises(FileError, match=text) as ei:
            det.detect(cube)
        assert "\n" not in str(ei.value)
    assert not (tmp_path / "pwned").exists()


def test_parameter_and_input_errors(tmp_path):
    torch = require("torch")
    with pytest.raises(ParameterError, match="bands"):
        hadcore.get_detector("stad", bands=7)
    with pytest.raises(ParameterError, match="mode"):
        hadcore.get_detector("stad", mode="fancy")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="cuda"):
            hadcore.get_detector("stad", device="cuda").detect(np.random.rand(8, 8, 5))
    det = hadcore.get_detector("stad", **TINY)
    with pytest.raises(InputError, match="smaller than the training patch"):
        det.train([np.random.rand(5, 5, 10)], str(tmp_path / "w.pt"))
    with pytest.raises(InputError, match="no training cube"):
        det.train([], str(tmp_path / "w.pt"))
    with pytest.raises(InputError):
        det.train([np.zeros((10, 10, 10))], str(tmp_path / "w.pt"))  # no valid pixel


# ------------------------------------------------------------------ shipped weights
def test_shipped_weights_load_safely_and_beat_rx_on_airport(airport):
    torch = require("torch")
    from hadcore.metrics import roc_auc

    assert S.DEFAULT_WEIGHTS.is_file() and S.DEFAULT_WEIGHTS.stat().st_size < 5e6
    obj = torch.load(str(S.DEFAULT_WEIGHTS), weights_only=True)
    meta = obj["meta"]
    assert "train" in meta["command"] and meta["seed"] == 0 and len(meta["data"]) == 9
    # made by the current recipe with the declared defaults, so `hadcore train stad` reproduces them
    from hadcore.detectors.stad_nets import PSEUDO_ANOMALIES, TRAIN_KEYS

    assert meta["pseudo_anomalies"] == PSEUDO_ANOMALIES
    defaults = hadcore.get_detector("stad")
    assert meta["train_params"] == {k: getattr(defaults, k) for k in TRAIN_KEYS if k != "seed"} | {"seed": 0}
    cube, gt = airport
    stad = roc_auc(hadcore.get_detector("stad", device="cpu").detect(cube), gt)
    rx = roc_auc(hadcore.get_detector("rx").detect(cube), gt)
    assert stad > rx


# ------------------------------------------------------------------ the train command
@pytest.mark.cli  # needs the CLI extras (click, rasterio)
def test_train_command(tmp_path, small_crop):
    torch = require("torch")
    from click.testing import CliRunner

    from hadcore_cli.main import main

    data = tmp_path / "data"
    data.mkdir()
    for i, c in enumerate(_crops()):
        np.savez(data / f"scene{i}.npz", cube=c, gt=np.ones(c.shape[:2], np.uint8))
    out = tmp_path / "w.pt"
    args = ["stad", "--data", str(data), "--out", str(out), "--seed", "3", "-q"]
    for k, v in TINY.items():
        args += ["-p", f"{k}={v}"]
    r = CliRunner().invoke(main, ["train"] + args)
    assert r.exit_code == 0, r.output
    obj = torch.load(str(out), weights_only=True)
    assert obj["meta"]["seed"] == 3 and [d.split()[0] for d in obj["meta"]["data"]] == ["scene0.npz", "scene1.npz"]
    s = hadcore.get_detector("stad", weights=str(out)).detect(small_crop[0])
    assert np.isfinite(s).all()
    # existing output, untrainable detector, bad parameter, missing data: one line, exit code 2
    for bad, text in [
        (args, "--overwrite"),
        (["rx", "--data", str(data), "--out", str(tmp_path / "x.pt")], "does not train"),
        (["stad", "--data", str(data), "--out", str(tmp_path / "x.pt"), "-p", "batch=0"], "batch"),
    ]:
        r = CliRunner().invoke(main, ["train"] + bad)
        assert r.exit_code == 2 and text in r.output, r.output
    r = CliRunner().invoke(main, ["train", "stad", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x.pt")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_resume_from_a_bad_or_foreign_checkpoint(tmp_path):
    require("torch")
    out = tmp_path / "w.pt"
    ckpt = tmp_path / "w.pt.ckpt"
    ckpt.write_bytes(b"garbage")
    det = hadcore.get_detector("stad", seed=3, device="cpu", **TINY)
    with pytest.raises(FileError, match="cannot resume"):
        det.train(_crops(), str(out), resume=True)
    # a checkpoint of another configuration is refused, not silently mixed in
    ckpt.unlink()
    other = hadcore.get_detector("stad", seed=3, device="cpu", **{**TINY, "teacher_steps": 2})
    def stop_after_teacher(fraction, message=None):
        if fraction >= 3 / 5:
            raise hadcore.Cancelled("stop")

    with pytest.raises(hadcore.Cancelled):
        other.train(_crops(), str(out), progress=stop_after_teacher)
    assert ckpt.exists()
    with pytest.raises(FileError, match="other data or parameters"):
        det.train(_crops(), str(out), resume=True)


# ------------------------------------------------------------------ fit / refine / score (streaming engine)
def test_context_asks_for_statistics_a_refine_pass_and_a_halo():
    ctx = hadcore.get_detector("stad").context()
    assert not ctx.whole_scene and ctx.global_stats and ctx.refine and ctx.halo == S.STAD.HALO == 16
    assert ctx.scaling == "stats" and not ctx.exact  # the STF median is estimated from a sample
    for mode in ("saliency", "recon"):  # no STF: no refine pass, exact under tiling
        ctx = hadcore.get_detector("stad", mode=mode).context()
        assert not ctx.refine and ctx.exact


def test_input_transform_from_moments_equals_prepare_input(airport):
    from hadcore.stats import Moments

    X, valid = hadcore.base.prepare_cube(airport[0])
    valid[:3] = False
    X[:3] = 0.0
    T = S.InputTransform(Moments.of(X[valid]), 32)
    Y = T(X, valid)
    ref = S.prepare_input(X, valid, 32)
    assert Y.dtype == np.float32 and Y.shape == ref.shape
    np.testing.assert_allclose(Y, ref, rtol=0, atol=2e-5)
    # RX of the STF from the moments = RX with the mean and covariance of the prepared input
    from hadcore.linalg import mahalanobis_sq

    mu, cov = S.mean_cov(ref[valid].astype(np.float64))
    want = mahalanobis_sq(ref[valid].astype(np.float64), mu, S.inv_psd(cov))
    np.testing.assert_allclose(T.rx(Y, valid)[valid], want, rtol=1e-4)
    # a constant band stays 0 instead of amplified rounding noise
    Xc = X.copy()
    Xc[..., :20] = 7.25
    Xc[~valid] = 0.0
    Yc = S.InputTransform(Moments.of(Xc[valid]), 32)(Xc, valid)
    assert np.all(Yc[..., 0] == 0) and np.isfinite(Yc).all()


def _rx_map(airport):
    from hadcore.stats import Moments

    X, valid = hadcore.base.prepare_cube(airport[0])
    T = S.InputTransform(Moments.of(X[valid]), 32)
    return X, valid, T.rx(T(X, valid), valid)


def test_stf_sample_median_is_exact_for_a_small_scene_and_close_for_a_sample(airport):
    X, valid, rx = _rx_map(airport)
    v = rx[valid]
    scaled = np.where(valid, 255.0 * (rx - v.min()) / (v.max() - v.min()), 0.0)
    exact = float(np.median(S.bilateral_filter(scaled, valid)[valid]))
    keys = S.content_keys(X.reshape(-1, X.shape[2]))[valid.ravel()]
    whole = S.STFSample.of_block(rx, valid, keys, S.STF_SAMPLE)
    assert (whole.lo, whole.hi) == (v.min(), v.max())
    assert whole.median() == pytest.approx(exact, rel=1e-12)
    # a bounded sample (2,000 of 10,000 pixels): merged from strips in any order, the same estimate
    parts = []
    for r in range(0, 100, 25):
        k = S.content_keys(X[r:r + 25].reshape(-1, X.shape[2]))[valid[r:r + 25].ravel()]
        parts.append(S.STFSample.of_block(rx[r:r + 25], valid[r:r + 25], k, 2000))
    a = parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
    b = parts[3].merge(parts[1]).merge(parts[0].merge(parts[2]))
    assert a.median() == b.median() and (a.lo, a.hi) == (v.min(), v.max())
    Fq = np.sort(S.bilateral_filter(scaled, valid)[valid])
    rank = np.searchsorted(Fq, a.median()) / Fq.size
    assert abs(rank - 0.5) < 0.03  # within 3 standard errors of a 2,000-pixel sample's median


def test_content_keys_tell_repeated_spectra_apart():
    x = np.random.default_rng(0).random((50, 7))
    k = S.content_keys(np.vstack([x, x, x]))
    assert np.unique(k).size == 150
    np.testing.assert_array_equal(S.content_keys(x), k[:50])


def _plan_mem(det, shape, want_single_stat):
    """A memory limit (MB) giving several score blocks, and statistics (= refine) blocks that are full-width
    strips: one when asked, else 2-4 (the refine pass runs on them)."""
    from hadcore import engine

    for mb in range(40, 400, 2):
        try:
            plan = engine.plan_blocks(det, shape, mb * engine.MB, needs_stats=True, read_bytes=0)
        except hadcore.errors.InputError:  # too small for one block
            continue
        strips = all(w[2] == 0 and w[3] == shape[1] for w in plan.stat_windows)
        n = len(plan.stat_windows)
        if plan.n_blocks > 1 and strips and (n == 1 if want_single_stat else 1 < n <= 4):
            return mb
    raise AssertionError("no memory limit gives the plan asked for")


@pytest.mark.parametrize("single_refine_block", [True, False])
def test_streamed_small_blocks_match_in_memory(airport, single_refine_block):
    """engine.run with small blocks against detect(). With one refine block (the sample holds every pixel)
    the STF median is exact and so are the scores (float rounding); with several, pixels on the refine
    blocks' edges miss neighbours in the sampled neighbourhoods, the median moves slightly and M changes
    at the few pixels whose filtered RX lies between the two medians (the more refine blocks, the more such
    edge pixels: with 20 strips of 5 rows, 4 % of the scores move by more than 1e-4 of the range)."""
    require("torch")
    from hadcore import engine
    from hadcore.metrics import roc_auc

    cube, gt = airport
    det = hadcore.get_detector("stad", device="cpu")
    ref = det.detect(cube)
    mem = _plan_mem(det, cube.shape, single_refine_block)
    sink, info = engine.run(det, engine.ArraySource(cube), mem_limit_mb=mem)
    got = sink.array
    assert info.plan.n_blocks > 1
    scale = float(np.nanmax(np.abs(ref)))
    if single_refine_block:
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6 * scale)
    else:
        assert len(info.plan.stat_windows) > 1
        assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9999
        assert (np.abs(got - ref) > 1e-4 * scale).mean() < 0.02
        assert abs(roc_auc(got, gt) - roc_auc(ref, gt)) < 1e-3


def test_fit_then_decision_function_equals_detect(small_crop):
    require("torch")
    cube, _ = small_crop
    det = hadcore.get_detector("stad", device="cpu")
    ref = det.detect(cube)
    got = hadcore.get_detector("stad", device="cpu").fit(cube).decision_function(cube)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7 * float(np.nanmax(ref)))
