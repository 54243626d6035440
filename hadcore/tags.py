"""The tags of a score layer: one schema, written by every writer (CLI, Python, QGIS) and read by every reader.

A score layer carries, in its dataset metadata (GeoTIFF tags, GDAL's default domain):

=========================  ==============================================================================
``hadcore_version``        the hadcore that wrote it
``detector``               registry name (``rx``)
``parameters``             the detector's parameters, JSON
``bands``                  band count of the detector's input: the chi-square degrees of freedom of ``fpr:``
``band_list``              the input bands used, 1-based ranges (``1-100,120-180``); absent when unknown
``normalized``             ``true`` when the scores were min-max scaled to 0-1 (``--normalize``, QGIS ``SCALE``)
``null_distribution``      ``chi2`` when the detector declares chi-square scores under the background
                           (:attr:`hadcore.base.Detector.null_distribution`), absent otherwise
``higher_is_more_anomalous``  always ``true``
=========================  ==============================================================================

plus whatever a writer adds about the input (``source``, ``wavelength_range_nm``, ``reduce``...).
:func:`read_score_tags` also reads the layers the QGIS plugin wrote before this schema (``HADCORE_DETECTOR``,
``HADCORE_N_BANDS``, ``HADCORE_SCALED``, ...), so old layers still threshold with ``fpr:``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from .errors import ParameterError

__all__ = ["score_tags", "read_score_tags", "ScoreTags", "band_ranges", "check_fpr", "declares_chi2"]

#: keys of the schema the QGIS plugin wrote until 0.1.0 -> the schema's keys
_OLD_QGIS = {"HADCORE_VERSION": "hadcore_version", "HADCORE_DETECTOR": "detector", "HADCORE_PARAMS": "parameters",
             "HADCORE_N_BANDS": "bands", "HADCORE_BANDS": "band_list", "HADCORE_SCALED": "normalized"}


def band_ranges(bands: Sequence[int]) -> str:
    """1-based ranges of 0-based band indices, in their order: [0, 1, 2, 5] -> ``"1-3,6"``."""
    out, start, prev = [], None, None
    for b in list(bands) + [None]:
        if b is not None and prev is not None and b == prev + 1:
            prev = b
            continue
        if start is not None:
            out.append(f"{start + 1}" if start == prev else f"{start + 1}-{prev + 1}")
        start = prev = b
    return ",".join(out)


def declares_chi2(detector: str) -> bool:
    """Whether the registry detector ``detector`` declares chi-square scores (False for an unknown name)."""
    from .registry import get_detector_class

    try:
        return getattr(get_detector_class(detector), "null_distribution", None) == "chi2"
    except Exception:  # an unknown or unloadable detector: not declared
        return False


def score_tags(detector: str, params: Optional[Mapping[str, Any]] = None, *, n_bands: Optional[int] = None,
               bands: Optional[Sequence[int]] = None, normalized: bool = False,
               extra: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
    """The tags of a score layer (strings), in the schema of the module docstring."""
    from ._version import __version__

    tags = {
        "hadcore_version": __version__,
        "detector": detector,
        "parameters": json.dumps(dict(params or {}), sort_keys=True, default=str),
        "normalized": "true" if normalized else "false",
        "higher_is_more_anomalous": "true",
    }
    if n_bands:
        tags["bands"] = str(int(n_bands))
    if bands is not None and len(bands):
        tags["band_list"] = band_ranges(bands)
    if declares_chi2(detector):
        tags["null_distribution"] = "chi2"
    if extra:
        tags.update({str(k): str(v) for k, v in extra.items()})
    return tags


@dataclass(frozen=True)
class ScoreTags:
    """What a reader needs from a score layer's tags (None where the layer does not say)."""

    detector: Optional[str]
    n_bands: Optional[int]
    normalized: bool
    chi2: Optional[bool]  # None: not said (a layer written elsewhere); else whether the scores are chi-square
    raw: Dict[str, str]


def read_score_tags(tags: Optional[Mapping[str, Any]]) -> ScoreTags:
    """Read a score layer's tags, in this schema or in the QGIS plugin's earlier one."""
    t: Dict[str, str] = {}
    for k, v in (tags or {}).items():
        t[_OLD_QGIS.get(str(k), str(k))] = str(v)
    detector = t.get("detector") or None
    try:
        n_bands = int(t["bands"]) if t.get("bands") else None
    except ValueError:
        n_bands = None
    normalized = t.get("normalized", "").strip().lower() in ("true", "yes", "1")
    if "null_distribution" in t:
        chi2: Optional[bool] = t["null_distribution"] == "chi2"
    elif detector:
        chi2 = declares_chi2(detector)  # a layer written before the key existed: the detector's declaration
    else:
        chi2 = None
    return ScoreTags(detector=detector, n_bands=n_bands, normalized=normalized, chi2=chi2, raw=t)


def check_fpr(info: ScoreTags, n_bands: Optional[int] = None) -> int:
    """The degrees of freedom for an ``fpr:`` threshold on a layer with these tags, or ParameterError (one line).

    ``n_bands`` (given by the user) overrides the layer's band count.
    """
    if info.chi2 is False:
        raise ParameterError(f"threshold 'fpr' assumes chi-square RX scores; this layer was made by {info.detector!r}")
    if info.normalized:
        raise ParameterError("threshold 'fpr' needs raw RX scores; this layer was scaled to 0-1")
    dof = n_bands or info.n_bands
    if not dof:
        raise ParameterError("threshold 'fpr' needs the band count of the detector's input (chi-square degrees "
                             "of freedom): the layer does not say; give it (--n-bands, N_BANDS)")
    return int(dof)
