"""The detector registry: name -> class, imported lazily.

Built-in detectors are listed explicitly below (``name: "module:Class"``), so that importing hadcore
imports no detector module and no optional dependency. Third-party packages add detectors through the
entry-point group ``hadcore.detectors`` (``name = "package.module:Class"``).
"""

from __future__ import annotations

import functools
import importlib
from typing import Dict, List, Tuple, Type

from .errors import ParameterError

__all__ = ["list_detectors", "get_detector", "get_detector_class", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "hadcore.detectors"

#: built-in detectors: registry name -> "module:Class" (one detector per module)
_BUILTIN: Dict[str, str] = {
    "auto": "hadcore.detectors.auto:Auto",
    "rx": "hadcore.detectors.rx:RX",
    "crd": "hadcore.detectors.crd:CRD",
    "lrasr": "hadcore.detectors.lrasr:LRASR",
    "glrt2s": "hadcore.detectors.glrt2s:GLRT2S",
    "kifd": "hadcore.detectors.kifd:KIFD",
    "lsmad": "hadcore.detectors.lsmad:LSMAD",
    "aed": "hadcore.detectors.aed:AED",
    "pta": "hadcore.detectors.pta:PTA",
    "kdad": "hadcore.detectors.kdad:KDAD",
    "lrx": "hadcore.detectors.lrx:LRX",
    "stad": "hadcore.detectors.stad:STAD",
    "gthad": "hadcore.detectors.gthad:GTHAD",
    "msrfqft": "hadcore.detectors.msrfqft:MsRFQFT",
    "pcatlrsr": "hadcore.detectors.pcatlrsr:PCATLRSR",
    "pdbsnet": "hadcore.detectors.pdbsnet:PDBSNet",
    "ensemble": "hadcore.detectors.ensemble:Ensemble",
    # target detectors (issue 26): a known spectrum, not an anomaly
    "ace": "hadcore.detectors.ace:ACE",
    "mf": "hadcore.detectors.mf:MF",
    "cemf": "hadcore.detectors.cemf:CEMF",
    "sam": "hadcore.detectors.sam:SAM",
    "osp": "hadcore.detectors.osp:OSP",
}


@functools.lru_cache(maxsize=None)
def _scan_entry_points() -> Tuple[Tuple[str, str], ...]:
    """(name, "module:Class") of the installed plugins, scanned once per process: ``hadcore list`` looks
    every name up, and each scan of the installed distributions costs milliseconds."""
    from importlib.metadata import entry_points

    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # pragma: no cover - Python < 3.10
        eps = entry_points().get(ENTRY_POINT_GROUP, [])
    return tuple((ep.name, ep.value) for ep in eps)


def _entry_points() -> Dict[str, str]:
    return {name: value for name, value in _scan_entry_points() if name not in _BUILTIN}


def _all() -> Dict[str, str]:
    table = dict(_BUILTIN)
    table.update(_entry_points())
    return table


def list_detectors() -> List[str]:
    """Names of every registered detector, sorted."""
    return sorted(_all())


def get_detector_class(name: str) -> Type:
    """The detector class registered as ``name``."""
    from .base import Detector

    table = _all()
    key = str(name).strip().lower()
    if key not in table:
        raise ParameterError(f"unknown detector {name!r}; available: {', '.join(sorted(table))}")
    module_name, _, cls_name = table[key].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ParameterError(f"detector {key!r} could not be loaded from {table[key]}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise ParameterError(f"detector {key!r}: {table[key]} is not a hadcore Detector")
    return cls


def get_detector(name: str, **params):
    """An instance of detector ``name`` with ``params`` validated against its declaration."""
    return get_detector_class(name)(**params)
