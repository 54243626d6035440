"""hadcore: hyperspectral anomaly detection, from numpy arrays to georeferenced map layers.

The algorithm core (``hadcore.base``, ``hadcore.detectors``, ``hadcore.metrics``, ...) imports only
numpy, scipy, scikit-learn and, lazily, torch. File I/O lives in ``hadcore.io`` and ``hadcore.vectorize``
(rasterio, geopandas), imported only when used.

>>> import hadcore
>>> det = hadcore.get_detector("rx")
>>> scores = det.detect(cube)          # (H, W) float32, higher = more anomalous
>>> scores = hadcore.detect("rx", "scene.tif")   # a file, numpy, xarray or dask array (hadcore.api)
>>> scores = hadcore.detect("scene.tif")         # the default detector, auto
"""

from ._version import __version__  # noqa: E402

from .base import Context, Detector  # noqa: E402
from .errors import Cancelled, FileError, HadcoreError, InputError, OverwriteError, ParameterError  # noqa: E402
from .params import Param  # noqa: E402
from .progress import Progress  # noqa: E402
from .registry import get_detector, get_detector_class, list_detectors  # noqa: E402


def detect(name, source=None, *, mask=None, client=None, mem_limit_mb=None, reduce=None, progress=None, **params):
    """Run detector ``name`` on a path, a numpy array (H, W, B), an xarray DataArray or a dask array; see
    :func:`hadcore.api.detect` (imported on first use, so ``import hadcore`` stays light). ``detect(source)``
    runs the default detector, ``auto``."""
    from .api import detect as _detect

    args = (name,) if source is None else (name, source)  # one argument: api.detect runs the default
    return _detect(*args, mask=mask, client=client, mem_limit_mb=mem_limit_mb, reduce=reduce,
                   progress=progress, **params)


__all__ = [
    "__version__",
    "detect",
    "Detector",
    "Context",
    "Param",
    "Progress",
    "get_detector",
    "get_detector_class",
    "list_detectors",
    "HadcoreError",
    "ParameterError",
    "InputError",
    "FileError",
    "OverwriteError",
    "Cancelled",
]
