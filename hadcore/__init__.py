"""hadcore: hyperspectral anomaly detection, from numpy arrays to georeferenced map layers.

The algorithm core (``hadcore.base``, ``hadcore.detectors``, ``hadcore.metrics``, ...) imports only
numpy, scipy, scikit-learn and, lazily, torch. File I/O lives in ``hadcore.io`` and ``hadcore.vectorize``
(rasterio, geopandas), imported only when used.

>>> import hadcore
>>> det = hadcore.get_detector("rx")
>>> scores = det.detect(cube)          # (H, W) float32, higher = more anomalous
"""

__version__ = "0.1.0"

from .base import Context, Detector  # noqa: E402
from .errors import Cancelled, FileError, HadcoreError, InputError, OverwriteError, ParameterError  # noqa: E402
from .params import Param  # noqa: E402
from .progress import Progress  # noqa: E402
from .registry import get_detector, get_detector_class, list_detectors  # noqa: E402

__all__ = [
    "__version__",
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
