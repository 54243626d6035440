"""Parse a product's metadata XML, refusing documents with a DOCTYPE or ENTITY declaration.

Sensor metadata XML (EnMAP, DESIS) never declares a DTD or entities; a file that does is refused
before ElementTree sees it, so entity-expansion ("billion laughs") and external-entity tricks
cannot reach the parser. Errors are raised as ``xml.etree.ElementTree.ParseError`` (bad or refused
XML) or ``OSError`` (unreadable file), so each reader keeps wrapping them in its own ``FileError``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Union

__all__ = ["parse_xml"]

#: a DOCTYPE or ENTITY declaration; NUL bytes are removed before the search, so UTF-16 text matches too
_DECL = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class _NoDoctype(ET.TreeBuilder):
    """Tree builder that stops at a DOCTYPE (a second guard for encodings the byte search misses)."""

    def doctype(self, name, pubid, system):
        raise ET.ParseError("the XML declares a DOCTYPE, refused")


def parse_xml(path: Union[str, Path]) -> ET.Element:
    """Root element of the XML file ``path``.

    Raises ``ET.ParseError`` for malformed XML or a document with a DOCTYPE or ENTITY declaration,
    ``OSError`` when the file cannot be read.
    """
    data = Path(path).read_bytes()
    m = _DECL.search(data.replace(b"\x00", b""))
    if m:
        kind = m.group(1).decode("ascii").upper()
        raise ET.ParseError(f"the XML holds a {kind} declaration, refused (metadata XML needs none)")
    # B314 (untrusted XML) does not apply: without a DTD there is no entity expansion and no external entity
    parser = ET.XMLParser(target=_NoDoctype())  # nosec B314 # no DOCTYPE/ENTITY: refused above and by _NoDoctype
    parser.feed(data)
    return parser.close()
