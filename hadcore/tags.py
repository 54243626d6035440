"""The tags of a score layer: one schema, written by every writer (CLI, Python, QGIS) and read by every reader.

A score layer carries, in its dataset metadata (GeoTIFF tags, GDAL's default domain):

=========================  ==============================================================================
``hadcore_version``        the hadcore that wrote it
``detector``               registry name (``rx``)
``parameters``             the detector's parameters, JSON
``bands``                  band count of the detector's input (the chi-square degrees of freedom of ``fpr:``
                           on a layer without ``null_law``)
``band_list``              the input bands used, 1-based ranges (``1-100,120-180``); absent when unknown
``normalized``             ``true`` when the scores were min-max scaled to 0-1 (``--normalize``, QGIS ``SCALE``)
``null_distribution``      the family of the scores' law on a Gaussian background when the detector declares
                           one (:attr:`hadcore.base.Detector.null_distribution`: ``chi2``, ``beta``,
                           ``normal``), absent otherwise
``null_law``               that law in full (:class:`hadcore.threshold.NullLaw` text: ``chi2:224``,
                           ``beta:0.5:111.5``, ``normal:0:0.0123``) when known: what ``fpr:R`` thresholds
                           invert; from the detector's parameters and band count, or from its run
                           (:meth:`~hadcore.base.Detector.run_report`: MF's target scale needs the fit)
``higher_is_more_anomalous``  always ``true``
=========================  ==============================================================================

plus whatever a writer adds about the input (``source``, ``wavelength_range_nm``, ``reduce``...).
:func:`read_score_tags` also reads the layers the QGIS plugin wrote before this schema (``HADCORE_DETECTOR``,
``HADCORE_N_BANDS``, ``HADCORE_SCALED``, ...), so old layers still threshold with ``fpr:``; a layer with
``null_distribution=chi2`` (or of a chi-square detector) and no ``null_law`` is chi-square with its ``bands``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from .errors import ParameterError
from .threshold import NullLaw

__all__ = ["score_tags", "read_score_tags", "ScoreTags", "band_ranges", "check_fpr", "declares_chi2",
           "declares_null_law", "detector_null_law"]

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


def _declared(detector: str) -> Optional[str]:
    """The ``null_distribution`` a registry detector declares (None: none, or an unknown detector)."""
    from .registry import get_detector_class

    try:
        return getattr(get_detector_class(detector), "null_distribution", None)
    except Exception:  # an unknown or unloadable detector: not declared
        return None


def declares_chi2(detector: str) -> bool:
    """Whether the registry detector ``detector`` declares chi-square scores (False for an unknown name)."""
    return _declared(detector) == "chi2"


def declares_null_law(detector: str) -> bool:
    """Whether the registry detector ``detector`` declares a null law, so that ``fpr:`` thresholds apply to its
    scores (False for an unknown name)."""
    return _declared(detector) is not None


def detector_null_law(detector: str, params: Optional[Mapping[str, Any]] = None,
                      n_bands: Optional[int] = None) -> Optional[NullLaw]:
    """The null law of registry detector ``detector`` with ``params`` on ``n_bands`` bands, as far as these
    tell it (:meth:`hadcore.base.Detector.null_law` of an unfitted instance); None when the detector declares
    none or the law needs more (MF's target scale needs the fit; an unknown band count)."""
    if _declared(detector) is None:
        return None
    from .registry import get_detector_class

    try:
        if isinstance(params, str):
            params = json.loads(params)
        return get_detector_class(detector)(**dict(params or {})).null_law(n_bands)
    except Exception:  # not known from the parameters alone
        return None


def score_tags(detector: str, params: Optional[Mapping[str, Any]] = None, *, n_bands: Optional[int] = None,
               bands: Optional[Sequence[int]] = None, normalized: bool = False,
               extra: Optional[Mapping[str, Any]] = None, null_law=None) -> Dict[str, str]:
    """The tags of a score layer (strings), in the schema of the module docstring.

    ``null_law``: the scores' law (:class:`~hadcore.threshold.NullLaw` or its text), e.g. a fitted detector's
    :meth:`~hadcore.base.Detector.null_law`; default: what the detector's parameters and ``n_bands`` tell
    (:func:`detector_null_law`). ``extra`` may carry it too (``null_law``: a run's report), and wins.
    """
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
    declared = _declared(detector)
    if declared is not None:
        tags["null_distribution"] = declared
        law = null_law if null_law is not None else detector_null_law(detector, params, n_bands)
        if law is not None:
            tags["null_law"] = str(NullLaw.parse(law))
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
    #: the family of the scores' null law (``chi2``, ``beta``, ``normal``): the tag, or for a layer written
    #: before the tag existed the detector's declaration; None: none declared, or not said
    null_distribution: Optional[str] = None
    #: the scores' null law as the ``null_law`` tag writes it; None when the layer does not carry it
    null_law: Optional[NullLaw] = None


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
    law: Optional[NullLaw] = None
    if t.get("null_law", "").strip():
        try:
            law = NullLaw.parse(t["null_law"])
        except ParameterError:
            law = None  # unreadable: as if absent (check_fpr then says what is missing)
    if "null_distribution" in t:
        dist: Optional[str] = t["null_distribution"].strip().lower() or None
    elif law is not None:
        dist = "chi2" if law.kind == "chi2" else law.kind.replace("signed-", "")
    elif detector:
        dist = _declared(detector)  # a layer written before the key existed: the detector's declaration
    else:
        dist = None
    if dist is not None:
        chi2: Optional[bool] = dist == "chi2"
    elif detector or "null_distribution" in t:
        chi2 = False
    else:
        chi2 = None
    return ScoreTags(detector=detector, n_bands=n_bands, normalized=normalized, chi2=chi2, raw=t,
                     null_distribution=dist, null_law=law)


def check_fpr(info: ScoreTags, n_bands: Optional[int] = None) -> NullLaw:
    """The null law an ``fpr:`` threshold inverts on a layer with these tags, or ParameterError (one line).

    The layer's ``null_law`` tag when it has one; else chi-square with the band count for a chi-square layer
    (``null_distribution=chi2``, a chi-square detector's layer written before the tag, or a layer that says
    nothing: the RX law, as before null laws existed); else the law the detector's parameters and band count
    give (:func:`detector_null_law`). ``n_bands`` (given by the user) overrides the layer's band count in a
    chi-square law; the other laws are taken as written.
    """
    law = info.null_law
    if law is None and info.null_distribution is None and info.chi2 is False:
        raise ParameterError("threshold 'fpr' needs scores with a known null distribution; this layer was made by "
                             f"{info.detector!r}")
    if info.normalized:
        raise ParameterError("threshold 'fpr' needs raw scores; this layer was scaled to 0-1")
    if law is not None and law.kind == "chi2":
        return NullLaw.chi2(int(n_bands)) if n_bands else law
    if law is not None:
        return law
    if info.null_distribution in (None, "chi2"):
        dof = n_bands or info.n_bands
        if not dof:
            raise ParameterError("threshold 'fpr' needs the band count of the detector's input (chi-square "
                                 "degrees of freedom): the layer does not say; give it (--n-bands, N_BANDS)")
        return NullLaw.chi2(int(dof))
    law = detector_null_law(info.detector, info.raw.get("parameters"), n_bands or info.n_bands) \
        if info.detector else None
    if law is None:
        raise ParameterError(f"threshold 'fpr' needs the scores' null law ({info.null_distribution}), which this "
                             f"layer of {info.detector!r} does not record (MF on the target scale: written without "
                             "its run); rerun the detector to write it")
    return law
