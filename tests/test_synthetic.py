"""hadcore.synthetic: physics of the thermal-infrared scenes, their contract, and the ``synth`` command."""

from __future__ import annotations

import numpy as np
import pytest

from hadcore.errors import ParameterError
from hadcore.synthetic import (KDAD_WAVELENGTHS, MATERIALS, TARGETS, emissivity, planck_radiance,
                               thermal_scene)


def test_planck_known_value_and_stefan_boltzmann():
    # B(10 um, 300 K) = 9.92 W m-2 sr-1 um-1 (textbook value)
    assert planck_radiance(10.0, 300.0) == pytest.approx(9.92, abs=0.01)
    # integral over wavelength = sigma T^4 / pi
    wl = np.linspace(0.5, 400.0, 400000)
    total = np.sum(planck_radiance(wl, 300.0)) * (wl[1] - wl[0])
    assert total == pytest.approx(5.670374e-8 * 300.0 ** 4 / np.pi, rel=2e-3)
    # Wien: the peak of a 300 K body lies near 2898 / 300 = 9.66 um
    wl = np.linspace(5, 15, 10001)
    assert wl[np.argmax(planck_radiance(wl, 300.0))] == pytest.approx(2897.77 / 300.0, abs=0.01)
    # hotter is brighter at every wavelength
    assert np.all(planck_radiance(wl, 301.0) > planck_radiance(wl, 300.0))


def test_emissivity_spectra_physical():
    wl = np.linspace(*KDAD_WAVELENGTHS, 110)
    for name in list(MATERIALS) + list(TARGETS):
        e = emissivity(name, wl)
        assert e.shape == wl.shape and np.all((e > 0) & (e < 1))
    soil = emissivity("soil", wl)
    # the quartz reststrahlen dip: lower emissivity near 8.6 um than near 10.5 um
    assert soil[np.argmin(abs(wl - 8.6))] < soil[np.argmin(abs(wl - 10.5))] - 0.05
    with pytest.raises(ParameterError, match="unknown material"):
        emissivity("granite", wl)


@pytest.fixture(scope="module")
def scene():
    return thermal_scene(height=48, width=56, n_targets=8, seed=3)


def test_scene_contract(scene):
    cube, gt, wl = scene  # unpacks like a tuple
    assert cube.shape == (48, 56, 110) and cube.dtype == np.float32
    assert gt.shape == (48, 56) and gt.dtype == np.uint8 and set(np.unique(gt)) == {0, 1}
    assert wl.shape == (110,) and wl[0] == pytest.approx(8.06) and wl[-1] == pytest.approx(11.22)
    assert np.all(np.diff(wl) > 0)
    assert np.isfinite(cube).all() and (cube > 0).all()
    assert len(scene.targets) == 8
    assert int(gt.sum()) == sum(t["size"] ** 2 for t in scene.targets)
    assert {t["kind"] for t in scene.targets} == {"emissivity", "temperature"}
    # radiance of 290-315 K surfaces at 8-11 um: 5-13 W m-2 sr-1 um-1
    assert 4.0 < float(cube.min()) and float(cube.max()) < 14.0


def test_scene_deterministic_and_seeded():
    a = thermal_scene(height=32, width=32, n_targets=4, seed=5)
    b = thermal_scene(height=32, width=32, n_targets=4, seed=5)
    c = thermal_scene(height=32, width=32, n_targets=4, seed=6)
    assert np.array_equal(a.cube, b.cube) and np.array_equal(a.gt, b.gt)
    assert not np.array_equal(a.cube, c.cube)


def test_temperature_targets_are_hotter_or_colder_as_recorded():
    # without noise the background does not depend on the targets drawn after it
    bg = thermal_scene(height=64, width=64, n_targets=0, nedt=0.0, seed=1)
    s = thermal_scene(height=64, width=64, n_targets=10, target_kind="temperature", nedt=0.0, seed=1)
    assert np.array_equal(s.cube[s.gt == 0], bg.cube[s.gt == 0])
    for t in s.targets:
        r, c, k = t["row"], t["col"], t["size"]
        diff = s.cube[r, c].astype(np.float64) - bg.cube[r, c]
        assert np.all(np.sign(diff) == np.sign(t["delta_t"]))


def test_noise_level_matches_nedt():
    quiet = thermal_scene(height=32, width=32, n_targets=0, nedt=0.0, seed=2).cube
    noisy = thermal_scene(height=32, width=32, n_targets=0, nedt=0.2, seed=2).cube
    noise = (noisy - quiet).astype(np.float64)
    # dB/dT at 300 K and 10 um is about 0.15 W m-2 sr-1 um-1 per K; times 0.2 K, times tau < 1
    assert 0.01 < noise.std() < 0.03


def test_emissivity_targets_are_spectral_anomalies_temperature_targets_are_local():
    """Emissivity targets are global spectral outliers (RX finds them); +-5 K temperature targets lie
    inside the scene's temperature range, so global RX finds them far less well."""
    from sklearn.metrics import roc_auc_score

    from hadcore.detectors.rx import RX

    emis = thermal_scene(height=48, width=48, n_targets=8, target_kind="emissivity", seed=3)
    temp = thermal_scene(height=48, width=48, n_targets=8, target_kind="temperature", delta_t=5.0, seed=3)
    auc_e = roc_auc_score(emis.gt.ravel(), RX().detect(emis.cube).ravel())
    auc_t = roc_auc_score(temp.gt.ravel(), RX().detect(temp.cube).ravel())
    assert auc_e > 0.95
    assert auc_t < auc_e - 0.1


@pytest.mark.parametrize("kw, msg", [
    ({"height": 8}, "16 x 16"),
    ({"bands": 1}, "2 bands"),
    ({"wl_range": (12, 9)}, "first < last"),
    ({"target_kind": "hot"}, "target_kind"),
    ({"n_targets": 10000}, "n_targets"),
    ({"nedt": -1}, "nedt"),
    ({"n_materials": 9}, "n_materials"),
])
def test_bad_arguments(kw, msg):
    with pytest.raises(ParameterError, match=msg):
        thermal_scene(**kw)


@pytest.mark.cli  # needs the CLI extras (click, rasterio)
def test_synth_command_writes_a_readable_geotiff(tmp_path):
    from click.testing import CliRunner

    from hadcore.io import read_ground_truth, read_raster
    from hadcore_cli.main import main

    out = tmp_path / "scene.tif"
    args = [str(out), "--size", "24", "32", "--bands", "40", "--targets", "3", "--seed", "4"]
    res = CliRunner().invoke(main, ["synth"] + args)
    assert res.exit_code == 0, res.output
    r = read_raster(out)
    ref = thermal_scene(height=24, width=32, bands=40, n_targets=3, seed=4)
    assert r.cube.shape == (24, 32, 40)
    np.testing.assert_allclose(r.cube, ref.cube)
    np.testing.assert_allclose(r.wavelengths, ref.wavelengths, rtol=1e-5)
    gt = read_ground_truth(tmp_path / "scene_gt.tif")
    assert np.array_equal(gt, ref.gt)
    # an existing output is kept unless --overwrite
    res = CliRunner().invoke(main, ["synth"] + args)
    assert res.exit_code == 2 and "exists" in res.output
    assert CliRunner().invoke(main, ["synth"] + args + ["--overwrite"]).exit_code == 0
