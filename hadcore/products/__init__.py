"""Sensor-product readers: EMIT, EnMAP, PRISMA, AVIRIS-NG / AVIRIS-3, DESIS, HyTES.

:func:`open_product` recognises a file by content and returns a :class:`~hadcore.products.base.Product`, or
None for a file no reader claims (a plain raster: :mod:`hadcore.io` reads it through GDAL). Each reader is
one module exposing ``READER``; they are imported only when a file is sniffed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import List, Optional

from .base import OutputGrid, Product, Reader, to_nanometres

__all__ = ["open_product", "readers", "Product", "OutputGrid", "Reader", "to_nanometres", "PRODUCT_SUFFIXES"]

#: reader modules, in sniffing order (the HDF5 families first: their signatures are unambiguous)
READER_MODULES = ("emit", "prisma", "hytes", "enmap", "envi")

#: file suffixes a user may pick for a product (QGIS's file filter; sniffing does not depend on them)
PRODUCT_SUFFIXES = (".nc", ".he5", ".h5", ".hdf5", ".hdf", ".xml", ".hdr", ".img", ".dat", ".bsq", ".bil",
                    ".bip", ".tif", ".tiff")


def readers() -> List[Reader]:
    """The readers, in sniffing order (reader modules import only numpy and the standard library at import
    time; their file libraries are imported by ``open``/``sniff`` through :func:`~.base.require`)."""
    return [importlib.import_module(f"{__name__}.{name}").READER for name in READER_MODULES]


def open_product(path) -> Optional[Product]:
    """The :class:`Product` of ``path``, or None when no reader claims the file."""
    p = Path(path)
    for r in readers():
        if r.sniff(p):
            return r.open(p)
    return None
