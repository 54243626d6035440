"""Parameter declarations: each detector states its parameters once, as data.

The CLI (``-p key=value``) and the QGIS provider are generated from these declarations,
and :meth:`Param.coerce` is the single place where a value is parsed and checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .errors import ParameterError

__all__ = ["Param", "PARAM_TYPES"]

#: Declarable types. ``choice`` takes one of ``choices``; ``path`` is a file name (a string).
PARAM_TYPES = ("int", "float", "bool", "choice", "str", "path")

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


@dataclass(frozen=True)
class Param:
    """One declared detector parameter.

    Parameters
    ----------
    name : str
        Python identifier, used as ``-p name=value`` and as the QGIS parameter (upper-cased).
    type : str
        One of :data:`PARAM_TYPES`.
    default : object
        Default value (``None`` only when ``optional``).
    help : str
        One line of help.
    min, max : float, optional
        Inclusive bounds for ``int`` and ``float``.
    choices : sequence of str, optional
        Allowed values for ``choice``.
    odd : bool
        For ``int``: the value must be odd (window sizes).
    optional : bool
        ``None`` is allowed (e.g. "no weights file: use the shipped ones").
    """

    name: str
    type: str
    default: Any
    help: str
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Optional[Sequence[str]] = None
    odd: bool = False
    optional: bool = False

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name!r}: type must be one of {PARAM_TYPES}, got {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"parameter {self.name!r}: a choice parameter needs choices")
        if self.default is not None or not self.optional:
            # a declaration whose default does not validate is a programming error
            self.coerce(self.default)

    # ------------------------------------------------------------------ description
    def describe_range(self) -> str:
        """Human-readable statement of the allowed values."""
        if self.type == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        if self.type == "bool":
            return "true or false"
        if self.type in ("int", "float"):
            lo = "-inf" if self.min is None else _fmt(self.min)
            hi = "inf" if self.max is None else _fmt(self.max)
            kind = "odd integer" if self.odd else ("integer" if self.type == "int" else "number")
            return f"{kind} in [{lo}, {hi}]"
        return "a file path" if self.type == "path" else "text"

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) if self.choices else None,
            "odd": self.odd,
            "optional": self.optional,
            "allowed": self.describe_range(),
            "help": self.help,
        }

    # ------------------------------------------------------------------ validation
    def coerce(self, value: Any) -> Any:
        """Parse (strings from the command line too) and check ``value``; return the typed value.

        Raises
        ------
        ParameterError
            naming the parameter, the allowed values and the value received.
        """
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "") and self.optional):
            if self.optional:
                return None
            raise self._error(value, "a value is required")
        t = self.type
        if t == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int,)) and value in (0, 1):
                return bool(value)
            s = str(value).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise self._error(value)
        if t == "int":
            if isinstance(value, bool):
                raise self._error(value)
            try:
                if isinstance(value, str):
                    f = float(value.strip())
                else:
                    f = float(value)
            except (TypeError, ValueError):
                raise self._error(value) from None
            if not math.isfinite(f) or f != int(f):
                raise self._error(value)
            v = int(f)
            self._check_bounds(v, value)
            if self.odd and v % 2 == 0:
                raise self._error(value)
            return v
        if t == "float":
            if isinstance(value, bool):
                raise self._error(value)
            try:
                v = float(value.strip()) if isinstance(value, str) else float(value)
            except (TypeError, ValueError):
                raise self._error(value) from None
            if math.isnan(v):
                raise self._error(value)
            self._check_bounds(v, value)
            return v
        if t == "choice":
            s = str(value).strip()
            lowered = {str(c).lower(): c for c in self.choices}
            if s.lower() in lowered:
                return lowered[s.lower()]
            raise self._error(value)
        # str / path
        if not isinstance(value, str):
            value = str(value)
        return value

    def _check_bounds(self, v, raw):
        if (self.min is not None and v < self.min) or (self.max is not None and v > self.max):
            raise self._error(raw)

    def _error(self, value, why: str = "") -> ParameterError:
        why = f" ({why})" if why else ""
        return ParameterError(
            f"parameter {self.name!r}: expected {self.describe_range()}, got {value!r}{why}"
        )


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))
