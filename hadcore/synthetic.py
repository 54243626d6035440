"""Synthetic thermal-infrared (long-wave, 8-14 um) hyperspectral scenes with ground truth, from physics.

No thermal-infrared hyperspectral scene with anomaly ground truth is public (KDAD's House / Tower / Truck
are not), so :func:`thermal_scene` builds one:

- band set like KDAD's sensor: ``bands`` (110) centres spaced evenly over 8.06-11.22 um;
- a background of several materials (vegetation, quartz-rich soil, asphalt, water, concrete), each with an
  emissivity spectrum (a smooth base level minus Gaussian absorption features: the quartz reststrahlen
  doublet near 8.6 / 9.2 um, a carbonate feature near 11.2 um, ...), laid out by smooth random fields;
- a temperature field per material (its mean plus a smooth random field);
- at-sensor radiance from Planck's law with a simple atmosphere:
  ``L = tau * (eps * B(T) + (1 - eps) * L_down) + L_up``, with transmittance ``tau`` that has an ozone dip
  near 9.6 um, ``L_down`` and ``L_up`` black-body terms of a cooler sky / air layer;
- small targets (1-3 pixels across) whose emissivity (a different material: painted metal, plastic,
  carbonate rock) or temperature (hot / cold objects) differs from the background, with sub-pixel edges:
  a target's fill fraction mixes its radiance linearly with the background's;
- sensor noise: Gaussian with the standard deviation of a noise-equivalent temperature difference
  ``nedt`` (K) at 300 K, per band.

Radiance is in W m^-2 sr^-1 um^-1. Everything random comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import numpy as np
from scipy.ndimage import gaussian_filter

from .errors import ParameterError

__all__ = ["ThermalScene", "thermal_scene", "planck_radiance", "emissivity", "MATERIALS", "TARGETS",
           "KDAD_WAVELENGTHS"]

_H = 6.62607015e-34  # Planck constant (J s)
_C = 2.99792458e8  # speed of light (m / s)
_K = 1.380649e-23  # Boltzmann constant (J / K)

#: KDAD's sensor range (um); the paper's scenes have 110 bands over 8.06-11.22 um
KDAD_WAVELENGTHS = (8.06, 11.22)

# emissivity models: (base level, slope per um around 10 um, [(centre um, depth, width um), ...])
MATERIALS: Dict[str, tuple] = {
    "vegetation": (0.975, 0.002, []),
    "soil": (0.96, 0.004, [(8.62, 0.14, 0.28), (9.22, 0.11, 0.25)]),  # quartz reststrahlen doublet
    "asphalt": (0.95, 0.0, [(9.0, 0.03, 0.5)]),
    "water": (0.985, -0.004, []),
    "concrete": (0.93, 0.005, [(8.9, 0.05, 0.6), (11.1, 0.03, 0.25)]),
}
#: mean temperatures (K) of the background materials
MATERIAL_T = {"vegetation": 296.0, "soil": 306.0, "asphalt": 312.0, "water": 291.0, "concrete": 304.0}

TARGETS: Dict[str, tuple] = {
    "painted_metal": (0.86, -0.01, [(9.5, 0.06, 0.8)]),
    "plastic": (0.92, 0.0, [(8.7, 0.08, 0.2), (10.1, 0.05, 0.3)]),
    "carbonate": (0.96, 0.0, [(11.2, 0.12, 0.2)]),
}


@dataclass
class ThermalScene:
    """A synthetic scene: ``cube`` (H, W, B) float32 radiance, ``gt`` (H, W) uint8 (1 = target pixel),
    ``wavelengths`` (B,) um, plus the truth it was made from."""

    cube: np.ndarray
    gt: np.ndarray
    wavelengths: np.ndarray
    temperature: np.ndarray
    materials: np.ndarray
    material_names: tuple
    targets: list = field(default_factory=list)

    def __iter__(self):  # cube, gt, wavelengths = thermal_scene(...)
        return iter((self.cube, self.gt, self.wavelengths))


def planck_radiance(wavelength_um, temperature_k) -> np.ndarray:
    """Black-body spectral radiance B(lambda, T) in W m^-2 sr^-1 um^-1 (broadcasts)."""
    lam = np.asarray(wavelength_um, dtype=np.float64) * 1e-6
    T = np.asarray(temperature_k, dtype=np.float64)
    x = _H * _C / (lam * _K * T)
    return (2.0 * _H * _C ** 2 / lam ** 5) / np.expm1(x) * 1e-6


def emissivity(name: str, wavelength_um) -> np.ndarray:
    """Emissivity spectrum of a material of :data:`MATERIALS` or :data:`TARGETS`, in (0, 1)."""
    table = {**MATERIALS, **TARGETS}
    if name not in table:
        raise ParameterError(f"unknown material {name!r}; expected one of {', '.join(table)}")
    base, slope, feats = table[name]
    wl = np.asarray(wavelength_um, dtype=np.float64)
    e = base + slope * (wl - 10.0)
    for c, depth, width in feats:
        e = e - depth * np.exp(-0.5 * ((wl - c) / width) ** 2)
    return np.clip(e, 0.05, 0.999)


def _atmosphere(wl):
    tau = 0.92 - 0.04 * (wl - 10.0) ** 2 / 4.0 - 0.12 * np.exp(-0.5 * ((wl - 9.6) / 0.15) ** 2)  # ozone
    tau = np.clip(tau, 0.3, 0.99)
    l_up = (1.0 - tau) * planck_radiance(wl, 285.0)
    l_down = 1.4 * (1.0 - tau) * planck_radiance(wl, 270.0)
    return tau, l_up, l_down


def thermal_scene(height: int = 100, width: int = 100, bands: int = 110, wl_range=KDAD_WAVELENGTHS,
                  n_targets: int = 12, target_kind: str = "mixed", delta_t: float = 3.0,
                  nedt: float = 0.1, n_materials: int = 4, seed: int = 0) -> ThermalScene:
    """Make a thermal-infrared scene (see the module docstring).

    Parameters
    ----------
    height, width, bands : int
        Size of the cube (at least 16 x 16 pixels and 2 bands).
    wl_range : (float, float)
        First and last band centre in um, inside 3-20 um.
    n_targets : int
        Number of targets (each 1-3 pixels across; they never touch each other or the border).
    target_kind : {"mixed", "emissivity", "temperature"}
        Targets differing in emissivity (another material at the local temperature), in temperature
        (the local material, ``delta_t`` K hotter or colder, at random), or half of each.
    delta_t : float
        Temperature difference (K) of temperature targets.
    nedt : float
        Noise-equivalent temperature difference (K at 300 K); 0 for no noise.
    n_materials : int
        Background materials used (1-5).
    seed : int
        Seed of every random draw.
    """
    height, width, bands, n_targets, n_materials = map(int, (height, width, bands, n_targets, n_materials))
    if height < 16 or width < 16:
        raise ParameterError(f"thermal_scene: expected at least 16 x 16 pixels, got {height} x {width}")
    if bands < 2:
        raise ParameterError(f"thermal_scene: expected at least 2 bands, got {bands}")
    lo, hi = float(wl_range[0]), float(wl_range[1])
    if not (3.0 <= lo < hi <= 20.0):
        raise ParameterError(f"thermal_scene: expected 3 <= first < last <= 20 um, got {wl_range!r}")
    if target_kind not in ("mixed", "emissivity", "temperature"):
        raise ParameterError(f"thermal_scene: target_kind must be mixed, emissivity or temperature, got {target_kind!r}")
    if not 1 <= n_materials <= len(MATERIALS):
        raise ParameterError(f"thermal_scene: n_materials must be in [1, {len(MATERIALS)}], got {n_materials}")
    if n_targets < 0 or n_targets * 36 > height * width:
        raise ParameterError(f"thermal_scene: n_targets must be in [0, {height * width // 36}], got {n_targets}")
    if nedt < 0 or delta_t < 0:
        raise ParameterError(f"thermal_scene: nedt and delta_t must be >= 0, got {nedt} and {delta_t}")

    rng = np.random.default_rng(seed)
    wl = np.linspace(lo, hi, bands)
    names = tuple(str(n) for n in rng.permutation(list(MATERIALS))[:n_materials])
    # material map: argmax of smooth random fields (irregular, blobby regions)
    sigma = max(height, width) / 10.0
    fields = np.stack([gaussian_filter(rng.standard_normal((height, width)), sigma, mode="reflect")
                       for _ in names])
    mat = np.argmax(fields, axis=0)
    eps_bg = np.stack([emissivity(n, wl) for n in names])  # (M, B)
    # small within-material emissivity variability (grain size, moisture): a smooth scaling field
    var = 1.0 + 0.004 * gaussian_filter(rng.standard_normal((height, width)), 2.0) / 0.1
    eps = np.clip(eps_bg[mat] * var[..., None], 0.05, 0.999)
    t_field = gaussian_filter(rng.standard_normal((height, width)), sigma / 2.0, mode="reflect")
    t_field = t_field / max(t_field.std(), 1e-12)
    T = np.array([MATERIAL_T[n] for n in names])[mat] + 1.5 * t_field + 0.3 * rng.standard_normal((height, width))

    tau, l_up, l_down = _atmosphere(wl)

    def radiance(e, t):
        return tau * (e * planck_radiance(wl, t[..., None]) + (1.0 - e) * l_down) + l_up

    L = radiance(eps, T)
    gt = np.zeros((height, width), dtype=np.uint8)
    occupied = np.zeros((height, width), dtype=bool)
    targets = []
    kinds = list(TARGETS)
    for i in range(n_targets):
        kind = target_kind if target_kind != "mixed" else ("emissivity" if i % 2 == 0 else "temperature")
        size = int(rng.integers(1, 4))
        for _ in range(1000):
            r = int(rng.integers(4, height - 4 - size))
            c = int(rng.integers(4, width - 4 - size))
            if not occupied[r - 3:r + size + 3, c - 3:c + size + 3].any():
                break
        else:  # pragma: no cover - the size check above leaves room
            raise ParameterError("thermal_scene: could not place the targets; ask for fewer")
        occupied[r:r + size, c:c + size] = True
        # fill fractions: full inside, partial on a random edge when the target is larger than 1 pixel
        frac = np.ones((size, size))
        if size > 1:
            frac[-1, :] = rng.uniform(0.4, 0.9)
        else:
            frac[:] = rng.uniform(0.6, 1.0)
        blk = (slice(r, r + size), slice(c, c + size))
        if kind == "emissivity":
            mname = kinds[int(rng.integers(len(kinds)))]
            e_t = emissivity(mname, wl)[None, None] * np.ones((size, size, 1))
            L_t = radiance(e_t, T[blk])
            info = {"row": r, "col": c, "size": size, "kind": kind, "material": mname}
        else:
            dt = delta_t * (1.0 if rng.random() < 0.7 else -1.0)
            L_t = radiance(eps[blk], T[blk] + dt)
            info = {"row": r, "col": c, "size": size, "kind": kind, "delta_t": dt}
        L[blk] = frac[..., None] * L_t + (1.0 - frac[..., None]) * L[blk]
        gt[blk] = 1
        targets.append(info)
    if nedt > 0:
        # radiance noise equal to nedt K at 300 K: sigma = dB/dT * nedt, per band
        dbdt = (planck_radiance(wl, 300.5) - planck_radiance(wl, 299.5)) * tau
        L = L + rng.standard_normal(L.shape) * (dbdt * nedt)
    return ThermalScene(cube=L.astype(np.float32), gt=gt, wavelengths=wl, temperature=T,
                        materials=mat.astype(np.uint8), material_names=names, targets=targets)
