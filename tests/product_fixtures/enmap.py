"""A small DLR EnMAP L1B / L2A product built around a real benchmark cube.

``make_enmap(folder, cube, gt=None, level="L2A", fmt="GTiff", ...)`` writes ``<name>-METADATA.XML`` and the
spectral image(s) in the product's layout and returns the XML path; ``build_enmap`` (same arguments)
returns an :class:`EnmapFixture` that also holds what a reader must produce (``expected``: the
quantised cube in physical units, NaN at no-data samples) and the cube before quantisation (``truth``).
``spectral_images(xml)`` lists the image files of a product written here.

The cube's bands are resampled onto EnMAP's 224 bands (91 VNIR + 133 SWIR, 418.4-2445.3 nm, the
detectors overlapping at 900-1000 nm); the band centres and widths are this fixture's own, not DLR's
calibration. Every layout fact carries its source in a comment:

  [EB-L2A]  EnMAP-Box enmapboxprocessing/algorithm/importenmapl2aalgorithm.py
            (https://github.com/EnMAP-Box/enmap-box)
  [EB-L1B]  EnMAP-Box enmapboxprocessing/algorithm/importenmapl1balgorithm.py
  [EB-DATA] EnMAP-Box enmapbox/exampledata/readme.txt (an L2A scene id, 224 bands, 30 m)
  [EB-216]  EnMAP-Box issue #216 ("the L2A bands come preordered by wavelength")
  [EB-723]  EnMAP-Box issue #723 (maintainer: "apply the data gain factor (0.0001)" to L2A)
  [ENPT-SG] EnPT enpt/model/metadata/metadata_sensorgeo.py (https://github.com/GFZ/enpt): L1B XML paths
  [ENPT-MG] EnPT enpt/model/metadata/metadata_mapgeo.py: the L2A XML it writes in DLR's format
  [ENPT-DOC] EnPT docs/algorithm_descriptions.rst (L1B/L2A file lists, VNIR/SWIR along-track offset)
  [ENPT-3]  EnPT issue #3 (224 bandCharacterisation entries, 91 VNIR bands in an L1B product)
  [L2A-COG] a public project's survey of 8 DLR L2A products (its dataset notes, found through the code
            search): SPECTRAL_IMAGE int16, nodata -32768, 224 bands 418.416-2445.30 nm, GainOfBand
            0.0001, bands 1342.82-1390.48 nm entirely no-data
  [LEVELX]  root element ``level_X``: test fixtures of two public projects (one states its element names
            and nesting were checked against real DLR files); consistent with EnPT, which edits the DLR
            XML below its root by the paths metadata/..., base/..., specific/..., product/...
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

__all__ = ["make_enmap", "build_enmap", "EnmapFixture", "spectral_images", "enmap_band_table",
           "L2A_NAME", "L1B_NAME", "N_VNIR", "N_SWIR"]

# [EB-DATA] scene id of EnMAP-Box's Potsdam example; [EB-L2A]/[EB-L1B] file naming ENMAP01-____<level>-DT...
L2A_NAME = "ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z"
L1B_NAME = L2A_NAME.replace("____L2A-", "____L1B-")
N_VNIR = 91    # [ENPT-3] 91 VNIR bands
N_SWIR = 133   # [ENPT-3] 224 bands in bandCharacterisation in all -> 224 - 91 SWIR bands
FILL = -32768  # [L2A-COG] nodata of the int16 SPECTRAL_IMAGE
L2A_GAIN = 1e-4  # [EB-723], [L2A-COG] GainOfBand of L2A reflectance
NODATA_BAND_RANGE = (1340.0, 1395.0)  # [L2A-COG] bands 1342.82-1390.48 nm are no-data in DLR L2A
NODATA_BAND_MEAN = "-1000000"  # [EB-L2A] product/bandStatistics of a no-data band: mean -1000000, stdDeviation 0
UTM_CRS = "EPSG:32633"  # [ENPT-MG] processing/mapProjection UTM_Zone_of_Scene_Center (Potsdam: zone 33 N)
GSD = 30.0              # [EB-DATA] ground sampling distance 30 m; [ENPT-MG] product/ortho/resolution
ORIGIN = (366000.0, 5812000.0)


@dataclass
class EnmapFixture:
    xml: Path
    images: List[Path]
    level: str
    expected: np.ndarray          # (H, W, 224) float32 what the reader returns (ascending wavelength)
    truth: np.ndarray             # the same before int16 quantisation (NaN at no-data samples)
    wavelengths: np.ndarray       # (224,) ascending, nm
    fwhm: np.ndarray
    gains: np.ndarray
    offsets: np.ndarray
    good: np.ndarray              # False for the bands flagged no-data in bandStatistics
    detector: List[str]           # "VNIR"/"SWIR" per band, ascending order
    crs: Optional[str] = None
    transform: object = None
    gt: Optional[np.ndarray] = None
    gt_path: Optional[Path] = None
    margin: int = 0
    notes: List[str] = field(default_factory=list)


def enmap_band_table():
    """(wavelength, fwhm, detector) of the 224 bands, ascending by wavelength (this fixture's values).

    VNIR 418.416-993 nm and SWIR 902-2445.30 nm overlap at 900-1000 nm ([EB-L2A] "detector overlap region
    from 900 to 1000 nanometers"; [L2A-COG] range); the sampling widens with wavelength like a prism's.
    """
    t = np.linspace(0.0, 1.0, N_VNIR)
    vnir = 418.416 + (993.0 - 418.416) * (0.8 * t + 0.2 * t ** 2)
    t = np.linspace(0.0, 1.0, N_SWIR)
    swir = 902.07 + (2445.30 - 902.07) * (0.9 * t + 0.1 * t ** 2)
    fw_v = 1.25 * np.gradient(vnir)
    fw_s = 1.25 * np.gradient(swir)
    wl = np.concatenate([vnir, swir])
    fw = np.concatenate([fw_v, fw_s])
    det = np.array(["VNIR"] * N_VNIR + ["SWIR"] * N_SWIR)
    order = np.argsort(wl, kind="stable")
    assert np.all(np.diff(wl[order]) > 0), "no two EnMAP fixture bands share a wavelength"
    return np.round(wl[order], 3), np.round(fw[order], 3), det[order].tolist()


def _resample(cube: np.ndarray, wl: np.ndarray) -> np.ndarray:
    """The cube's bands read as a spectrum spanning wl[0]..wl[-1], linearly interpolated at ``wl``."""
    c = np.asarray(cube, dtype=np.float64)
    B = c.shape[2]
    pos = (wl - wl[0]) / (wl[-1] - wl[0]) * (B - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, B - 2)
    frac = pos - lo
    return c[:, :, lo] * (1.0 - frac) + c[:, :, lo + 1] * frac


def _sub(parent, tag, text=None, **attrib):
    e = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        e.text = str(text)
    return e


def build_enmap(folder, cube, gt=None, level: str = "L2A", fmt: str = "GTiff", *, interleave: str = "BSQ",
                name: Optional[str] = None, margin: Optional[int] = None, nodata_bands: bool = True,
                with_wavelengths: bool = True, write_images: bool = True) -> EnmapFixture:
    """Write an EnMAP product into ``folder`` (see the module docstring)."""
    import rasterio
    from rasterio.transform import Affine

    level = level.upper()
    if level not in ("L1B", "L2A"):
        raise ValueError("level must be L1B or L2A")
    fmt_u = fmt.upper()
    if fmt_u not in ("GTIFF", "ENVI"):
        raise ValueError("fmt must be GTiff or ENVI")
    il = interleave.upper()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or (L2A_NAME if level == "L2A" else L1B_NAME)
    margin = (4 if level == "L2A" else 0) if margin is None else int(margin)

    wl, fw, det = enmap_band_table()
    B = wl.size
    src = np.asarray(cube, dtype=np.float64)
    H0, W0 = src.shape[:2]
    spec = _resample(src, wl)                       # (H0, W0, 224), ascending wavelength
    H, W = H0 + 2 * margin, W0 + 2 * margin
    inside = np.zeros((H, W), dtype=bool)
    inside[margin:margin + H0, margin:margin + W0] = True
    peak = float(np.nanmax(spec)) or 1.0

    if level == "L2A":
        # [EB-723] / [L2A-COG]: int16 reflectance with GainOfBand 0.0001, OffsetOfBand 0
        phys = spec / (1.25 * peak)                 # reflectance 0 .. 0.8
        gains = np.full(B, L2A_GAIN)
        offsets = np.zeros(B)
        good = ~((wl >= NODATA_BAND_RANGE[0]) & (wl <= NODATA_BAND_RANGE[1])) if nodata_bands else np.ones(B, bool)
    else:
        # L1B: DN with a band-wise gain and offset to radiance ([ENPT-SG] gains/offsets "for computing
        # radiance from DNs"); the values are this fixture's
        phys = spec / peak * 150.0                  # "radiance"
        k = np.arange(B)
        gains = np.round(np.maximum(phys.reshape(-1, B).max(axis=0), 1e-3) / 28000.0 * (1.0 + 0.05 * np.sin(k)), 9)
        offsets = np.round(0.02 * (k % 7) - 0.05, 4)
        good = np.ones(B, dtype=bool)

    dn = np.rint((phys - offsets) / gains)
    dn = np.clip(dn, -32767, 32767).astype(np.int16)
    raw = np.full((H, W, B), FILL, dtype=np.int16)
    raw[margin:margin + H0, margin:margin + W0] = dn
    raw[:, :, ~good] = FILL
    # what a reader computes: float32 DN * float32 gain + float32 offset, fill -> NaN
    expected = raw.astype(np.float32) * gains.astype(np.float32) + offsets.astype(np.float32)
    expected[raw == FILL] = np.nan
    truth = np.full((H, W, B), np.nan, dtype=np.float32)
    truth[margin:margin + H0, margin:margin + W0] = phys
    truth[:, :, ~good] = np.nan

    if level == "L2A":
        # [EB-216] / [ENPT-MG]: one image, bands by ascending wavelength, both detectors' overlap bands
        xml_bands = np.arange(B)
        images = [(f"{name}-SPECTRAL_IMAGE", "merge", xml_bands)]
        crs, transform = UTM_CRS, Affine(GSD, 0.0, ORIGIN[0], 0.0, -GSD, ORIGIN[1])
    else:
        # [ENPT-SG] VNIR bandIDs first (product/image/vnir/channels of them), then SWIR; one image each
        v = np.array([i for i in range(B) if det[i] == "VNIR"])
        s = np.array([i for i in range(B) if det[i] == "SWIR"])
        xml_bands = np.concatenate([v, s])
        images = [(f"{name}-SPECTRAL_IMAGE_VNIR", "vnir", v), (f"{name}-SPECTRAL_IMAGE_SWIR", "swir", s)]
        # [EB-L1B] L1B GeoTIFFs carry no CRS and a geotransform with a positive row step, which the
        # EnMAP-Box importer negates ("fix wrong GeoTransform tuple"): sensor geometry, not a map grid
        crs, transform = None, Affine(GSD, 0.0, 0.0, 0.0, GSD, 0.0)

    # [ENPT-MG] L2A written as .TIF (GeoTIFF) or .BSQ/.BIL/.BIP (ENVI); [EB-L1B] findSpectralImageFilename
    ext = ".TIF" if fmt_u == "GTIFF" else "." + il
    paths = []
    if write_images:
        with rasterio.Env(GDAL_PAM_ENABLED="NO"):  # no .aux.xml beside the product's files
            for stem, _, bands in images:
                path = folder / (stem + ext)
                arr = np.moveaxis(raw[:, :, bands], -1, 0)
                # [L2A-COG] int16 with nodata -32768 (the L1B images get the same tag here: the fixture's
                # choice, the reader takes whatever nodata the image declares)
                kw = dict(driver="GTiff" if fmt_u == "GTIFF" else "ENVI", height=H, width=W, count=len(bands),
                          dtype="int16", nodata=FILL)
                if crs is not None or level == "L1B":
                    kw.update(transform=transform)
                if crs is not None:
                    kw.update(crs=crs)
                if fmt_u == "GTIFF":
                    kw.update(interleave="pixel")  # band-interleaved-by-pixel GeoTIFF
                else:
                    kw.update(interleave=il.lower())
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with rasterio.open(path, "w", **kw) as dst:
                        dst.write(arr)
                paths.append(path)
    else:
        paths = [folder / (stem + ext) for stem, _, _ in images]

    gt_arr = gt_path = None
    if gt is not None:
        gt_arr = np.zeros((H, W), dtype=np.uint8)
        gt_arr[margin:margin + H0, margin:margin + W0] = (np.asarray(gt) > 0)
        gt_path = folder / f"{name}-METADATA_gt.tif"  # hadcore's <stem>_gt.tif convention, beside the XML
        kw = dict(driver="GTiff", height=H, width=W, count=1, dtype="uint8")
        if crs is not None:
            kw.update(crs=crs, transform=transform)
        import warnings

        with warnings.catch_warnings(), rasterio.Env(GDAL_PAM_ENABLED="NO"):
            warnings.simplefilter("ignore")
            with rasterio.open(gt_path, "w", **kw) as dst:
                dst.write(gt_arr, 1)

    xml_path = folder / f"{name}-METADATA.XML"
    _write_xml(xml_path, name=name, level=level, fmt_u=fmt_u, il=il, wl=wl, fw=fw, det=det, gains=gains,
               offsets=offsets, good=good, xml_bands=xml_bands, images=images, paths=paths, H=H, W=W,
               expected=expected, with_wavelengths=with_wavelengths)
    return EnmapFixture(xml=xml_path, images=paths, level=level, expected=expected, truth=truth,
                        wavelengths=wl, fwhm=fw, gains=gains, offsets=offsets, good=good, detector=det,
                        crs=crs, transform=transform if crs is not None else None, gt=gt_arr,
                        gt_path=gt_path, margin=margin)


def _write_xml(xml_path: Path, *, name, level, fmt_u, il, wl, fw, det, gains, offsets, good, xml_bands,
               images, paths, H, W, expected, with_wavelengths):
    # [LEVELX] root element level_X (an xsi namespace declaration, no default namespace)
    root = ET.Element("level_X", {"xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance"})
    md = _sub(root, "metadata")                                   # [ENPT-MG] metadata/schema/processingLevel
    _sub(_sub(md, "schema"), "processingLevel", level)
    _sub(md, "name", xml_path.name)                                # [ENPT-MG] metadata/name
    pr = _sub(root, "processing")
    # [ENPT-MG] processing/productFormat {BSQ+Metadata, BIL+Metadata, BIP+Metadata, JPEG2000+Metadata,
    # GeoTIFF+Metadata}
    _sub(pr, "productFormat", "GeoTIFF+Metadata" if fmt_u == "GTIFF" else f"{il}+Metadata")
    if level == "L2A":
        _sub(pr, "mapProjection", "UTM_Zone_of_Scene_Center")
    base = _sub(root, "base")
    _sub(base, "format", f"ENMAP_{level}")                          # [ENPT-MG] base/format ENMAP_L2A
    _sub(base, "level", level)                                     # [ENPT-SG] base/level (read_common_meta)
    _sub(base, "revision", "01.03.02")                             # [ENPT-SG] base/revision
    tc = _sub(base, "temporalCoverage")                            # [ENPT-SG] base/temporalCoverage/startTime
    _sub(tc, "startTime", "2022-07-24T10:45:26.000000Z")
    _sub(tc, "stopTime", "2022-07-24T10:45:30.000000Z")
    poly = _sub(_sub(base, "spatialCoverage"), "boundingPolygon")   # [ENPT-SG] base/spatialCoverage/...
    for frame, lat, lon in (("upper_left", 52.45, 13.02), ("upper_right", 52.43, 13.11),
                            ("lower_left", 52.37, 12.99), ("lower_right", 52.35, 13.08)):
        pt = _sub(poly, "point")
        _sub(pt, "frame", frame)
        _sub(pt, "latitude", lat)
        _sub(pt, "longitude", lon)

    spec = _sub(root, "specific")
    _sub(spec, "code", level)                                      # [ENPT-MG] specific/code
    # [EB-L2A]/[ENPT-MG] specific/bandCharacterisation/bandID[@number] with wavelengthCenterOfBand,
    # FWHMOfBand, GainOfBand, OffsetOfBand; numbered 1..224 in the image's band order
    bc = _sub(spec, "bandCharacterisation")
    for n, i in enumerate(xml_bands, start=1):
        b = _sub(bc, "bandID", number=n)
        if with_wavelengths:
            _sub(b, "wavelengthCenterOfBand", f"{wl[i]:.3f}")
        _sub(b, "FWHMOfBand", f"{fw[i]:.3f}")
        _sub(b, "GainOfBand", repr(float(gains[i])))
        _sub(b, "OffsetOfBand", repr(float(offsets[i])))
    number_of = {int(i): n for n, i in enumerate(xml_bands, start=1)}
    # [EB-L2A] specific/vnirProductQuality|swirProductQuality/expectedChannelsList: the bandID numbers of
    # each detector, comma separated
    for tag, d in (("vnirProductQuality", "VNIR"), ("swirProductQuality", "SWIR")):
        nums = sorted(number_of[i] for i in range(len(wl)) if det[i] == d)
        _sub(_sub(spec, tag), "expectedChannelsList", ",".join(str(v) for v in nums))

    prod = _sub(root, "product")
    img = _sub(prod, "image")
    # [ENPT-SG] product/image/vnir|swir/{name, channels, dimension/rows|columns} (L1B);
    # [ENPT-MG] product/image/merge/{channels, name, size, version, format, dimension} (L2A)
    for (stem, tag, bands), path in zip(images, paths):
        e = _sub(img, tag)
        _sub(e, "channels", len(bands))
        _sub(e, "name", path.name)
        _sub(e, "size", _kb(path), unit="Kbyte")
        _sub(e, "version", "01.03.02")
        _sub(e, "format", "binary")
        dim = _sub(e, "dimension")
        _sub(dim, "columns", W)
        _sub(dim, "rows", H)
    # [ENPT-MG] product/productFileInformation/file[@number]/{name, size[@unit=kbytes], version, format}
    pfi = _sub(prod, "productFileInformation")
    files = [xml_path] + list(paths)
    for k, path in enumerate(files):
        f = _sub(pfi, "file", number=k)
        _sub(f, "name", path.name)
        _sub(f, "size", _kb(path) if path.exists() else "", unit="kbytes")
        _sub(f, "version", "01.03.02")
        _sub(f, "format", "xml" if path.suffix.upper() == ".XML" else "binary")
    if level == "L2A":
        # [ENPT-MG] product/ortho/{projection UTM_Zone<N>_North, resolution, resampling}
        ortho = _sub(prod, "ortho")
        _sub(ortho, "projection", "UTM_Zone33_North")
        _sub(ortho, "resolution", int(GSD))
        _sub(ortho, "resampling", "bilinear")
    # [ENPT-MG] product/bandStatistics/bandID[@number]/{wavelength, mean, stdDeviation};
    # [EB-L2A] a no-data band has mean -1000000 and stdDeviation 0
    bs = _sub(prod, "bandStatistics")
    for n, i in enumerate(xml_bands, start=1):
        b = _sub(bs, "bandID", number=n)
        _sub(b, "wavelength", f"{wl[i]:.3f}")
        if not good[i]:
            _sub(b, "mean", NODATA_BAND_MEAN)
            _sub(b, "stdDeviation", "0")
        else:
            v = expected[:, :, i]
            v = v[np.isfinite(v)]
            _sub(b, "mean", f"{float(v.mean()) if v.size else 0.0:.6g}")
            _sub(b, "stdDeviation", f"{float(v.std()) if v.size else 0.0:.6g}")
    ET.indent(root)
    ET.ElementTree(root).write(xml_path, encoding="UTF-8", xml_declaration=True)


def _kb(path: Path) -> int:
    try:
        return int(os.path.getsize(path) / 1024)
    except OSError:
        return 0


def make_enmap(folder, cube, gt=None, level: str = "L2A", fmt: str = "GTiff", **kw) -> Path:
    """Write an EnMAP product into ``folder``; returns the METADATA.XML path."""
    return build_enmap(folder, cube, gt=gt, level=level, fmt=fmt, **kw).xml


def spectral_images(xml) -> List[Path]:
    """The spectral image file(s) named by a METADATA.XML written here (L1B: VNIR, SWIR)."""
    xml = Path(xml)
    root = ET.parse(xml).getroot()
    out = []
    for det in ("merge", "vnir", "swir"):
        e = root.find(f"product/image/{det}/name")
        if e is not None and e.text:
            out.append(xml.parent / e.text.strip())
    return out
