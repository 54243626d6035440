"""Small ENVI-family products (AVIRIS-NG / AVIRIS-3, HyTES L1, DESIS L1C/L2A, a generic ENVI raster) built
around a real benchmark cube.

``make_aviris(folder, cube, gt=None, rotation=..., ...)``, ``make_hytes_l1(...)``, ``make_desis(...)`` and
``make_envi(...)`` write a product in its delivery layout and return the path of its image file;
``build_*`` (same arguments) return an :class:`EnviFixture` that also holds what a reader must produce:
``expected`` (H, W, B) float32 in physical units, NaN at fill samples, bands in ascending wavelength order,
plus the band metadata and georeference the files describe. The cube's bands are interpolated onto the
product's band count (:func:`to_bands`): any real scene works as data.

Every layout fact carries its source:

  [ENVI-HDR]  ENVI header documentation, "ENVI Header Files" (NV5 / L3Harris / Exelis,
              https://www.nv5geospatialsoftware.com/docs/ENVIHeaderFiles.html): first line "ENVI"; samples,
              lines, bands, header offset, file type, data type (2 int16, 4 float32, ...), interleave,
              byte order (0 little / 1 big endian), wavelength units, wavelength, fwhm (same units),
              bbl (0 bad / 1 good), data ignore value, data gain values, data offset values,
              reflectance scale factor ("when divided into your data"), map info
  [GDAL-ENVI] GDAL frmts/raw/envidataset.cpp, ENVIDataset::ProcessMapinfo (map info fields, rotation=)
  [ANG-README] AVIRIS-NG Distribution Document (JPL, angYYYYMMDDtHHNNSS_README_v2p5.txt,
              popo.jpl.nasa.gov): file naming angYYYYMMDDtHHNNSS_rfl_VVV_img + _img.hdr, 5 nm sampling
              380-2510 nm
  [ORNL-ROT]  ORNL DAAC, "Understanding AVIRIS-NG data in ENVI format with rotated grid"
              (github.com/ornldaac/AVIRIS-NG_ENVI-rotatedgrid): header of ang20170714t213741_corr_v2p9_img
              (data type 4, byte order 0, map info {UTM, 1, 1, E, N, 5.2, 5.2, 4, North, WGS-84,
              rotation=42}, coordinate system string in ESRI WKT, band names "376.86 Nanometers")
  [ANG-MAPINFO] an AVIRIS-NG v1e header quoted on GIS StackExchange ("Rotate ENVI hyperspectral imagery
              with GDAL"): map info = { UTM , 1.000 , 1.000 , 736600.089 , 4078126.750 , 2.7e+00 , 2.7e+00 ,
              12 , North , WGS-84 , units=Meters , rotation=-66.00000000 }
  [ANG-425]   isofit examples: AVIRIS-NG reflectance has 425 channels (isofit/isofit test scripts
              "randomly generated surface reflectance values for 425 channels"); AVIRIS-NG processing
              scripts of the Delta 2017 campaign use 425 input bands and mask value -9999
  [AV3]       isofit-tutorials 20250308_AV3Cal_wltest/remote/AV320250308t200738_rdn.hdr: AVIRIS-3 naming
              AV3YYYYMMDDtHHNNSS_rdn, 284 bands 0.38975-2.494 um, "wavelength units = Micrometers"
  [HYTES-TXT] HyTES product text quoted in github.com/manishverma09/HyTES (hytes_readdata.ipynb):
              "...-level_1a.dat": calibrated radiance W/m^2/um/sr, BIP, 32-bit float, 512 samples (495 in
              2013), 256 bands 7.5-12 um, ENVI-compatible "...-level_1a.hdr" beside it
  [EB-DESIS]  EnMAP-Box enmapboxprocessing/algorithm/importdesisl1calgorithm.py / importdesisl2aalgorithm.py:
              DESIS-HSI-<level>-DT..._...-<time>-V....-{METADATA.xml, SPECTRAL_IMAGE.tif, SPECTRAL_IMAGE.hdr};
              the TIFF is "band interleaved by pixel and compressed"; the hdr has wavelength, fwhm,
              data gain values, data offset values; L2A scaled by 0.0001 to reflectance
  [DESIS-XML] DESIS METADATA.xml as read by open readers: root <hsi_doc> with base (spatialCoverage/
              boundingPolygon/point{frame,latitude,longitude}, temporalCoverage/{startTime,endTime},
              altitudeCoverage), processing (ozoneValue) and specific (sunZenithAngle, sunAzimuthAngle,
              sceneAzimuthAngle, sceneIncidenceAngle, terrain/meanGroundElevation, bandCharacterisation/
              band{bandNumber, wavelengthCenterOfBand, wavelengthWidthOfBand, gainOfBand, offsetOfBand,
              deadPixels, suspiciousPixel, wavelengths, response}); <band> also appears under
              interiorOrientation (krttdkit desis.py, SISTER desis.py, fluomapper DESISReader, acolite
              desis/metadata_QV.py: backgroundValue, mission, sensor, productType, tileID, version)
  [DESIS-PROD] DLR, DESIS data products page and Alonso et al. 2019 (Sensors 19:4471): 235 bands 400-1000 nm,
              ~2.55 nm sampling, 30 m GSD, 1024 x 1024 tiles; RemoteSensingToolbox.jl DESIS: 235 bands
              401.25-998.75 nm, naming DESIS-HSI-L(1B|1C|2A)-DT\\d{10}_\\d{3}-\\d{8}T\\d{6}-V\\d{4}
  [DESIS-HDR-R] an R script reading a DESIS SPECTRAL_IMAGE.hdr (band names, then wavelength and fwhm one
              value per line: hdr[253:487] / hdr[489:723])

What is this fixture's own (not established from public material): the band centres/widths (regular grids
over the documented ranges), AVIRIS-NG's bbl (distributed headers may not carry one: written to test it),
the DESIS XML element order beyond the paths above, DESIS's background value, the TIFF compression codec,
and HyTES L1's header beyond the fields listed (no public HyTES header could be read).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

__all__ = ["EnviFixture", "to_bands", "make_aviris", "build_aviris", "make_hytes_l1", "build_hytes_l1",
           "make_desis", "build_desis", "make_envi", "build_envi", "write_header", "aviris_ng_bands",
           "aviris3_bands", "hytes_bands", "desis_bands", "ANG_NAME", "AV3_NAME", "HYTES_L1_NAME", "DESIS_NAME",
           "ANG_FILL", "ANG_MAP", "DESIS_FILL"]

ANG_NAME = "ang20170714t213741_corr_v2p9_img"  # [ORNL-ROT] real AVIRIS-NG image name; [ANG-README] naming
AV3_NAME = "AV320250308t200738_rdn"             # [AV3]
HYTES_L1_NAME = "2014-07-06.194610.SaltonSea.Line2-Run1-Segment01-110000-level_1a"  # [HYTES-TXT]
DESIS_NAME = "DESIS-HSI-{level}-DT0489826624_003-20200823T165204-V0210"  # [EB-DESIS], [DESIS-PROD]
ANG_FILL = -9999.0    # [ANG-425] AVIRIS-NG mask value -9999 (written as "data ignore value")
DESIS_FILL = -32768   # this fixture's own background value (written to hdr and XML backgroundValue)
#: (E, N, pixel size, UTM zone) of the AVIRIS-NG tie point ([ANG-MAPINFO] style values)
ANG_MAP = (736600.089, 4078126.750, 2.7, 12)


@dataclass
class EnviFixture:
    path: Path                      # the image file (what make_* returns)
    header: Optional[Path]
    expected: np.ndarray            # (H, W, B) float32 physical values, NaN at fill samples, ascending wl
    wavelengths: Optional[np.ndarray]  # nm, ascending
    fwhm: Optional[np.ndarray]
    good: np.ndarray
    kind: str
    crs: Optional[str] = None
    transform: object = None
    map_info: Optional[str] = None
    gt_path: Optional[Path] = None
    files: List[Path] = field(default_factory=list)


# ================================================================================================ helpers
def to_bands(cube: np.ndarray, n: int) -> np.ndarray:
    """(H, W, n) float32: the cube's spectra linearly interpolated onto ``n`` evenly spaced band positions
    (a real scene as the data of a product with another band count)."""
    c = np.asarray(cube, dtype=np.float64)
    B = c.shape[2]
    if B == n:
        return c.astype(np.float32)
    pos = np.linspace(0.0, B - 1.0, n)
    i0 = np.clip(np.floor(pos).astype(int), 0, B - 1)
    i1 = np.clip(i0 + 1, 0, B - 1)
    f = (pos - i0)[None, None, :]
    return (c[:, :, i0] * (1.0 - f) + c[:, :, i1] * f).astype(np.float32)


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, np.ndarray)):
        return "{" + ", ".join(_fmt(x) for x in v) + "}"
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def write_header(path: Path, fields: Sequence, one_per_line: Sequence[str] = ()) -> Path:
    """An ENVI header: ``ENVI`` then ``key = value`` lines ([ENVI-HDR]); list values in braces, the keys in
    ``one_per_line`` with one value per line (the DESIS layout, [DESIS-HDR-R])."""
    lines = ["ENVI"]
    for key, value in fields:
        if key in one_per_line and isinstance(value, (list, tuple, np.ndarray)):
            items = [_fmt(x) for x in value]
            lines.append(f"{key} = {{")
            lines.extend(f"{s}," for s in items[:-1])
            lines.append(f"{items[-1]}}}")
        else:
            lines.append(f"{key} = {_fmt(value)}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def _interleaved(cube: np.ndarray, interleave: str) -> np.ndarray:
    # [ENVI-HDR] bsq: band planes; bil: per line, the bands' rows; bip: per pixel, all bands
    if interleave == "bsq":
        return np.moveaxis(cube, 2, 0)
    if interleave == "bil":
        return np.transpose(cube, (0, 2, 1))
    if interleave == "bip":
        return cube
    raise ValueError(interleave)


_ENVI_CODE = {"uint8": 1, "int16": 2, "int32": 3, "float32": 4, "float64": 5, "uint16": 12, "uint32": 13}


def _write_image(path: Path, raw: np.ndarray, interleave: str, byte_order: int):
    dt = np.dtype(raw.dtype).newbyteorder(">" if byte_order else "<")
    np.ascontiguousarray(_interleaved(raw, interleave)).astype(dt).tofile(path)


def _write_gt(image: Path, gt, crs=None, transform=None) -> Optional[Path]:
    """``<image stem>_gt.tif`` (hadcore.io.ground_truth_path's naming)."""
    if gt is None:
        return None
    import rasterio
    from affine import Affine

    p = image.with_name(image.stem + "_gt.tif") if image.suffix else image.with_name(image.name + "_gt.tif")
    g = np.asarray(gt, dtype=np.uint8)
    prof = dict(driver="GTiff", width=g.shape[1], height=g.shape[0], count=1, dtype="uint8")
    if crs is not None and transform is not None:
        prof.update(crs=crs, transform=transform)
    else:
        prof.update(transform=Affine.identity())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(p, "w", **prof) as dst:
            dst.write(g, 1)
    return p


def _apply_fill(expected: np.ndarray, raw: np.ndarray, fill_pixels, fill_value):
    for r, c in (fill_pixels or ()):
        if r >= raw.shape[0] or c >= raw.shape[1]:
            continue  # a crop smaller than the default fill positions
        raw[r, c, :] = fill_value
        expected[r, c, :] = np.nan


# ============================================================================================= AVIRIS
def aviris_ng_bands(n: int = 425):
    """(wavelength nm, fwhm nm, bbl) of AVIRIS-NG's 425 channels: ~5 nm sampling 377-2500 nm ([ANG-README]
    380-2510 nm at 5 nm, [ANG-425] 425 channels, [ORNL-ROT] first band 376.86 nm); bbl 0 in the water
    windows 1340-1445 and 1790-1955 nm (this fixture's own)."""
    wl = np.linspace(376.86, 2500.0, n)
    fwhm = np.full(n, 5.5) + 0.001 * (wl - 376.86)
    bbl = np.ones(n)
    bbl[((wl >= 1340) & (wl <= 1445)) | ((wl >= 1790) & (wl <= 1955))] = 0
    return wl, fwhm, bbl


def aviris3_bands(n: int = 284):
    """(wavelength um, fwhm um) of AVIRIS-3 ([AV3]: 284 bands 0.38975-2.494 um, "Micrometers")."""
    wl = np.round(np.linspace(0.38975, 2.494, n), 6)  # as written in the header (6 decimals)
    return wl, np.full(n, 0.0075)


def _esri_wkt(epsg: int) -> str:
    from rasterio.crs import CRS
    from rasterio.enums import WktVersion

    return CRS.from_epsg(epsg).to_wkt(version=WktVersion.WKT1_ESRI)


def build_aviris(folder, cube, gt=None, rotation: float = -66.0, *, sensor: str = "AVIRIS-NG",
                 interleave: str = "bil", byte_order: int = 0, fill_pixels=((0, 0), (0, 1), (1, 0)),
                 wavelengths: bool = True, fwhm: bool = True, bbl: bool = True, map_info: bool = True,
                 reference_pixel=(1.0, 1.0), coordinate_system_string: bool = True,
                 name: Optional[str] = None, descending: bool = False) -> EnviFixture:
    """An AVIRIS-NG (425 bands, nm) or AVIRIS-3 (284 bands, um) ENVI product: float32 image without an
    extension plus ``<image>.hdr`` ([ANG-README]), rotated map info ([ORNL-ROT], [ANG-MAPINFO])."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if sensor == "AVIRIS-NG":
        wl, fw, bb = aviris_ng_bands()
        units, wl_nm, fw_nm = "Nanometers", wl, fw  # [ORNL-ROT] band names "376.86 Nanometers"
        name = name or ANG_NAME
    elif sensor == "AVIRIS-3":
        wl, fw = aviris3_bands()
        bb = np.ones(wl.size)
        units, wl_nm, fw_nm = "Micrometers", wl * 1e3, fw * 1e3  # [AV3]
        name = name or AV3_NAME
    else:
        raise ValueError(sensor)
    B = wl.size
    data = to_bands(cube, B)
    H, W, _ = data.shape
    raw = data.copy()
    expected = data.copy()
    _apply_fill(expected, raw, fill_pixels, ANG_FILL)
    order = np.arange(B)
    if descending:  # the file lists bands in descending wavelength order; the reader must sort them
        order = order[::-1]
    image = folder / name  # [ANG-README] no extension: angYYYYMMDDtHHNNSS_..._img + _img.hdr
    _write_image(image, raw[:, :, order], interleave, byte_order)
    E, N, px, zone = ANG_MAP
    xref, yref = reference_pixel
    mi = (f"{{ UTM , {xref:.3f} , {yref:.3f} , {E:.3f} , {N:.3f} , {px:.10e} , {px:.10e} , {zone} , North , "
          f"WGS-84 , units=Meters , rotation={rotation:.8f} }}")  # [ANG-MAPINFO] layout, [GDAL-ENVI] fields
    fields = [
        ("description", f"{{\n  {name}}}"),
        ("samples", W), ("lines", H), ("bands", B),
        ("header offset", 0),
        ("file type", "ENVI Standard"),
        ("data type", 4),            # [ORNL-ROT] float32
        ("interleave", interleave),  # AVIRIS-NG cubes are BIL; the reader also takes bsq / bip
        ("byte order", byte_order),  # [ORNL-ROT] 0
    ]
    if map_info:
        fields.append(("map info", mi))
        if coordinate_system_string:
            fields.append(("coordinate system string", "{" + _esri_wkt(32600 + zone) + "}"))  # [ORNL-ROT]
    if wavelengths:
        fields.append(("wavelength units", units))
        fields.append(("wavelength", [f"{v:.6f}" for v in wl[order]]))
    if fwhm:
        fields.append(("fwhm", [f"{v:.6f}" for v in fw[order]]))
    if bbl:
        fields.append(("bbl", [f"{v:.1f}" for v in bb[order]]))
    fields.append(("data ignore value", ANG_FILL))  # [ENVI-HDR], [ANG-425] -9999
    hdr = write_header(folder / (name + ".hdr"), fields)
    transform = crs = None
    if map_info:
        from hadcore.products.envi import map_info_transform

        transform = map_info_transform(mi)
        crs = f"EPSG:{32600 + zone}"
    gtp = _write_gt(image, gt, crs, transform)
    return EnviFixture(path=image, header=hdr, expected=expected, wavelengths=wl_nm if wavelengths else None,
                       fwhm=fw_nm if (fwhm and wavelengths) else None, good=bb != 0, kind=sensor, crs=crs,
                       transform=transform, map_info=mi if map_info else None, gt_path=gtp,
                       files=[image, hdr] + ([gtp] if gtp else []))


def make_aviris(folder, cube, gt=None, rotation: float = -66.0, **kw) -> Path:
    """Write an AVIRIS-NG / AVIRIS-3 product (see :func:`build_aviris`); returns the image path."""
    return build_aviris(folder, cube, gt, rotation, **kw).path


# ============================================================================================== HyTES L1
def hytes_bands(n: int = 256):
    """Band centres (um) of HyTES: 256 bands 7.5-12 um ([HYTES-TXT])."""
    return np.linspace(7.5, 12.0, n)


def build_hytes_l1(folder, cube, gt=None, *, fwhm: bool = False, fill_pixels=None,
                   name: str = HYTES_L1_NAME) -> EnviFixture:
    """A HyTES L1A radiance product: ``<name>.dat`` float32 BIP, ``<name>.hdr`` ([HYTES-TXT]), 256 bands
    in micrometres, swath geometry (no map info: geolocation is a separate file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wl = hytes_bands()
    B = wl.size
    data = to_bands(cube, B)
    # radiance in W/m^2/um/sr ([HYTES-TXT]): the scene scaled into a plausible 7-11 range (any affine map of
    # a real cube keeps it a real cube for the detectors)
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    data = (7.0 + 4.0 * (data - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)
    H, W, _ = data.shape
    raw, expected = data.copy(), data.copy()
    _apply_fill(expected, raw, fill_pixels, -9999.0)
    image = folder / (name + ".dat")
    _write_image(image, raw, "bip", 0)  # [HYTES-TXT] BIP, 32-bit float
    fields = [("description", "{HyTES Level-1A calibrated radiance [W/m^2/um/sr]}"),
              ("samples", W), ("lines", H), ("bands", B), ("header offset", 0), ("file type", "ENVI Standard"),
              ("data type", 4), ("interleave", "bip"), ("byte order", 0),
              ("wavelength units", "Micrometers"), ("wavelength", [f"{v:.6f}" for v in wl])]
    fw = None
    if fwhm:
        fw = np.full(B, 0.0176)
        fields.append(("fwhm", [f"{v:.6f}" for v in fw]))
    if fill_pixels:
        fields.append(("data ignore value", -9999.0))
    hdr = write_header(folder / (name + ".hdr"), fields)  # [HYTES-TXT] "...-level_1a.hdr"
    gtp = _write_gt(image, gt)
    return EnviFixture(path=image, header=hdr, expected=expected, wavelengths=wl * 1e3,
                       fwhm=None if fw is None else fw * 1e3, good=np.ones(B, bool), kind="HyTES L1",
                       gt_path=gtp, files=[image, hdr] + ([gtp] if gtp else []))


def make_hytes_l1(folder, cube, gt=None, **kw) -> Path:
    return build_hytes_l1(folder, cube, gt, **kw).path


# ================================================================================================ generic
def build_envi(folder, cube, gt=None, *, name: str = "scene.bsq", interleave: str = "bsq", dtype: str = "int16",
               byte_order: int = 1, gain=None, offset=None, reflectance_scale: Optional[float] = None,
               ignore: Optional[float] = -999, fill_pixels=((2, 3),), wavelengths=None, units: str = "Micrometers",
               bbl=None, fwhm=None, header_name: Optional[str] = None, extra_fields=()) -> EnviFixture:
    """A generic ENVI raster with band metadata ([ENVI-HDR]); ``cube`` holds the stored (raw) values."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = np.asarray(cube).astype(dtype)
    H, W, B = raw.shape
    g = np.ones(B) if gain is None else np.broadcast_to(np.asarray(gain, float), (B,))
    o = np.zeros(B) if offset is None else np.broadcast_to(np.asarray(offset, float), (B,))
    phys = raw.astype(np.float32) * g.astype(np.float32) + o.astype(np.float32)
    if reflectance_scale:
        phys = phys / np.float32(reflectance_scale)
    raw = raw.copy()
    phys = phys.astype(np.float32)
    _apply_fill(phys, raw, fill_pixels, ignore)
    image = folder / name
    _write_image(image, raw, interleave, byte_order)
    fields = [("description", "{generic ENVI test raster}"), ("samples", W), ("lines", H), ("bands", B),
              ("header offset", 0), ("file type", "ENVI Standard"), ("data type", _ENVI_CODE[dtype]),
              ("interleave", interleave), ("byte order", byte_order)]
    if wavelengths is not None:
        fields += [("wavelength units", units), ("wavelength", list(np.asarray(wavelengths, float)))]
    if fwhm is not None:
        fields.append(("fwhm", list(np.asarray(fwhm, float))))
    if bbl is not None:
        fields.append(("bbl", [int(v) for v in bbl]))
    if gain is not None:
        fields.append(("data gain values", list(g)))
    if offset is not None:
        fields.append(("data offset values", list(o)))
    if reflectance_scale:
        fields.append(("reflectance scale factor", reflectance_scale))
    if ignore is not None:
        fields.append(("data ignore value", ignore))
    fields += list(extra_fields)
    hdr = write_header(folder / (header_name or (Path(name).stem + ".hdr")), fields)
    wl = None
    order = np.arange(B)
    if wavelengths is not None:
        from hadcore.products.base import to_nanometres

        wl = to_nanometres(np.asarray(wavelengths, float), units)
        if wl.size == B:  # (a header with a wrong count is a test of its own)
            order = np.argsort(wl, kind="stable")
            wl = wl[order]
    good = np.ones(B, bool) if bbl is None else (np.asarray(bbl) != 0)[order]
    return EnviFixture(path=image, header=hdr, expected=phys[:, :, order], wavelengths=wl, fwhm=None,
                       good=good, kind="ENVI", files=[image, hdr])


def make_envi(folder, cube, gt=None, **kw) -> Path:
    return build_envi(folder, cube, gt, **kw).path


# ================================================================================================== DESIS
def desis_bands(n: int = 235):
    """(centre nm, fwhm nm) of DESIS: 235 bands 401.25-998.75 nm ([DESIS-PROD]), FWHM ~3.5 nm."""
    return np.linspace(401.25, 998.75, n), np.full(n, 3.5)


def _el(parent, tag, text=None):
    e = ET.SubElement(parent, tag)
    if text is not None:
        e.text = str(text)
    return e


def _desis_xml(path: Path, level: str, wl, fwhm, gain, offset, width, height, with_bands: bool = True):
    # [DESIS-XML] root <hsi_doc>; children order: SISTER indexes root[2] = base, root[3] = specific
    root = ET.Element("hsi_doc")
    _el(root, "metadataSchema", "DESIS metadata")  # root[0]: not established (placeholder element)
    proc = _el(root, "processing")                 # root[1] ([DESIS-XML] hsi_doc/processing/ozoneValue)
    _el(proc, "ozoneValue", 300)
    base = _el(root, "base")
    _el(base, "mission", "DESIS")
    _el(base, "sensor", "HSI")
    _el(base, "version", "02.10")
    _el(base, "tileID", "003")
    sc = _el(_el(base, "spatialCoverage"), "boundingPolygon")
    for i, (lat, lon) in enumerate([(41.0, -76.5), (41.3, -76.5), (41.3, -76.9), (41.0, -76.9), (41.0, -76.5)]):
        pt = _el(sc, "point")
        _el(pt, "frame", f"point_{i + 1}")
        _el(pt, "latitude", lat)
        _el(pt, "longitude", lon)
    tc = _el(base, "temporalCoverage")
    _el(tc, "startTime", "2020-08-23T16:52:04.000Z")
    _el(tc, "endTime", "2020-08-23T16:52:08.000Z")
    _el(base, "altitudeCoverage", 408000)
    spec = _el(root, "specific")
    _el(spec, "productType", level)
    _el(spec, "numberOfBands", len(wl))
    _el(spec, "backgroundValue", DESIS_FILL)
    for tag, v in (("sunZenithAngle", 35.2), ("sunAzimuthAngle", 150.1), ("sceneAzimuthAngle", 100.0),
                   ("sceneIncidenceAngle", 5.0)):
        _el(spec, tag, v)
    _el(_el(spec, "terrain"), "meanGroundElevation", 250)
    io_ = _el(spec, "interiorOrientation")  # geometric <band> entries: not the band table ([DESIS-XML])
    for k in range(3):
        b = _el(io_, "band")
        _el(b, "bandNumber", k + 1)
        _el(b, "wavelengthCenterOfBand", 0)
    if with_bands:
        bc = _el(spec, "bandCharacterisation")
        for k in range(len(wl)):
            b = _el(bc, "band")
            _el(b, "bandNumber", k + 1)
            _el(b, "wavelengthCenterOfBand", f"{wl[k]:.4f}")
            _el(b, "wavelengthWidthOfBand", f"{fwhm[k]:.4f}")
            _el(b, "gainOfBand", repr(float(gain[k])))
            _el(b, "offsetOfBand", repr(float(offset[k])))
            _el(b, "deadPixels", 0)
            _el(b, "suspiciousPixel", 0)
            grid = wl[k] + np.linspace(-2 * fwhm[k], 2 * fwhm[k], 5)
            _el(b, "wavelengths", ",".join(f"{v:.3f}" for v in grid))
            _el(b, "response", ",".join(f"{v:.4f}" for v in np.exp(-4 * np.log(2) * ((grid - wl[k]) / fwhm[k]) ** 2)))
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)


def build_desis(folder, cube, gt=None, *, level: str = "L2A", gain=None, offset=None, fill_pixels=((0, 0), (5, 7)),
                with_xml: bool = True, xml_bands: bool = True, with_hdr: bool = True,
                hdr_wavelengths: bool = True, compress: str = "deflate") -> EnviFixture:
    """A DESIS L1C / L2A product ([EB-DESIS]): ``<name>-SPECTRAL_IMAGE.tif`` int16 GeoTIFF (pixel
    interleaved, compressed, UTM 30 m), ``<name>-SPECTRAL_IMAGE.hdr``, ``<name>-METADATA.xml``. The cube's
    values are the stored DNs (rounded to int16); physical = DN * gain + offset (L2A gain 0.0001 [EB-DESIS]).
    """
    import rasterio
    from affine import Affine

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = DESIS_NAME.format(level=level)
    wl, fw = desis_bands()
    B = wl.size
    if gain is None:
        gain = np.full(B, 1e-4) if level == "L2A" else np.linspace(0.005, 0.02, B)
    gain = np.broadcast_to(np.asarray(gain, float), (B,)).copy()
    offset = np.zeros(B) if offset is None else np.broadcast_to(np.asarray(offset, float), (B,)).copy()
    data = to_bands(cube, B)
    raw = np.clip(np.rint(data), -32767, 32767).astype(np.int16)
    expected = (raw.astype(np.float32) * gain.astype(np.float32) + offset.astype(np.float32)).astype(np.float32)
    _apply_fill(expected, raw, fill_pixels, DESIS_FILL)
    H, W, _ = raw.shape
    transform = Affine(30.0, 0.0, 366000.0, 0.0, -30.0, 4550000.0)  # [DESIS-PROD] 30 m; UTM north-up (L1C)
    crs = "EPSG:32618"
    tif = folder / f"{name}-SPECTRAL_IMAGE.tif"
    prof = dict(driver="GTiff", width=W, height=H, count=B, dtype="int16", crs=crs, transform=transform,
                interleave="pixel", compress=compress, nodata=DESIS_FILL)  # [EB-DESIS] BIP + compressed
    with rasterio.open(tif, "w", **prof) as dst:
        dst.write(np.moveaxis(raw, 2, 0))
    files = [tif]
    hdr = None
    if with_hdr:
        fields = [("description", f"{{{name}-SPECTRAL_IMAGE}}"), ("samples", W), ("lines", H), ("bands", B),
                  ("header offset", 0), ("file type", "TIFF"), ("data type", 2), ("interleave", "bip"),
                  ("byte order", 0), ("band names", [f"band {k + 1}" for k in range(B)])]
        if hdr_wavelengths:
            fields += [("wavelength units", "Nanometers"), ("wavelength", [f"{v:.4f}" for v in wl]),
                       ("fwhm", [f"{v:.4f}" for v in fw])]
        fields += [("data gain values", [repr(float(v)) for v in gain]),
                   ("data offset values", [repr(float(v)) for v in offset]), ("data ignore value", DESIS_FILL)]
        hdr = write_header(folder / f"{name}-SPECTRAL_IMAGE.hdr", fields,
                           one_per_line=("band names", "wavelength", "fwhm"))  # [DESIS-HDR-R]
        files.append(hdr)
    if with_xml:
        xml = folder / f"{name}-METADATA.xml"
        _desis_xml(xml, level, wl, fw, gain, offset, W, H, with_bands=xml_bands)
        files.append(xml)
    gtp = _write_gt(tif, gt, crs, transform)
    if gtp:
        files.append(gtp)
    return EnviFixture(path=tif, header=hdr, expected=expected, wavelengths=wl, fwhm=fw, good=np.ones(B, bool),
                       kind=f"DESIS {level}", crs=crs, transform=transform, gt_path=gtp, files=files)


def make_desis(folder, cube, gt=None, **kw) -> Path:
    """Write a DESIS product (see :func:`build_desis`); returns the SPECTRAL_IMAGE.tif path."""
    return build_desis(folder, cube, gt, **kw).path
