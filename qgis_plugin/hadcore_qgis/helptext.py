"""Help text of a generated algorithm, from the detector's declaration and docstring."""

from __future__ import annotations

import html
import inspect
import re

FAMILY_GROUPS = {
    "statistical": "Statistical detectors",
    "representation": "Representation-based detectors",
    "deep": "Deep-learning detectors",
}


def family_group(family: str) -> str:
    return FAMILY_GROUPS.get(family, f"{str(family).capitalize()} detectors")


def _doc_paragraphs(doc: str):
    text = inspect.cleandoc(doc or "")
    # drop the ".. math::" directive marker but keep the formula line
    text = re.sub(r"\.\. math::\s*", "", text)
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def detector_help(cls, qgis_name) -> str:
    """HTML help: summary, docstring, parameters (QGIS names), reference."""
    e = html.escape
    parts = [f"<p><b>{e(cls.summary)}</b></p>"]
    for para in _doc_paragraphs(cls.__doc__ or ""):
        parts.append(f"<p>{e(' '.join(para.split()))}</p>")
    parts.append("<h3>Detector parameters</h3><ul>")
    for p in cls.params:
        parts.append(f"<li><b>{e(qgis_name(p.name))}</b>: {e(p.help)} ({e(p.describe_range())}; "
                     f"default {e(repr(p.default))})</li>")
    parts.append("</ul>")
    parts.append(
        "<h3>Common parameters</h3><ul>"
        "<li><b>INPUT</b>: the hyperspectral raster layer (any GDAL format; nodata pixels are ignored).</li>"
        "<li><b>BANDS</b>: 1-based bands to use, e.g. <code>1-50,60</code>; empty = all.</li>"
        "<li><b>SCALE</b>: min-max scale the scores to 0-1 over valid pixels.</li>"
        "<li><b>OUTPUT</b>: float32 GeoTIFF of scores, higher = more anomalous, NaN nodata, "
        "CRS and transform of the input.</li>"
        "<li><b>THRESHOLD</b>, <b>CONNECTIVITY</b>, <b>MIN_SIZE</b>, <b>DETECTIONS</b>: optional detection "
        "polygons of the score layer as written (threshold <code>percentile:P | value:X | top:N | otsu | "
        "fpr:R</code>), with attributes id, pixels, area, peak, mean, peak_x, peak_y.</li></ul>"
    )
    parts.append(f"<p><b>Reference</b>: {e(cls.reference)}</p>")
    return "\n".join(parts)
