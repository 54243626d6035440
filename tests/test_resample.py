"""Spectral resampling by Gaussian band responses (hadcore.resample): what the sensor variants and library
matching rely on."""

import numpy as np
import pytest

from hadcore.errors import ParameterError
from hadcore.resample import FWHM_TO_SIGMA, resample_spectra, response_matrix


def test_a_linear_spectrum_is_read_at_the_band_centres():
    src = np.arange(400.0, 1001.0, 10.0)
    spec = 0.2 + 1e-3 * (src - 400.0)
    dst = np.array([455.0, 612.5, 800.0])
    out, cov = resample_spectra(spec, src, dst, [12.0, 20.0, 8.0])
    assert cov.all()
    # a symmetric response over a straight line gives the line's value at the centre
    np.testing.assert_allclose(out, 0.2 + 1e-3 * (dst - 400.0), rtol=1e-6)
    lin, _ = resample_spectra(spec, src, dst)  # no FWHM: linear interpolation
    np.testing.assert_allclose(lin, out, rtol=1e-9)


def test_rows_are_weights_and_a_narrow_line_is_smoothed_by_the_band_width():
    src = np.arange(400.0, 1001.0, 1.0)
    spec = np.zeros(src.size)
    spec[src == 700.0] = 1.0  # a 1 nm line
    M, cov = response_matrix(src, [700.0, 720.0], [20.0, 20.0])
    np.testing.assert_allclose(M[cov].sum(axis=1), 1.0)
    out = M @ spec
    sig = 20.0 * FWHM_TO_SIGMA
    # the band centred on the line sees its share of the Gaussian; one FWHM (20 nm) away, 1/16 of that
    assert out[0] == pytest.approx(1.0 / (sig * np.sqrt(2 * np.pi)), rel=0.02)
    assert out[1] == pytest.approx(out[0] * 0.0625, rel=0.05)


def test_nothing_is_extrapolated_and_gaps_are_reported():
    src = np.r_[np.arange(400.0, 1341.0, 10.0), np.arange(1460.0, 2401.0, 10.0)]  # a water-vapour gap
    dst = np.array([395.0, 405.0, 1400.0, 2000.0, 2398.0])
    M, cov = response_matrix(src, dst, 10.0)
    # 395: below the first band; 405 +- 5: inside; 1400: in the gap; 2398 + 5 beyond the last band
    assert cov.tolist() == [False, True, False, True, False]
    assert not M[~cov].any()
    out, cov2 = resample_spectra(np.ones((3, 4, src.size), np.float32), src, dst, 10.0)
    assert out.shape == (3, 4, 2) and out.dtype == np.float32 and np.allclose(out, 1.0)


def test_bad_input_is_one_line():
    with pytest.raises(ParameterError, match="strictly increasing"):
        response_matrix([500.0, 400.0], [450.0])
    with pytest.raises(ParameterError, match="source wavelengths"):
        resample_spectra(np.ones(5), np.arange(4.0), [1.5])
