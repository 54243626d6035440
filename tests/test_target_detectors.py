"""Target detectors in the registry (issue 26): ace, mf, cemf and sam take a target spectrum from a library (by
name, resampled to the scene's wavelengths) or as values; the CLI, Python and the streaming engine give the same
scores; bad targets are one-line errors that leave no output."""

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import implant_paint

import hadcore
from hadcore.library import SpectralLibrary, write_library
from hadcore.metrics import roc_auc
from hadcore.targets import ace
from hadcore_cli.main import main


TARGETS = ("ace", "mf", "cemf", "sam")


@pytest.fixture(scope="module")
def implanted(tmp_path_factory):
    """abu-urban-1 with its AVIRIS wavelengths, 40 pixels holding 30 % of a 'paint' spectrum, and a 1 nm library
    holding that spectrum among others (:func:`conftest.implant_paint`)."""
    d = tmp_path_factory.mktemp("targets")
    X, truth, wl, t = implant_paint(d, 0.3)
    return d, X, truth, wl, t


def test_cli_finds_a_library_target_by_name(implanted):
    d, X, truth, wl, t = implanted
    for name in TARGETS:
        out = d / f"{name}.tif"
        r = CliRunner().invoke(main, ["detect", name, str(d / "scene.tif"), "-p", f"target={d / 'lib.sli'}:red paint",
                                      "-o", str(out), "-q", "--overwrite"])
        assert r.exit_code == 0, r.output
        with rasterio.open(out) as ds:
            s = ds.read(1)
            assert ds.tags()["detector"] == name
        assert roc_auc(s, truth) > (0.9 if name == "sam" else 0.99), name


def test_streamed_equals_in_memory_and_python_equals_the_formula(implanted):
    d, X, truth, wl, t = implanted
    spec = f"{d / 'lib.sli'}:red paint"
    whole = hadcore.detect("ace", str(d / "scene.tif"), target=spec)
    streamed = hadcore.detect("ace", str(d / "scene.tif"), target=spec, mem_limit_mb=8)
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-7)
    # the library spectrum resampled to the scene (linear: the file has no FWHM) is the target
    P = X.reshape(-1, X.shape[2]).astype(np.float64)
    ref = ace(P, t, P.mean(0), np.cov(P, rowvar=False)).reshape(truth.shape)
    # (ACE is in [0, 1]; the library holds float32 values, so the target differs from t by 1e-7 relative)
    np.testing.assert_allclose(whole, ref, rtol=1e-3, atol=1e-5)
    # an array target: its values
    np.testing.assert_allclose(hadcore.detect("ace", X, target=t), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("spec, message", [
    ("{lib}:red pain", "close names: red paint"),
    ("{lib}", "holds 2 spectra: name one"),
    ("{d}/nope.sli:x", "spectral library not found"),
    ("", "no target spectrum given"),
    ("1,2,3", "3 values, the scene 204 selected bands"),
])
def test_bad_targets_are_one_line_and_leave_no_output(implanted, spec, message):
    d, *_ = implanted
    out = d / "bad.tif"
    r = CliRunner().invoke(main, ["detect", "ace", str(d / "scene.tif"), "-p",
                                  "target=" + spec.format(lib=d / "lib.sli", d=d), "-o", str(out), "-q"])
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()


def test_a_library_that_does_not_cover_the_bands_and_a_target_at_the_background_mean(implanted):
    d, X, *_ = implanted
    vnir = SpectralLibrary(names=["leaf"], spectra=[np.linspace(0.1, 0.5, 601)], wavelengths=np.arange(400.0, 1001.0))
    write_library(vnir, d / "vnir.csv")
    r = CliRunner().invoke(main, ["detect", "mf", str(d / "scene.tif"), "-p", f"target={d / 'vnir.csv'}",
                                  "-o", str(d / "v.tif"), "-q"])
    assert r.exit_code == 2 and "does not cover" in r.output and "--wavelengths" in r.output, r.output
    # the same library on the bands it covers
    r = CliRunner().invoke(main, ["detect", "mf", str(d / "scene.tif"), "-p", f"target={d / 'vnir.csv'}",
                                  "--wavelengths", "400:1000", "-o", str(d / "v.tif"), "-q"])
    assert r.exit_code == 0, r.output
    mean = ",".join(repr(float(v)) for v in X.reshape(-1, X.shape[2]).astype(np.float64).mean(0))
    r = CliRunner().invoke(main, ["detect", "ace", str(d / "scene.tif"), "-p", f"target={mean}",
                                  "-o", str(d / "m.tif"), "-q"])
    assert r.exit_code == 2 and "equals the background mean" in r.output and not (d / "m.tif").exists()
