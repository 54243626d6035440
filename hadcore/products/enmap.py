"""EnMAP (DLR) Level 1B / 1C / 2A products: ``*-METADATA.XML`` plus the ``*-SPECTRAL_IMAGE*`` raster(s).

Layout (each fact with where it comes from; EnMAP-Box = github.com/EnMAP-Box/enmap-box, EnPT =
github.com/GFZ/enpt, both open-source readers/writers of the DLR format):

* Files: ``ENMAP01-____L2A-DT<datatake>_<start>Z_<tile>_V<version>_<processed>Z-METADATA.XML`` beside
  ``...-SPECTRAL_IMAGE.TIF`` (L1C/L2A, one image with every band) or ``...-SPECTRAL_IMAGE_VNIR.TIF`` and
  ``...-SPECTRAL_IMAGE_SWIR.TIF`` (L1B, one image per detector). The image may also be delivered as
  ``.GEOTIFF``, ``.BSQ``/``.BIL``/``.BIP`` (ENVI), ``.JP2`` or, for the ARD/COG products, ``_COG.TIF``
  (EnMAP-Box ``enmapboxprocessing/algorithm/importenmapl1balgorithm.py`` ``findSpectralImageFilename``;
  EnPT ``enpt/model/metadata/metadata_mapgeo.py`` L2A file naming; EnPT ``docs/algorithm_descriptions.rst``
  file tables). The XML also names its images: ``product/image/vnir|swir/name`` (L1B) and
  ``product/image/merge/name`` (L2A), with ``channels`` and ``dimension/rows|columns`` beside them (EnPT
  ``metadata_sensorgeo.py`` ``read_metadata``; ``metadata_mapgeo.py`` ``to_XML``).
* XML root element ``level_X`` (no namespace; as in two public projects' EnMAP test fixtures, one of them
  checked against DLR files), sections ``metadata`` (``name``, ``schema/processingLevel``), ``base``
  (``format`` = ``ENMAP_L2A``, ``level``), ``specific``, ``product`` (EnPT ``metadata_mapgeo.py``
  ``to_XML`` edits these paths of the DLR XML; ``metadata_sensorgeo.py`` ``read_common_meta``:
  ``base/level``). Sniffing asks for that root AND an EnMAP identifier (``ENMAP`` product name / format)
  or ``bandCharacterisation`` in the first 64 KB, or, under another root, for all three.
* Bands: ``specific/bandCharacterisation/bandID[@number]`` with ``wavelengthCenterOfBand`` (nm),
  ``FWHMOfBand`` (nm), ``GainOfBand``, ``OffsetOfBand``; physical value = DN * gain + offset (EnMAP-Box
  ``importenmapl2aalgorithm.py`` / ``importenmapl1balgorithm.py`` set them as GDAL scale/offset; EnPT
  writes them in ``to_XML``). L2A: reflectance = int16 * 0.0001 (``GainOfBand`` 0.0001, EnMAP-Box issue
  #723, maintainer comment), bands ordered by wavelength across both detectors (EnMAP-Box issue #216:
  "the L2A bands come preordered by wavelength"). L1B: the first ``product/image/vnir/channels`` bandIDs
  are the VNIR image's bands, the rest the SWIR image's (EnPT ``metadata_sensorgeo.py``: ``startband``).
* Detector of each L2A band: ``specific/vnirProductQuality/expectedChannelsList`` and
  ``specific/swirProductQuality/expectedChannelsList`` (comma-separated bandID numbers; EnMAP-Box
  ``importenmapl2aalgorithm.py``).
* No-data bands: ``product/bandStatistics/bandID`` with ``mean`` -1000000 and ``stdDeviation`` 0
  (EnMAP-Box ``importenmapl2aalgorithm.py``, issues #267 / #974) -> ``Product.good`` False.
* No-data pixels: the image's own nodata (GeoTIFF GDAL_NODATA tag / ENVI ``data ignore value``); DLR L2A
  GeoTIFFs carry -32768 (int16), used as a fallback for int16 images without the tag.
* Geometry: L1C/L2A are map products (UTM of the scene centre, 30 m; EnPT ``to_XML``
  ``processing/mapProjection``, ``product/ortho``), georeferenced by the GeoTIFF/ENVI header. L1B is in
  sensor geometry: crs/transform None (the L1B GeoTIFFs carry a pixel-size-only geotransform that
  EnMAP-Box "fixes"; it is not a map grid).

Design choices:

* The band axis is ascending by wavelength (stable sort of the XML's bands). For L1B the VNIR and SWIR
  bands are merged; BOTH detectors' bands are kept in their 900-1000 nm overlap (EnPT's and EnMAP-Box's
  default "order by wavelength"), so the axis matches the L2A product's; the central band selection can
  drop either. L1B's VNIR and SWIR images are not co-registered (EnPT docs: ~20 pixels along track): the
  stacked L1B spectrum of a pixel mixes two ground positions, as in the product itself (a note says so).
* Values are float32 ``DN * GainOfBand + OffsetOfBand`` with no-data samples as NaN.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..engine import Source
from ..errors import FileError, InputError
from .base import Product, Reader, head, require, to_nanometres

__all__ = ["READER", "EnmapReader", "EnmapSource", "metadata_beside", "spectral_images"]

#: the image names: ``<stem>-SPECTRAL_IMAGE[_VNIR|_SWIR][_COG].<ext>`` (an ENVI header ``.HDR`` too)
_IMAGE_RE = re.compile(r"^(?P<stem>.+)-SPECTRAL_IMAGE(?P<det>_VNIR|_SWIR)?(?P<cog>_COG)?"
                       r"\.(?P<ext>TIF|TIFF|GEOTIFF|BSQ|BIL|BIP|JP2|HDR)$", re.IGNORECASE)
#: extensions tried for an image the XML does not name (EnMAP-Box ``findSpectralImageFilename``)
_IMAGE_EXTS = (".TIF", ".TIFF", ".GEOTIFF", ".BSQ", ".BIL", ".BIP", ".JP2", "_COG.TIF", "_COG.TIFF")
#: ``-METADATA.XML`` (some downloads carry ``-METADATA.XML.XML``)
_XML_SUFFIXES = ("-METADATA.XML", "-METADATA.XML.XML")
#: ``product/bandStatistics`` values of a band without data (EnMAP-Box importenmapl2aalgorithm.py)
_NODATA_BAND_MEAN = -1000000.0
#: DLR's int16 fill value (the L2A GeoTIFFs' nodata tag)
_INT16_FILL = -32768.0


# ------------------------------------------------------------------------------------------ XML helpers

def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(el, name: str):
    return [c for c in list(el) if _local(c.tag) == name]


def _find(el, path: str):
    """The first element at ``a/b/c`` below ``el`` by local names (namespaces ignored), or None."""
    cur = [el]
    for part in path.split("/"):
        cur = [c for e in cur for c in _children(e, part)]
        if not cur:
            return None
    return cur[0]


def _text(el, path: str) -> Optional[str]:
    e = _find(el, path)
    if e is None or e.text is None:
        return None
    t = e.text.strip()
    return t or None


def _root_name(data: bytes) -> Optional[str]:
    """Local name of the root element of an XML document's first bytes, or None when not XML."""
    s = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not s.startswith(b"<"):
        return None
    pos = 0
    while True:
        i = s.find(b"<", pos)
        if i < 0:
            return None
        ends = {b"<?": b"?>", b"<!--": b"-->", b"<!": b">"}
        opener = next((o for o in (b"<?", b"<!--", b"<!") if s.startswith(o, i)), None)
        if opener is None:
            n = re.match(rb"<([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)[\s/>]", s[i:i + 256])
            return n.group(2).decode("ascii", "replace") if n else None
        j = s.find(ends[opener], i + len(opener))
        if j < 0:
            return None
        pos = j + len(ends[opener])


def _is_enmap_xml(path: Path) -> bool:
    """An EnMAP METADATA.XML by content: root ``level_X`` naming EnMAP (product name ``ENMAP01-...``,
    ``base/format`` ``ENMAP_L2A``) or its ``bandCharacterisation``."""
    h = head(path, 65536)
    root = _root_name(h)
    if root is None:
        return False
    up = h.upper()
    if root == "level_X":
        return b"ENMAP" in up or b"<BANDCHARACTERISATION" in up
    # a renamed root: still EnMAP's own band elements and identifiers
    return b"ENMAP" in up and b"WAVELENGTHCENTEROFBAND" in up and b"BANDCHARACTERISATION" in up


def _listing(folder: Path) -> Dict[str, Path]:
    try:
        return {p.name.upper(): p for p in folder.iterdir()}
    except OSError:
        return {}


def metadata_beside(image) -> Optional[Path]:
    """The ``-METADATA.XML`` of a ``-SPECTRAL_IMAGE*`` file (same product stem, same folder), or None."""
    p = Path(image)
    m = _IMAGE_RE.match(p.name)
    if m is None:
        return None
    names = _listing(p.parent)
    for suf in _XML_SUFFIXES:
        cand = names.get((m.group("stem") + suf).upper())
        if cand is not None and cand.is_file():
            return cand
    return None


def _xml_stem(xml: Path) -> str:
    name = xml.name
    for suf in sorted(_XML_SUFFIXES, key=len, reverse=True):
        if name.upper().endswith(suf):
            return name[: -len(suf)]
    return xml.stem


# ------------------------------------------------------------------------------------------ metadata

class _Meta:
    """What the reader takes from a METADATA.XML."""

    def __init__(self, xml: Path):
        import xml.etree.ElementTree as ET

        from ._xml import parse_xml

        self.xml = xml
        try:
            root = parse_xml(xml)
        except ET.ParseError as exc:
            raise FileError(f"{xml}: not a readable XML file ({str(exc).splitlines()[0]})") from None
        except OSError as exc:
            raise FileError(f"cannot read {xml}: {exc.strerror or exc}") from None
        self.root = root
        self.level = self._level(root, xml)
        self._bands(root, xml)
        self.images = {}  # detector -> (name, channels, rows, cols)
        img = _find(root, "product/image")
        if img is not None:
            for det in list(img):
                key = _local(det.tag).lower()
                self.images[key] = (_text(det, "name"), _int(_text(det, "channels")),
                                    _int(_text(det, "dimension/rows")), _int(_text(det, "dimension/columns")))
        self.vnir_channels = _channel_list(_text(root, "specific/vnirProductQuality/expectedChannelsList"))
        self.swir_channels = _channel_list(_text(root, "specific/swirProductQuality/expectedChannelsList"))
        self.nodata_bands = set()
        stats = _find(root, "product/bandStatistics")
        if stats is not None:
            for b in _children(stats, "bandID"):
                mean, std = _float(_text(b, "mean")), _float(_text(b, "stdDeviation"))
                if mean == _NODATA_BAND_MEAN and std == 0.0:
                    self.nodata_bands.add(_int(b.get("number")))

    @staticmethod
    def _level(root, xml: Path) -> str:
        for path in ("base/level", "metadata/schema/processingLevel", "specific/code"):
            t = _text(root, path)
            if t and re.fullmatch(r"L[0-3][A-Da-d]?", t.strip()):
                return t.strip().upper()
        m = re.search(r"(L1B|L1C|L2A)", xml.name.upper())
        return m.group(1) if m else "L2A"

    def _bands(self, root, xml: Path):
        bc = _find(root, "specific/bandCharacterisation")
        if bc is None:  # tolerate another parent
            bc = next((e for e in root.iter() if _local(e.tag) == "bandCharacterisation"), None)
        ids = _children(bc, "bandID") if bc is not None else []
        where = "specific/bandCharacterisation/bandID/wavelengthCenterOfBand"
        if not ids:
            raise FileError(f"{xml}: no band wavelengths in the metadata ({where} missing)")
        rows = []
        for pos, b in enumerate(ids):
            num = _int(b.get("number"))
            num = pos + 1 if num is None else num
            wl = _float(_text(b, "wavelengthCenterOfBand"), xml, f"band {num} wavelengthCenterOfBand")
            if wl is None or not np.isfinite(wl):
                raise FileError(f"{xml}: band {num} has no wavelength ({where})")
            fw = _float(_text(b, "FWHMOfBand"), xml, f"band {num} FWHMOfBand")
            gain = _float(_text(b, "GainOfBand"), xml, f"band {num} GainOfBand")
            off = _float(_text(b, "OffsetOfBand"), xml, f"band {num} OffsetOfBand")
            rows.append((num, wl, np.nan if fw is None else fw, 1.0 if gain is None else gain,
                         0.0 if off is None else off))
        # file order is the image's band order (bandID numbers are 1..B in that order in DLR products)
        self.numbers = np.array([r[0] for r in rows], dtype=np.int64)
        wl = np.array([r[1] for r in rows], dtype=np.float64)
        wl_nm = to_nanometres(wl, None)
        factor = wl_nm[0] / wl[0] if wl[0] else 1.0
        self.wavelengths = wl_nm
        fw = np.array([r[2] for r in rows], dtype=np.float64) * factor
        self.fwhm = None if np.isnan(fw).all() else fw
        self.gains = np.array([r[3] for r in rows], dtype=np.float64)
        self.offsets = np.array([r[4] for r in rows], dtype=np.float64)
        if len(set(self.numbers.tolist())) != len(rows):
            raise FileError(f"{xml}: bandCharacterisation repeats a bandID number")


def _int(t) -> Optional[int]:
    try:
        return int(str(t).strip())
    except (TypeError, ValueError):
        return None


def _float(t, xml=None, what: str = "") -> Optional[float]:
    if t is None:
        return None
    try:
        return float(t)
    except ValueError:
        if xml is None:
            return None
        raise FileError(f"{xml}: {what} is not a number: {t[:40]!r}") from None


def _channel_list(t) -> List[int]:
    if not t:
        return []
    out = []
    for part in t.replace(";", ",").split(","):
        v = _int(part)
        if v is not None:
            out.append(v)
    return out


# ------------------------------------------------------------------------------------------ images

def _find_image(meta: _Meta, det_key: str, suffix: str) -> Path:
    """The image of ``det_key`` ("vnir", "swir", "merge"): the name the XML gives, else
    ``<stem><suffix><ext>`` for the extensions DLR delivers."""
    xml = meta.xml
    names = _listing(xml.parent)
    tried = []
    info = meta.images.get(det_key)
    if info and info[0]:
        tried.append(info[0])
        cand = names.get(Path(info[0]).name.upper())
        if cand is not None and cand.is_file():
            return cand
    stem = _xml_stem(xml)
    for ext in _IMAGE_EXTS:
        name = stem + suffix + ext
        tried.append(name)
        cand = names.get(name.upper())
        if cand is not None and cand.is_file():
            return cand
    raise FileError(f"{xml}: its spectral image is missing (looked for {tried[0]} in {xml.parent})")


def spectral_images(xml) -> List[Path]:
    """The spectral image file(s) of a METADATA.XML, in band order (L1B: VNIR, SWIR)."""
    meta = _Meta(Path(xml))
    return [p for p, _ in _images_of(meta)]


def _images_of(meta: _Meta) -> List[Tuple[Path, str]]:
    """L1B: the VNIR and SWIR images; L1C/L2A: the one image (its VNIR/SWIR pair when only that exists)."""

    def pair():
        return [(_find_image(meta, "vnir", "-SPECTRAL_IMAGE_VNIR"), "VNIR"),
                (_find_image(meta, "swir", "-SPECTRAL_IMAGE_SWIR"), "SWIR")]

    if meta.level == "L1B" and "merge" not in meta.images:
        return pair()
    try:
        return [(_find_image(meta, "merge", "-SPECTRAL_IMAGE"), "")]
    except FileError:
        if "merge" in meta.images:
            raise
        try:
            return pair()
        except FileError:
            pass
        raise


def _open_info(path: Path) -> dict:
    rasterio = require("rasterio", "EnMAP products")
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(str(path)) as ds:
                return dict(count=ds.count, height=ds.height, width=ds.width, dtype=np.dtype(ds.dtypes[0]),
                            nodata=ds.nodata, crs=ds.crs, transform=ds.transform,
                            block=tuple(int(v) for v in ds.block_shapes[0]), driver=ds.driver)
    except RasterioIOError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileError(f"cannot read {path} as a raster: {msg}") from None


def _fill_value(info: dict) -> Optional[float]:
    nd = info["nodata"]
    if nd is not None:
        return float(nd)
    if info["dtype"] == np.int16:
        return _INT16_FILL
    return None


# ------------------------------------------------------------------------------------------ source

class EnmapSource(Source):
    """Windows of EnMAP spectral images as float32 ``DN * gain + offset`` with no-data samples as NaN.

    ``picks`` lists, for each output band, ``(image index, 1-based band of that image)``; the images are
    read through :class:`hadcore.io.RasterSource` (lazy, picklable, one-line errors for corrupt or
    truncated files). One image: scaled in place in the read buffer; two (L1B): copied into one array.
    """

    def __init__(self, paths: Sequence[str], picks: Sequence[Tuple[int, int]], gains, offsets,
                 fills: Sequence[Optional[float]], hw: Tuple[int, int], block_shape, name: str):
        from ..io import RasterSource

        self.paths = [str(p) for p in paths]
        self.shape = (int(hw[0]), int(hw[1]), len(picks))
        self.nodata = None
        self.block_shape = block_shape
        self.name = name
        self.gains = np.asarray(gains, dtype=np.float32)
        self.offsets = np.asarray(offsets, dtype=np.float32)
        self.fills = [None if f is None else float(f) for f in fills]
        groups: Dict[int, List[int]] = {}
        for k, (fi, _) in enumerate(picks):
            groups.setdefault(int(fi), []).append(k)
        self.parts = []  # (image index, RasterSource, positions in the output, its gains, offsets)
        for fi, pos in groups.items():
            rs = RasterSource(self.paths[fi], [int(picks[k][1]) for k in pos], None, hw, block_shape)
            self.parts.append((fi, rs, np.asarray(pos, dtype=np.intp), self.gains[pos], self.offsets[pos]))
        self.read_bytes = 4 if len(self.parts) == 1 else 8

    def _scaled(self, fi, rs, gains, offsets, r0, r1, c0, c1, reuse):
        data = rs.read(r0, r1, c0, c1, reuse=reuse)  # (h, w, b) float32 view of this read's own buffer
        fill = self.fills[fi]
        bad = (data == np.float32(fill)) if fill is not None and not np.isnan(fill) else None
        np.multiply(data, gains, out=data)
        np.add(data, offsets, out=data)
        if bad is not None and bad.any():
            np.copyto(data, np.float32(np.nan), where=bad)
        return data

    def _read(self, r0, r1, c0, c1, reuse):
        if len(self.parts) == 1:
            fi, rs, _, g, o = self.parts[0]
            return self._scaled(fi, rs, g, o, r0, r1, c0, c1, reuse)
        h, w = r1 - r0, c1 - c0
        if reuse:
            from ..engine import scratch_buffer

            out = scratch_buffer((h, w, self.shape[2]), np.float32, slot="enmap")
        else:
            out = np.empty((h, w, self.shape[2]), dtype=np.float32)
        for fi, rs, pos, g, o in self.parts:
            out[:, :, pos] = self._scaled(fi, rs, g, o, r0, r1, c0, c1, reuse)
        return out

    def read(self, r0, r1, c0, c1):
        return self._read(r0, r1, c0, c1, reuse=False)

    def raw_block(self, r0, r1, c0, c1):
        from ..base import valid_mask

        raw = self._read(r0, r1, c0, c1, reuse=True)  # consumed before the next block
        return raw, valid_mask(raw, None, self.user_mask(r0, r1, c0, c1))

    def close(self):
        for _, rs, *_ in self.parts:
            rs.close()


# ------------------------------------------------------------------------------------------ reader

class EnmapReader(Reader):
    """DLR EnMAP L1B (VNIR + SWIR images, sensor geometry), L1C and L2A (one image, UTM)."""

    name = "EnMAP"
    suffixes = (".xml", ".tif", ".tiff", ".geotiff", ".bsq", ".bil", ".bip", ".hdr")

    def sniff(self, path: Path) -> bool:
        p = Path(path)
        try:
            if not p.is_file():
                return False
        except OSError:
            return False
        if _is_enmap_xml(p):
            return True
        xml = metadata_beside(p)
        return xml is not None and _is_enmap_xml(xml)

    def open(self, path: Path) -> Product:
        p = Path(path)
        if not p.exists():
            raise FileError(f"input not found: {path}")
        xml = p if _is_enmap_xml(p) else metadata_beside(p)
        if xml is None or not _is_enmap_xml(xml):
            raise FileError(f"{p}: no EnMAP METADATA.XML beside it (expected <product>-METADATA.XML)")
        meta = _Meta(xml)
        images = _images_of(meta)
        infos = [_open_info(img) for img, _ in images]
        B = len(meta.wavelengths)
        notes = []

        # the image band of each XML band, in XML order
        if len(images) == 1:
            info = infos[0]
            if info["count"] != B:
                raise FileError(f"{images[0][0]}: {info['count']} bands, but {xml.name} describes {B}")
            table = [(0, k + 1) for k in range(B)]
            det = {n: "VNIR" for n in meta.vnir_channels}
            det.update({n: "SWIR" for n in meta.swir_channels})
            dets = [det.get(int(n), "") for n in meta.numbers]
        else:
            nv = meta.images.get("vnir", (None, None))[1]
            ns = meta.images.get("swir", (None, None))[1]
            cv, cs = infos[0]["count"], infos[1]["count"]
            for label, n_xml, n_img, img in (("VNIR", nv, cv, images[0][0]), ("SWIR", ns, cs, images[1][0])):
                if n_xml is not None and n_xml != n_img:
                    raise FileError(f"{img}: {n_img} bands, but {xml.name} gives the {label} image {n_xml}")
            if cv + cs != B:
                raise FileError(f"{xml}: {B} bands in bandCharacterisation, the VNIR and SWIR images hold "
                                f"{cv} + {cs}")
            a, b = infos
            if (a["height"], a["width"]) != (b["height"], b["width"]):
                raise FileError(f"{images[1][0]}: {b['height']} x {b['width']} pixels, the VNIR image is "
                                f"{a['height']} x {a['width']}: cannot stack the detectors")
            table = [(0, k + 1) for k in range(cv)] + [(1, k + 1) for k in range(cs)]
            dets = ["VNIR"] * cv + ["SWIR"] * cs
            notes.append("L1B: VNIR and SWIR images stacked, both detectors' bands kept in their 900-1000 nm "
                         "overlap, ordered by wavelength")
            notes.append("L1B is in sensor geometry and its VNIR and SWIR images are not co-registered "
                         "(about 20 rows along track): each pixel's spectrum joins two ground positions")

        order = np.argsort(meta.wavelengths, kind="stable")
        if np.any(order != np.arange(B)):
            notes.append("bands reordered by ascending wavelength")
        H, W = infos[0]["height"], infos[0]["width"]
        fills = [_fill_value(i) for i in infos]
        wl = meta.wavelengths[order]
        fwhm = None if meta.fwhm is None else meta.fwhm[order]
        gains, offsets = meta.gains[order], meta.offsets[order]
        numbers = meta.numbers[order]
        picks = [table[k] for k in order]
        good = np.array([int(n) not in meta.nodata_bands for n in numbers], dtype=bool)
        good &= np.isfinite(gains) & (gains != 0) & np.isfinite(offsets)
        if not good.any():
            raise FileError(f"{xml}: every band is flagged as no-data (product/bandStatistics or zero gains)")
        if meta.nodata_bands:
            notes.append(f"{int((~good).sum())} band(s) flagged as no-data in product/bandStatistics")

        # georeference: L1C/L2A from the image; L1B is sensor geometry unless its image carries a CRS
        crs, transform = infos[0]["crs"], infos[0]["transform"]
        if crs is None:
            crs = transform = None
        blocks = [tuple(i["block"]) for i in infos]
        block_shape = blocks[0] if all(b == blocks[0] for b in blocks) else None
        paths = [str(img) for img, _ in images]
        name = images[0][0].name if len(images) == 1 else xml.name
        band_names = [f"{(dets[k] + ' ') if dets[k] else ''}band {int(meta.numbers[k])} "
                      f"({meta.wavelengths[k]:.2f} nm)" for k in order]
        if meta.level == "L2A":
            notes.append("reflectance = DN * GainOfBand + OffsetOfBand (METADATA.XML bandCharacterisation)")
        else:
            notes.append("values = DN * GainOfBand + OffsetOfBand (METADATA.XML bandCharacterisation)")

        def source(indexes):
            idx = _check_indexes(indexes, B, xml)
            return EnmapSource(paths, [picks[i] for i in idx], gains[idx], offsets[idx], fills, (H, W),
                               block_shape, name)

        from ..io import ground_truth_path

        gt = None
        for cand in [xml] + [img for img, _ in images]:
            gt = ground_truth_path(cand)
            if gt is not None:
                break
        return Product(kind=f"EnMAP {meta.level}", path=str(xml), shape=(H, W, B), source=source,
                       wavelengths=wl, fwhm=fwhm, good=good, reflective=True, crs=crs, transform=transform,
                       nodata=fills[0], band_names=band_names, notes=notes,
                       gt_path=str(gt) if gt is not None else None)


def _check_indexes(indexes, B: int, xml) -> List[int]:
    try:
        idx = [int(i) for i in indexes]
    except (TypeError, ValueError):
        raise InputError(f"{xml.name}: band indexes must be integers") from None
    if not idx:
        raise InputError(f"{xml.name}: no band selected")
    bad = [i for i in idx if not 0 <= i < B]
    if bad:
        raise InputError(f"{xml.name}: band index {bad[0]} out of range (the product has {B} bands)")
    return idx


READER = EnmapReader()
