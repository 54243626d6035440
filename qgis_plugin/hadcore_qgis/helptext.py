"""Help text of a generated algorithm, from the detector's declaration and docstring.

The help panel shows the detector's docstring converted to HTML by :mod:`hadcore_qgis.rst_html` (the
docstring is the one description of a method: nothing is written twice), then its parameters under their
QGIS names, the parameters every detector algorithm shares, the reference and a link to the documentation.
No QGIS import here: the help is built (and tested) with the standard library alone.
"""

from __future__ import annotations

import html
import re

from .rst_html import inline_to_html, rst_to_html

FAMILY_GROUPS = {
    # "A..." sorts first in the Processing toolbox: the default every user should try first
    "recommended": "Anomaly detection (recommended default)",
    "statistical": "Statistical detectors",
    "representation": "Representation-based detectors",
    "deep": "Deep-learning detectors",
    "target": "Target detectors (a known spectrum)",
}

#: base of every documentation link (the repository's files on GitHub)
DOCS_BASE_URL = "https://github.com/hadcore/hadcore/blob/main/"
#: detectors with a documentation page of their own in ``docs/`` (tests check this against ``docs/``)
DETECTOR_PAGES = {"gthad": "docs/gthad.md", "kdad": "docs/kdad.md", "stad": "docs/stad.md",
                  "auto": "docs/auto.md"}
#: every other detector links to the detector table of the README
DETECTOR_TABLE = "README.md#detectors"

COMMON_PARAMETERS = (
    "<h3>Common parameters</h3><ul>"
    "<li><b>INPUT</b>: the hyperspectral raster layer (any GDAL raster; nodata pixels are ignored).</li>"
    "<li><b>PRODUCT</b>: or, instead of a layer, a sensor-product file read by hadcore's product readers "
    "(EMIT <code>.nc</code>, PRISMA <code>.he5</code>, EnMAP <code>METADATA.XML</code>, AVIRIS, HyTES, "
    "DESIS): the scene on its map grid, with the product's own bad-band flags. Give INPUT or PRODUCT, not "
    "both.</li>"
    "<li><b>BANDS</b>: 1-based bands to use, e.g. <code>1-50,60</code>; empty = all.</li>"
    "<li><b>BAD_BANDS</b> (advanced): bands to drop. A product's own flags are dropped by default (empty); "
    "<code>auto</code> also drops the water-vapour windows and constant or empty bands, <code>none</code> "
    "keeps every band (flags included), a 1-based list such as <code>1-5,200</code> drops those bands too; "
    "for a PRODUCT the tokens combine (<code>auto,1-5</code>). For an INPUT layer only a list applies.</li>"
    "<li><b>SCALE</b>: min-max scale the scores to 0-1 over valid pixels.</li>"
    "<li><b>MEM_LIMIT</b> (advanced): memory budget in MB (0 = a quarter of the RAM, at most 2048); the "
    "scene is read and scored in blocks sized to fit in it.</li>"
    "<li><b>OUTPUT</b>: float32 GeoTIFF of scores, higher = more anomalous, NaN nodata, CRS and transform "
    "of the input.</li>"
    "<li><b>THRESHOLD</b>, <b>CONNECTIVITY</b>, <b>MIN_SIZE</b>, <b>DETECTIONS</b>: optional detection "
    "polygons of the score layer as written (threshold <code>percentile:P | value:X | top:N | otsu | "
    "fpr:R</code>; <code>fpr:</code> needs unscaled scores of a detector with a null law: RX, LRX, ACE, "
    "MF), with attributes id, pixels, area, peak, mean, "
    "peak_x, peak_y.</li>"
    "<li><b>SPECTRA</b>: optional table of each detection's mean, standard deviation and peak-pixel spectra "
    "and the background's (id 0; every valid pixel outside the detections), one row per id and band with "
    "its wavelength, in the layer's own units, gathered while the scores are written. Saved into a "
    "GeoPackage or CSV, it names a target for the target detectors: <code>spectra.gpkg:ID</code> "
    "(find more like detection ID).</li>"
    "<li><b>REPORT</b>: optional HTML report of those spectra: a table of the detections and the plot "
    "against the background (the plot needs matplotlib in QGIS's Python).</li>"
    "<li>Outputs <b>N_DETECTIONS</b> (number of detection polygons) and <b>SECONDS</b> (detector run "
    "time).</li></ul>"
)


def family_group(family: str) -> str:
    return FAMILY_GROUPS.get(family, f"{str(family).capitalize()} detectors")


def docs_url(name: str) -> str:
    """The documentation of detector ``name``: its own page if it has one, else the README's table."""
    return DOCS_BASE_URL + DETECTOR_PAGES.get(name, DETECTOR_TABLE)


def _sentence(text: str) -> str:
    text = (text or "").strip()
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def _default(p) -> str:
    """A parameter's default as the QGIS dialog shows it."""
    value = p.default
    if value is None or (isinstance(value, str) and value == ""):
        return "empty"
    if p.type == "bool":
        return "on" if value else "off"
    if isinstance(value, float):
        return f"<code>{value:g}</code>" if abs(value) < 1e16 else f"<code>{value!r}</code>"
    return f"<code>{html.escape(str(value), quote=False)}</code>"


def _range(p) -> str:
    if p.type == "bool":
        return "On or off (a checkbox)"
    text = p.describe_range()
    return html.escape(text[:1].upper() + text[1:], quote=False)


_LINKS = re.compile(r"\b(doi:\s*(10\.\d{4,9}/[^\s,;]+?)|arXiv:\s*(\d{4}\.\d{4,5}(?:v\d+)?))(?=[\s,;)]|\.?$|\.\s)",
                    re.I)


def reference_html(reference: str) -> str:
    """The citation, escaped, with its DOI and arXiv identifiers as links."""
    out, pos = [], 0
    text = reference or ""
    for m in _LINKS.finditer(text):
        out.append(html.escape(text[pos:m.start()], quote=False))
        url = f"https://doi.org/{m.group(2)}" if m.group(2) else f"https://arxiv.org/abs/{m.group(3)}"
        out.append(f'<a href="{html.escape(url)}">{html.escape(m.group(1), quote=False)}</a>')
        pos = m.end()
    out.append(html.escape(text[pos:], quote=False))
    return "".join(out)


def detector_help(cls, qgis_name) -> str:
    """HTML help: summary, docstring as prose, parameters (QGIS names), common parameters, reference, docs."""
    parts = [f"<p><b>{inline_to_html(cls.summary or '')}</b></p>"]
    why = getattr(cls, "rationale", "")  # absent in hadcore releases before the default was named
    if why:
        parts.append(f"<p><i>Why</i>: {inline_to_html(why)}</p>")
    doc = rst_to_html(cls.__doc__ or "")
    if doc:
        parts.append(doc)
    parts.append("<h3>Detector parameters</h3>")
    if cls.params:
        parts.append("<ul>")
        for p in cls.params:
            parts.append(
                f"<li><b>{html.escape(qgis_name(p.name), quote=False)}</b> "
                f"(<code>{html.escape(p.name, quote=False)}</code>): {inline_to_html(_sentence(p.help))} "
                f"{_range(p)}{'; may be left empty' if p.optional else ''}; default {_default(p)}.</li>")
        parts.append("</ul>")
    else:
        parts.append("<p>None.</p>")
    parts.append(COMMON_PARAMETERS)
    parts.append(f"<p><b>Reference</b>: {reference_html(cls.reference)}</p>")
    target = DETECTOR_PAGES.get(cls.name, DETECTOR_TABLE)
    label = target if cls.name in DETECTOR_PAGES else "the detector table of the README"
    parts.append(f'<p><b>Documentation</b>: <a href="{html.escape(docs_url(cls.name))}">'
                 f"{html.escape(label, quote=False)}</a></p>")
    return "\n".join(parts)
