"""Small ASI PRISMA L1 / L2D products (HDF-EOS5 ``.he5``) holding a real benchmark cube.

The layout follows the public readers of ASI's products (cited below by tag); ASI's own *PRISMA Products
Specification Document* (issue 2.3, 12/03/2020) is not openly downloadable, and these readers are written
against it and against real files:

[ENMAPBOX] EnMAP-Box/enmap-box, ``enmapboxprocessing/algorithm/importprismal1algorithm.py`` and
           ``importprismal2dalgorithm.py`` (swath and dataset paths; ``np.transpose(array, [1, 0, 2])`` of GDAL's
           array, i.e. cubes stored (rows, bands, columns); band lists kept where ``v != 0`` and reversed;
           ``spatialInfo``: extent = UL/LR corner attributes widened by half a pixel, 30 m, ``Epsg_Code``;
           pixels 0 in every band are no data; L2D geolocation/geometric field names)
[PRREAD]   IREA-CNR-MI/prismaread (R): ``R/pr_convert.R`` (root attributes ``List_Cw_Vnir`` ... read with
           ``h5attr(f, ...)``, ordered with ``order()``, ``Processing_Level``, ``Sun_zenith_angle``,
           ``Sun_azimuth_angle``, ``Product_StartTime``), ``R/pr_create_vnir.R`` (``HDFEOS/SWATHS/PRS_L<lev>_HCO
           /Data Fields/VNIR_Cube``, ``ScaleFactor_Vnir`` / ``Offset_Vnir`` for L1, ``L2ScaleVnirMax`` /
           ``L2ScaleVnirMin`` for L2, 66 VNIR slots, 0-wavelength slots skipped), ``R/pr_rastwrite_lines.R``
           (L2: ``scale_min + DN * (scale_max - scale_min) / 65535``), ``R/pr_get_geoloc.R`` (L1
           ``Geolocation Fields/Latitude_VNIR`` ...; L2 ``Latitude`` / ``Longitude``; L2D ``Projection_Id``,
           ``Projection_Name``, ``Epsg_Code``, ``Product_{UL,UR,LL,LR}corner_{easting,northing}``),
           ``R/pr_setext_L2D.R`` (extent starts 15 m = half a pixel before the corner values: pixel centres)
[HYPERCOAST] opengeos/HyperCoast, ``hypercoast/prisma.py`` (L2D paths and scale attributes, DN max 65535,
           rows on axis 0 and columns on axis 2, VNIR and SWIR concatenated on axis 1)
[HYTOOLS]  EnSpec/hytools, ``hytools/io/prisma.py`` (lines = shape[0], bands = shape[1], columns = shape[2];
           ``Projection_Name`` / ``Projection_Id`` byte strings; ``Product_center_lat``)
[ACOLITE]  acolite/acolite, ``acolite/prisma/l1_convert.py`` (L1 radiance ``Offset + DN / ScaleFactor``; L1
           ``Latitude_SWIR`` / ``Longitude_SWIR``)
[S2LIKE]   senbox-org/sen2like, ``prisma4sen2like/prisma/prisma_s2_spectral_aggregation.py`` (L1 radiance
           ``DN / gain + offset`` in W m-2 sr-1 um-1)
[SRF]      marcyin.github.io/spectral_response, sensor note "PRISMA" (an official L1 granule's root vectors
           List_Cw_Vnir, List_Cw_Swir, List_Fwhm_Vnir, List_Fwhm_Swir; 66 valid VNIR rows and 172 valid SWIR
           rows, one trailing zero-valued SWIR placeholder slot); eo-atlas.org "PRISMA L2D Surface Reflectance"
           (239 band slots, 400-2505 nm, 30 m; 920-1010 nm overlap of the VNIR and SWIR cubes)
[EOS5]     HDF-EOS5 layout as dumped by the HDF Group (support.hdfgroup.org h5toh5 "Experiment2" dumps of .he5
           files): ``HDFEOS/SWATHS/<swath>/Data Fields`` and ``Geolocation Fields``,
           ``HDFEOS/ADDITIONAL/FILE_ATTRIBUTES``; HDF-EOS5 keeps ``HDFEOS INFORMATION/StructMetadata.0``

What is synthetic (not from the sources): the cube (a shared benchmark scene, its bands linearly resampled to
PRISMA's 63 + 172 real bands, plus a little seeded noise so the upsampled bands stay linearly independent), the
exact wavelength / FWHM values (a smooth stand-in over the documented ranges), the scale attributes (chosen so
the cube fills the uint16 range), the place of the VNIR placeholders (three leading slots in file order, as some
L2D readers drop, e.g. ``vnir[:, 3:, :]``), the geolocation arrays and the StructMetadata text.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

__all__ = ["make_prisma", "prisma_bands", "prisma_cube", "read_truth", "VNIR_SLOTS", "SWIR_SLOTS",
           "VNIR_PLACEHOLDERS", "SWIR_PLACEHOLDERS", "N_REAL", "PIXEL"]

#: [PRREAD] ``seqbands <- 1:66``; [SRF] / eo-atlas 239 slots = 66 VNIR + 173 SWIR
VNIR_SLOTS, SWIR_SLOTS = 66, 173
#: file-order slots holding 0 (no band): [SRF] one trailing SWIR slot; three leading VNIR slots (synthetic place)
VNIR_PLACEHOLDERS = (0, 1, 2)
SWIR_PLACEHOLDERS = (172,)
N_VNIR = VNIR_SLOTS - len(VNIR_PLACEHOLDERS)
N_SWIR = SWIR_SLOTS - len(SWIR_PLACEHOLDERS)
N_REAL = N_VNIR + N_SWIR
#: [ENMAPBOX] ``spatialInfo(metadata, 30)``; eo-atlas 30 m
PIXEL = 30.0
#: [PRREAD] example file names (PRS_L1_STD_OFFL_..., PRS_L2D_STD_...)
NAMES = {"L1": "PRS_L1_STD_OFFL_20200524103704_20200524103708_0001.he5",
         "L2B": "PRS_L2B_STD_20200524103704_20200524103708_0001.he5",
         "L2C": "PRS_L2C_STD_20200524103704_20200524103708_0001.he5",
         "L2D": "PRS_L2D_STD_20200524103704_20200524103708_0001.he5"}


def prisma_bands():
    """File-order band tables: ``(cw_vnir (66,), fwhm_vnir (66,), cw_swir (173,), fwhm_swir (173,))`` float32 in
    nm, DESCENDING with 0 in the placeholder slots ([PRREAD] / [ENMAPBOX] reverse the lists to get ascending
    order and skip zeros). Values: VNIR ~402-1010 nm, SWIR ~920-2497 nm ([SRF], eo-atlas), smooth FWHM."""
    v = np.linspace(402.45, 1010.02, N_VNIR)
    s = np.linspace(920.31, 2497.06, N_SWIR)
    fv = 10.0 + 2.5 * np.sin(np.linspace(0.0, np.pi, N_VNIR))
    fs = 9.5 + 3.0 * np.linspace(0.0, 1.0, N_SWIR)

    def slots(values, n, holes):
        out = np.zeros(n, dtype=np.float32)
        keep = [i for i in range(n) if i not in holes]
        out[keep] = values[::-1]  # descending in file order
        return out

    return (slots(v, VNIR_SLOTS, VNIR_PLACEHOLDERS), slots(fv, VNIR_SLOTS, VNIR_PLACEHOLDERS),
            slots(s, SWIR_SLOTS, SWIR_PLACEHOLDERS), slots(fs, SWIR_SLOTS, SWIR_PLACEHOLDERS))


def prisma_cube(cube: np.ndarray, noise: float = 0.003, seed: int = 0) -> np.ndarray:
    """(H, W, N_REAL) float64: ``cube``'s bands linearly resampled onto PRISMA's real bands in the reader's order
    (VNIR ascending, then SWIR ascending), plus seeded Gaussian noise of ``noise`` x the cube's mean absolute
    value (the upsampled bands would otherwise be linear combinations of fewer bands: a singular covariance)."""
    c = np.asarray(cube, dtype=np.float64)
    B = c.shape[2]
    t = np.linspace(0.0, B - 1.0, N_REAL)
    lo = np.minimum(np.floor(t).astype(int), B - 2)
    frac = t - lo
    out = c[..., lo] * (1.0 - frac) + c[..., lo + 1] * frac
    if noise:
        rng = np.random.default_rng(seed)
        out += rng.normal(0.0, noise * float(np.mean(np.abs(out))), size=out.shape)
    return out


def _dequantise(dn_hkw: np.ndarray, gain, offset) -> np.ndarray:
    """(h, k, w) DN -> (h, w, k) float32 as a float32 reader computes it: float32(DN) * gain + offset."""
    vals = np.multiply(np.transpose(dn_hkw, (0, 2, 1)), np.float32(gain), dtype=np.float32)
    vals += np.float32(offset)
    return vals


def make_prisma(folder, cube: np.ndarray, gt: Optional[np.ndarray] = None, level: str = "L2D", *,
                name: Optional[str] = None, drop: Iterable[str] = (), all_placeholders: bool = False,
                flags: bool = False, bad_slots: Iterable[int] = (), epsg: int = 32632,
                ul_centre=(399015.0, 4999985.0), l1_offset: Optional[float] = None, chunks=None,
                compression: Optional[str] = None, noise: float = 0.003, seed: int = 0) -> Path:
    """Write a PRISMA ``level`` ("L1", "L2B", "L2C" or "L2D") product holding ``cube`` (H, W, B, any B >= 2)
    into ``folder``; returns its path.

    The cube is resampled to PRISMA's bands (:func:`prisma_cube`) and quantised to uint16 DN with the level's
    scale attributes. ``drop``: names of root attributes to leave out (e.g. "List_Cw_Vnir", "L2ScaleSwirMax",
    "Epsg_Code") or "VNIR_Cube" / "SWIR_Cube". ``all_placeholders``: every wavelength 0. ``flags``: also write
    ``List_Cw_Vnir_Flags`` / ``List_Cw_Swir_Flags`` (1 = band present), with 0 for VNIR file slots in
    ``bad_slots``. ``ul_centre``: centre of the upper-left pixel (L2D). ``l1_offset``: the L1 ``Offset_*``
    attributes (real products seen by the readers have 0; by default the cube's minimum less 2 % of its range,
    non-zero so that the rule is tested; DN below 1 are clipped). ``chunks``: HDF5
    chunk shape (rows, bands, columns) of the cubes (contiguous when None); ``compression`` an h5py filter for
    them (e.g. "gzip"; test-only: whether ASI compresses the cubes is not in the sources). ``gt`` (H, W):
    written beside the product as ``<stem>_gt.tif`` (georeferenced for L2D).

    Beside the product, ``<stem>_truth.npz`` keeps what a reader must return (see :func:`read_truth`).
    """
    import h5py

    level = level.upper()
    if level not in NAMES:
        raise ValueError(f"level must be one of {sorted(NAMES)}")
    drop = set(drop)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or NAMES[level])
    H, W = int(cube.shape[0]), int(cube.shape[1])

    real = prisma_cube(cube, noise=noise, seed=seed)  # (H, W, N_REAL), reader order
    cw_v, fw_v, cw_s, fw_s = prisma_bands()
    if all_placeholders:
        cw_v[:] = 0.0
        cw_s[:] = 0.0

    # reader order -> file slots: VNIR product index i sits in slot (VNIR_SLOTS - 1 - i) (descending, the
    # placeholders first); SWIR product index j in slot (N_SWIR - 1 - j) (descending, the placeholder last)
    v_slots = np.array([VNIR_SLOTS - 1 - i for i in range(N_VNIR)])
    s_slots = np.array([N_SWIR - 1 - j for j in range(N_SWIR)])
    parts = {"VNIR": (real[..., :N_VNIR], v_slots, VNIR_SLOTS), "SWIR": (real[..., N_VNIR:], s_slots, SWIR_SLOTS)}

    attrs = {}
    truth = np.empty((H, W, N_REAL), dtype=np.float32)
    dn_cubes = {}
    for cube_name, (vals, slots, nslots) in parts.items():
        cap = cube_name.capitalize()  # "Vnir" / "Swir" as in the attribute names [PRREAD]
        lo_v, hi_v = float(vals.min()), float(vals.max())
        span = max(hi_v - lo_v, 1e-6)
        if level == "L1":
            # [ACOLITE] / [S2LIKE]: radiance = DN / ScaleFactor + Offset; DN kept within 1..65534
            offset = np.float32(lo_v - 0.02 * span if l1_offset is None else l1_offset)
            scale = np.float32(64000.0 / (hi_v - float(offset)))
            dn = np.rint((vals - float(offset)) * float(scale))
            attrs[f"ScaleFactor_{cap}"] = scale  # [PRREAD] / [ACOLITE] root attributes
            attrs[f"Offset_{cap}"] = offset
            gain, off = np.float32(1.0) / scale, offset
        else:
            # [PRREAD] pr_rastwrite_lines / [HYPERCOAST]: value = Min + DN * (Max - Min) / 65535
            vmin = np.float32(lo_v - 0.02 * span)
            vmax = np.float32(hi_v + 0.02 * span)
            dn = np.rint((vals - float(vmin)) / (float(vmax) - float(vmin)) * 65535.0)
            attrs[f"L2Scale{cap}Min"] = vmin
            attrs[f"L2Scale{cap}Max"] = vmax
            gain, off = (float(vmax) - float(vmin)) / 65535.0, vmin
        dn = np.clip(dn, 1, 65535).astype(np.uint16)  # (H, W, k)
        # [ENMAPBOX] / [HYPERCOAST] / [HYTOOLS]: stored (rows, bands, columns), uint16
        full = np.zeros((H, nslots, W), dtype=np.uint16)  # placeholder slots hold 0
        full[:, slots, :] = np.transpose(dn, (0, 2, 1))
        dn_cubes[cube_name] = full
        # what the reader must give, in reader order (product index order = slots as listed)
        sel = full[:, slots, :]
        block = _dequantise(sel, gain, off)
        if cube_name == "VNIR":
            truth[..., :N_VNIR] = block
        else:
            truth[..., N_VNIR:] = block

    swath = f"PRS_{level}_HCO"  # [ENMAPBOX] / [PRREAD] PRS_L1_HCO, PRS_L2D_HCO
    with h5py.File(path, "w") as f:
        # [EOS5] HDF-EOS5 bookkeeping (text synthetic, minimal)
        f.create_dataset("HDFEOS INFORMATION/StructMetadata.0",
                         data=np.bytes_(f"GROUP=SwathStructure\n\tGROUP=SWATH_1\n\t\tSwathName=\"{swath}\"\n"
                                        f"\tEND_GROUP=SWATH_1\nEND_GROUP=SwathStructure\nEND\n"))
        f.require_group("HDFEOS/ADDITIONAL/FILE_ATTRIBUTES")
        data = f.require_group(f"HDFEOS/SWATHS/{swath}/Data Fields")
        geo = f.require_group(f"HDFEOS/SWATHS/{swath}/Geolocation Fields")
        for cube_name in ("VNIR", "SWIR"):
            if f"{cube_name}_Cube" in drop:
                continue
            kw = {} if chunks is None else {"chunks": tuple(min(c, s) for c, s in
                                                            zip(chunks, dn_cubes[cube_name].shape))}
            if compression:
                kw["compression"] = compression
            data.create_dataset(f"{cube_name}_Cube", data=dn_cubes[cube_name], **kw)

        # geolocation (synthetic values): [PRREAD] pr_get_geoloc: L1 Latitude_VNIR / Longitude_VNIR (and
        # _SWIR, [ACOLITE]); L2 Latitude / Longitude; float32 (rows, columns)
        rr, cc = np.mgrid[0:H, 0:W].astype(np.float64)
        lat = (45.15 - rr * PIXEL / 111320.0 - cc * 1e-6).astype(np.float32)
        lon = (7.72 + cc * PIXEL / (111320.0 * np.cos(np.radians(45.15))) + rr * 1e-6).astype(np.float32)
        if level == "L1":
            for band in ("VNIR", "SWIR"):
                geo.create_dataset(f"Latitude_{band}", data=lat)
                geo.create_dataset(f"Longitude_{band}", data=lon)
        else:
            geo.create_dataset("Latitude", data=lat)
            geo.create_dataset("Longitude", data=lon)

        # ---- root attributes ([PRREAD] h5attr(f, ...) on the file; [HYPERCOAST] f.attrs[...])
        root = {
            "Processing_Level": np.bytes_("1" if level == "L1" else level[1:]),  # [PRREAD] "1", "2B", "2D"
            "Product_StartTime": np.bytes_("2020-05-24T10:37:04.000000"),  # [PRREAD] / [S2LIKE] iso text
            "Sun_zenith_angle": np.float32(32.5),  # [PRREAD] / [ACOLITE]
            "Sun_azimuth_angle": np.float32(148.2),
            "List_Cw_Vnir": cw_v, "List_Fwhm_Vnir": fw_v,  # [PRREAD] / [ENMAPBOX] / [SRF], nm, float32
            "List_Cw_Swir": cw_s, "List_Fwhm_Swir": fw_s,
        }
        if flags:
            fl_v = (cw_v > 0).astype(np.int8)
            fl_v[list(bad_slots)] = 0
            root["List_Cw_Vnir_Flags"] = fl_v
            root["List_Cw_Swir_Flags"] = (cw_s > 0).astype(np.int8)
        root.update(attrs)
        if level == "L2D":
            # [PRREAD] pr_get_geoloc / pr_setext_L2D, [ENMAPBOX] spatialInfo: corner attributes are the centres
            # of the corner pixels of the north-up 30 m grid
            e0, n0 = float(ul_centre[0]), float(ul_centre[1])
            e1, n1 = e0 + (W - 1) * PIXEL, n0 - (H - 1) * PIXEL
            zone = epsg % 100
            root.update({
                "Epsg_Code": np.int32(epsg),
                "Projection_Name": np.bytes_("UTM"),  # [HYTOOLS] byte strings
                "Projection_Id": np.bytes_(str(zone)),
                "Product_ULcorner_easting": np.float64(e0), "Product_ULcorner_northing": np.float64(n0),
                "Product_URcorner_easting": np.float64(e1), "Product_URcorner_northing": np.float64(n0),
                "Product_LLcorner_easting": np.float64(e0), "Product_LLcorner_northing": np.float64(n1),
                "Product_LRcorner_easting": np.float64(e1), "Product_LRcorner_northing": np.float64(n1),
                "Product_center_easting": np.float64((e0 + e1) / 2),
                "Product_center_northing": np.float64((n0 + n1) / 2),
                "Product_center_lat": np.float32(lat[H // 2, W // 2]),  # [HYTOOLS]
                "Product_center_long": np.float32(lon[H // 2, W // 2]),
            })
        for k, v in root.items():
            if k not in drop:
                f.attrs[k] = v

    good = np.ones(N_REAL, dtype=bool)
    wl = np.concatenate([cw_v[v_slots], cw_s[s_slots]]).astype(np.float64)
    fw = np.concatenate([fw_v[v_slots], fw_s[s_slots]]).astype(np.float64)
    np.savez(path.with_name(path.stem + "_truth.npz"), cube=truth, resampled=real.astype(np.float32),
             wavelengths=wl, fwhm=fw, vnir=np.arange(N_REAL) < N_VNIR, good=good)

    if gt is not None:
        import rasterio
        from rasterio.transform import Affine

        g = np.asarray(gt, dtype=np.uint8)
        kw = {}
        if level == "L2D":
            kw = dict(crs=f"EPSG:{epsg}", transform=Affine(PIXEL, 0.0, ul_centre[0] - PIXEL / 2, 0.0, -PIXEL,
                                                            ul_centre[1] + PIXEL / 2))
        with warnings.catch_warnings():  # swath levels: no georeference, on purpose
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path.with_name(path.stem + "_gt.tif"), "w", driver="GTiff", width=g.shape[1],
                               height=g.shape[0], count=1, dtype="uint8", **kw) as dst:
                dst.write(g, 1)
    return path


def read_truth(path) -> dict:
    """What :func:`make_prisma` recorded for ``path``: ``cube`` (H, W, N_REAL) float32, the dequantised values a
    reader must return in its band order; ``resampled`` the values before quantisation; ``wavelengths`` /
    ``fwhm`` (N_REAL,) nm in that order; ``vnir`` (N_REAL,) bool, the bands from VNIR_Cube."""
    path = Path(path)
    with np.load(path.with_name(path.stem + "_truth.npz")) as z:
        return {k: z[k] for k in z.files}
