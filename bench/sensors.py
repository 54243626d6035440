"""Sensor shifts simulated on the nine shared scenes: other band sets, noise, coarser pixels.

The scenes' ``.npz`` files carry no wavelengths, so each gets its sensor's nominal grid (``scene_wavelengths``):

- AVIRIS (ABU airport, beach and urban scenes, San Diego): 224 bands, 366-2496 nm at about 9.6 nm
  (R. O. Green et al., "Imaging spectroscopy and the Airborne Visible/Infrared Imaging Spectrometer (AVIRIS)",
  Remote Sens. Environ. 65, 1998, sec. 2);
- HYDICE: 210 bands, 400-2500 nm (Basedow et al., "HYDICE system: implementation and performance", SPIE 2480, 1995);
- ROSIS-03 (Pavia): 115 bands, 430-860 nm (Pavia University/Centre scene descriptions of the GIC group,
  University of the Basque Country).

The processed scenes dropped their water-vapour and noisy bands; which ones is not recorded. The grid keeps the
bands outside the 1.4 and 1.9 um windows and below 2450 nm (``hadcore.bands.WATER_VAPOUR_NM``), then takes as many
as the scene has, evenly spaced. The positions can be off by a few bands; what the variants test is a detector's
response to a change of sensor (band count, width, range, noise, pixel size), which survives that approximation.

Target sensors (centres and FWHM in nm), each resampled with Gaussian band responses from the scene's own grid
(``hadcore.resample``); target bands the scene does not cover are dropped, never extrapolated:

- ``vnir64``: a 64-band visible/near-infrared imager, 375-1050 nm, FWHM 10 nm rising to 20 nm (the kind of
  airborne VNIR sensor of the held-out 64-band scene: broad bands, no SWIR);
- ``enmap``: VNIR 91 bands 420-1000 nm (6.5 nm sampling, FWHM 8.1), SWIR 133 bands 900-2450 nm (about 11.7 nm,
  FWHM 12.5) (Guanter et al., "The EnMAP spaceborne imaging spectroscopy mission", Remote Sens. 7, 2015, table 1);
- ``emit``: 285 bands 381-2493 nm at 7.4 nm, FWHM 8.5 (Green et al., EMIT L1B ATBD, JPL D-104187, 2020);
- ``prisma``: VNIR 66 bands 400-1010 nm, SWIR 173 bands 920-2505 nm, FWHM 12 (ASI, PRISMA Products
  Specification Document, PRS-SY-... issue 2.3, 2020);
- ``hymap``: 126 bands 450-2480 nm, FWHM 16 (Cocks et al., "The HyMap airborne hyperspectral sensor", 1st EARSeL
  Workshop on Imaging Spectroscopy, 1998);
- ``hyperion``: the 196 calibrated bands, VNIR 426-925 nm and SWIR 912-2395 nm at about 10 nm, FWHM 11
  (Pearlman et al., "Hyperion, a space-based imaging spectrometer", IEEE TGRS 41(6), 2003), with its noise: a
  signal-to-noise ratio of 150 in the VNIR falling to 50 in the SWIR and 20 beyond 2200 nm and in the
  900-1000 nm overlap, and vertical stripes (a per-column gain error of 1 % in every tenth band).

Other shifts on the scene's own bands: ``snr100`` and ``snr25`` (white Gaussian noise with the standard deviation
of each band's mean over that ratio), and ``coarse2`` (2 x 2 pixel means: pixels four times larger; an output
pixel is an anomaly when any of its four is, i.e. a sub-pixel target stays a target).

Every random step is seeded from the scene and variant names: the same variant is the same cube in every run.
"""

from __future__ import annotations

import zlib

import numpy as np

from hadcore.bands import WATER_VAPOUR_NM
from hadcore.resample import response_matrix

SENSOR_OF = {"abu-airport-1": "aviris", "abu-airport-2": "aviris", "abu-beach-1": "aviris",
             "abu-beach-2": "aviris", "abu-urban-1": "aviris", "abu-urban-2": "aviris",
             "sandiego-lren": "aviris", "hydice-162": "hydice", "pavia-100": "rosis"}
NATIVE = {"aviris": (366.0, 2496.0, 224), "hydice": (400.0, 2500.0, 210), "rosis": (430.0, 860.0, 115)}
SENSOR_VARIANTS = ["vnir64", "enmap", "emit", "prisma", "hymap", "hyperion"]
VARIANTS = ["orig"] + SENSOR_VARIANTS + ["snr100", "snr25", "coarse2"]


def scene_wavelengths(scene: str, n_bands: int) -> np.ndarray:
    lo, hi, n = NATIVE[SENSOR_OF[scene]]
    grid = np.linspace(lo, hi, n)
    good = np.ones(n, bool)
    for a, b in WATER_VAPOUR_NM:
        good &= ~((grid >= a) & (grid <= b))
    cand = grid[good]
    if cand.size < n_bands:  # keep the whole grid's span
        cand = grid
    return cand[np.round(np.linspace(0, cand.size - 1, n_bands)).astype(int)]


def target_bands(name: str):
    """(centres, fwhm) in nm of a simulated sensor."""
    if name == "vnir64":
        c = np.linspace(375.0, 1050.0, 64)
        return c, np.linspace(10.0, 20.0, 64)
    if name == "enmap":
        c = np.r_[np.linspace(420.0, 1000.0, 91), np.linspace(900.0, 2450.0, 133)]
        return c, np.r_[np.full(91, 8.1), np.full(133, 12.5)]
    if name == "emit":
        c = np.linspace(381.0, 2493.0, 285)
        return c, np.full(c.size, 8.5)
    if name == "prisma":
        c = np.r_[np.linspace(400.0, 1010.0, 66), np.linspace(920.0, 2505.0, 173)]
        return c, np.full(c.size, 12.0)
    if name == "hymap":
        c = np.linspace(450.0, 2480.0, 126)
        return c, np.full(c.size, 16.0)
    if name == "hyperion":
        c = np.r_[np.linspace(426.0, 925.0, 50), np.linspace(912.0, 2395.0, 146)]
        return c, np.full(c.size, 11.0)
    raise KeyError(name)


def _rng(scene: str, variant: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{scene}/{variant}".encode()))


def _noise(cube: np.ndarray, snr, rng) -> np.ndarray:
    sig = np.abs(cube.reshape(-1, cube.shape[-1]).mean(axis=0)) / np.asarray(snr, dtype=float)
    return (cube + rng.standard_normal(cube.shape, dtype=np.float32) * sig.astype(np.float32)).astype(np.float32)


def make_variant(cube: np.ndarray, gt: np.ndarray, scene: str, variant: str):
    """(cube, gt, wavelengths or None) of ``variant`` of a scene."""
    cube = np.asarray(cube, dtype=np.float32)
    wl = scene_wavelengths(scene, cube.shape[-1])
    if variant == "orig":
        return cube, gt, wl
    if variant in ("snr100", "snr25"):
        return _noise(cube, float(variant[3:]), _rng(scene, variant)), gt, wl
    if variant == "coarse2":
        h, w = (cube.shape[0] // 2) * 2, (cube.shape[1] // 2) * 2
        c = cube[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3)).astype(np.float32)
        g = gt[:h, :w].reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))
        return c, g, wl
    centres, fwhm = target_bands(variant)
    M, covered = response_matrix(wl, centres, fwhm)
    out = (cube.reshape(-1, cube.shape[-1]).astype(np.float64) @ M[covered].T).reshape(cube.shape[:2] + (-1,))
    out = out.astype(np.float32)
    cw = centres[covered]
    if variant == "hyperion":
        rng = _rng(scene, variant)
        snr = np.where(cw < 900, 150.0, 50.0)
        snr[(cw >= 900) & (cw <= 1000)] = 20.0
        snr[cw > 2200] = 20.0
        out = _noise(out, snr, rng)
        gain = 1.0 + 0.01 * rng.standard_normal((out.shape[1], out.shape[2])).astype(np.float32)
        stripe = np.zeros(out.shape[2], bool)
        stripe[::10] = True
        out[:, :, stripe] *= gain[:, stripe][None]
    return out, gt, cw
