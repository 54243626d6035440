"""Spectral libraries (issue 26, first part): ENVI .sli/.hdr and CSV read and written, resampled to a scene's
bands without extrapolation, one-line errors for bad input."""

import numpy as np
import pytest

from hadcore.errors import FileError, ParameterError
from hadcore.library import SpectralLibrary, read_library, write_library
from hadcore.resample import FWHM_TO_SIGMA


def _lib():
    wl = np.arange(400.0, 2501.0, 1.0)
    names = ["green paint", "asphalt", "dry grass"]
    spectra = np.stack([0.05 + 0.3 * np.exp(-0.5 * ((wl - 550.0) / 40.0) ** 2),
                        0.08 + 0.00002 * (wl - 400.0),
                        0.1 + 0.2 / (1 + np.exp(-(wl - 700.0) / 20.0))])
    return SpectralLibrary(names=names, spectra=spectra, wavelengths=wl, source="test")


def test_envi_round_trip_and_header_layout(tmp_path):
    lib = _lib()
    out = write_library(lib, tmp_path / "lib.sli")
    assert out == tmp_path / "lib.sli" and (tmp_path / "lib.hdr").exists()
    hdr = (tmp_path / "lib.hdr").read_text()
    for field in ("file type = ENVI Spectral Library", "bands = 1", "data type = 4", "byte order = 0",
                  "lines = 3", f"samples = {lib.spectra.shape[1]}", "wavelength units = Nanometers",
                  "spectra names = {green paint, asphalt, dry grass}"):
        assert field in hdr, field
    assert (tmp_path / "lib.sli").stat().st_size == 3 * lib.spectra.shape[1] * 4
    back = read_library(tmp_path / "lib.hdr")  # either file of the pair opens it
    assert back.names == lib.names
    np.testing.assert_allclose(back.spectra, lib.spectra, rtol=1e-6)
    np.testing.assert_allclose(back.wavelengths, lib.wavelengths)
    with pytest.raises(FileError, match="exists"):
        write_library(lib, tmp_path / "lib.sli")


def test_reads_an_envi_library_as_other_software_writes_it(tmp_path):
    """Big-endian float64, micrometres, a header offset and a reflectance scale factor of 10000."""
    wl_um = np.array([0.45, 0.55, 0.65, 0.85, 1.65])
    vals = np.array([[500.0, 800.0, 600.0, 3000.0, 2500.0], [1200.0, 1300.0, 1400.0, 1500.0, 1600.0]])
    (tmp_path / "usgs.sli").write_bytes(b"\0" * 16 + vals.astype(">f8").tobytes())
    (tmp_path / "usgs.hdr").write_text(
        "ENVI\ndescription = {test}\nsamples = 5\nlines = 2\nbands = 1\nheader offset = 16\n"
        "file type = ENVI Spectral Library\ndata type = 5\ninterleave = bsq\nbyte order = 1\n"
        "reflectance scale factor = 10000\nwavelength units = Micrometers\n"
        "spectra names = {\n Vegetation,\n Concrete}\nwavelength = {\n 0.45, 0.55, 0.65,\n 0.85, 1.65}\n")
    lib = read_library(tmp_path / "usgs.sli")
    assert lib.names == ["Vegetation", "Concrete"]
    np.testing.assert_allclose(lib.wavelengths, wl_um * 1000)
    np.testing.assert_allclose(lib.spectrum("concrete"), vals[1] / 10000)  # names: case-insensitive


def test_csv_round_trip_and_micrometre_columns(tmp_path):
    lib = _lib()
    write_library(lib, tmp_path / "lib.csv")
    back = read_library(tmp_path / "lib.csv")
    assert back.names == lib.names
    np.testing.assert_allclose(back.spectra, lib.spectra, rtol=1e-12)
    (tmp_path / "um.csv").write_text("wavelength_um,a\n0.5,0.1\n0.6,0.2\n0.7,0.3\n")
    np.testing.assert_allclose(read_library(tmp_path / "um.csv").wavelengths, [500.0, 600.0, 700.0])


def test_resampled_to_a_sensor_with_its_band_widths_and_gaps_reported():
    lib = _lib()
    centres = np.array([380.0, 550.0, 700.0, 1400.0, 2450.0, 2600.0])
    fwhm = np.full(centres.size, 10.0)
    vals, covered = lib.resample(centres, fwhm)
    assert covered.tolist() == [False, True, True, True, True, False]  # 380 and 2600: outside 400-2500
    assert np.isnan(vals[:, ~covered]).all()
    # the Gaussian band over the library's 1 nm samples, written directly
    sig = 10.0 * FWHM_TO_SIGMA
    w = np.exp(-0.5 * ((lib.wavelengths - 550.0) / sig) ** 2)
    # (rtol 1e-5: the response is cut where it falls below 1e-4 of its peak)
    np.testing.assert_allclose(vals[0, 1], (w * lib.spectra[0]).sum() / w.sum(), rtol=1e-5)
    np.testing.assert_allclose(vals[1, 3], 0.08 + 0.00002 * 1000.0, rtol=1e-9)  # a straight line: its value
    note = lib.coverage_note(centres, covered)
    assert "does not cover 2 of the 6 bands (380-2600 nm)" in note


def test_bad_input_is_one_line(tmp_path):
    lib = _lib()
    with pytest.raises(ParameterError, match="close names: green paint") as e:
        lib.spectrum("green pain")
    assert "\n" not in str(e.value)
    with pytest.raises(FileError, match="not found"):
        read_library(tmp_path / "nope.sli")
    write_library(lib, tmp_path / "t.sli")
    data = (tmp_path / "t.sli").read_bytes()
    (tmp_path / "t.sli").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileError, match="truncated"):
        read_library(tmp_path / "t.sli")
    bare = SpectralLibrary(names=["x"], spectra=[[1.0, 2.0]], source="bare.sli")
    with pytest.raises(ParameterError, match="has no wavelengths"):
        bare.resample([500.0])
    (tmp_path / "bad.csv").write_text("name,a\n1,x\n")
    with pytest.raises(FileError):
        read_library(tmp_path / "bad.csv")
