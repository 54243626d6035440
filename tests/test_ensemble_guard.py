"""The ensemble's guard (issue 25): a member that inverts on a scene is noticed without labels and reversed
or dropped; ``auto``, the default, is that guarded ensemble; the layer says which members were used."""

import json

import numpy as np
import pytest
import rasterio

import hadcore
from hadcore.detectors.auto import Auto
from hadcore.detectors.ensemble import Ensemble, guard_members, tail_agreement
from hadcore.metrics import roc_auc

from conftest import SAMPLE_DIR, SCENES, load_scene


@pytest.fixture(scope="module")
def member_maps():
    """The default's members on every shared scene, computed once."""
    out = {}
    for scene in SCENES:
        cube, gt = load_scene(scene)
        out[scene] = (gt, [hadcore.get_detector(m).detect(cube).astype(np.float64) for m in Auto().member_names()])
    return out


def test_one_negated_member_leaves_the_default_within_0005_on_every_scene(member_maps):
    """The issue's test: each member's scores negated in turn, on each of the nine shared scenes."""
    det = Auto()
    names = det.member_names()
    worst = 0.0
    for scene, (gt, maps) in member_maps.items():
        mask = np.ones(gt.shape, bool)
        base, used = det.combine_maps(maps, mask, names)
        assert used == tuple(names), scene  # nothing dropped or reversed on the scenes as they are
        a0 = roc_auc(base, gt)
        for i, name in enumerate(names):
            neg = [-m if j == i else m for j, m in enumerate(maps)]
            s, used = det.combine_maps(neg, mask, names)
            assert f"-{name}" in used, (scene, name, used)  # noticed, and read the other way
            change = abs(roc_auc(s, gt) - a0)
            worst = max(worst, change)
            assert change <= 0.005, (scene, name, change)
    assert worst < 1e-9  # a negated member is restored exactly


def test_without_the_guard_a_negated_member_costs_the_ensemble(member_maps):
    """The guard is what protects: the same negation with the guard off."""
    gt, maps = member_maps["abu-airport-2"]
    det = Ensemble(members="aed,glrt2s,msrfqft", guard=0.0)
    mask = np.ones(gt.shape, bool)
    a0 = roc_auc(det.combine_maps(maps, mask, ["aed", "glrt2s", "msrfqft"])[0], gt)
    a1 = roc_auc(det.combine_maps([-maps[0]] + maps[1:], mask, ["aed", "glrt2s", "msrfqft"])[0], gt)
    assert a0 - a1 > 0.03  # 0.976 -> 0.935


def test_tail_agreement_reads_agreement_chance_and_inversion():
    rng = np.random.default_rng(0)
    mask = np.ones((60, 60), bool)
    signal = np.zeros((60, 60))
    signal[20:26, 30:36] = 5.0
    a = signal + rng.normal(size=signal.shape)
    b = signal + rng.normal(size=signal.shape)
    noise = rng.normal(size=signal.shape)
    A = tail_agreement([a, b, -a, noise], mask, tail=0.01)
    assert A[0, 1] > 0.9 and A[1, 0] > 0.9  # both rank the same block on top
    assert A[0, 2] < 0.05  # a's strongest pixels are -a's weakest
    assert 0.3 < A[0, 3] < 0.7 and 0.3 < A[3, 0] < 0.7  # unrelated: about chance


def test_guard_drops_an_unrelated_member_reverses_an_inverted_one_and_leaves_two_alone():
    rng = np.random.default_rng(1)
    mask = np.ones((60, 60), bool)
    signal = np.zeros((60, 60))
    signal[10:14, 40:44] = 5.0
    good = [signal + rng.normal(size=signal.shape) for _ in range(3)]
    # a member whose strongest pixels are the good members' weakest, and that ranks their strongest at random
    odd = rng.normal(size=signal.shape)
    low = np.argsort(good[0].ravel())[:40]
    odd.ravel()[low] = 10.0 + rng.random(40)
    keep, flip = guard_members(good + [odd], mask)
    assert keep == [0, 1, 2] and flip == []
    keep, flip = guard_members(good + [-good[0]], mask)
    assert keep == [0, 1, 2, 3] and flip == [3]
    assert guard_members(good, mask) == ([0, 1, 2], [])
    assert guard_members([good[0], -good[0]], mask) == ([0, 1], [])  # two cannot outvote each other


class _Negated:
    """A registry member with its scores negated (what an inverting member looks like to the ensemble)."""

    def __init__(self, det):
        self._det = det
        self.name = det.name

    def detect(self, cube, mask=None, progress=None):
        return -self._det.detect(cube, mask, progress)

    def __getattr__(self, item):
        return getattr(self._det, item)


def test_auto_runs_by_default_and_tags_the_members_it_used(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hadcore_cli.main import main

    runner = CliRunner()
    src = str(SAMPLE_DIR / "abu-airport-1.tif")
    out = tmp_path / "scores.tif"
    r = runner.invoke(main, ["detect", src, "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as ds:
        tags = ds.tags()
        s = ds.read(1)
    assert tags["detector"] == "auto" and tags["members_used"] == "aed,glrt2s,msrfqft"
    assert json.loads(tags["parameters"]) == {"overlap": 32, "tile": 384}
    cube, gt = load_scene("abu-airport-1")
    np.testing.assert_allclose(s, hadcore.get_detector("auto").detect(cube), rtol=1e-6)
    # one member negated inside the detector: the same scores, and the tag says it was reversed
    orig = Auto.members_
    monkeypatch.setattr(Auto, "members_", lambda self: [_Negated(m) if m.name == "glrt2s" else m for m in orig(self)])
    out2 = tmp_path / "negated.tif"
    r = runner.invoke(main, ["detect", "auto", src, "-o", str(out2), "-q"])
    assert r.exit_code == 0, r.output
    with rasterio.open(out2) as ds:
        assert ds.tags()["members_used"] == "aed,-glrt2s,msrfqft"
        assert roc_auc(ds.read(1), gt) == pytest.approx(roc_auc(s, gt), abs=1e-9)


def test_info_without_a_name_describes_the_default():
    from click.testing import CliRunner

    from hadcore_cli.main import main

    r = CliRunner().invoke(main, ["info"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("auto - ") and "Why: " in r.output and "leave-one-scene-out" in r.output
    r = CliRunner().invoke(main, ["detect", "nosuchdetector", str(SAMPLE_DIR / "abu-airport-1.tif"), "-o", "x.tif"])
    assert r.exit_code == 2 and "unknown detector 'nosuchdetector'" in r.output


def test_python_detect_without_a_name_runs_auto():
    cube, gt = load_scene("pavia-100")
    s = hadcore.detect(cube)
    np.testing.assert_array_equal(s, hadcore.detect("auto", cube))
    assert roc_auc(s, gt) > roc_auc(hadcore.detect("rx", cube), gt)
