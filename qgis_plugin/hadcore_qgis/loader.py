"""Import the hadcore library, or explain how to install it.

Order: an installed ``hadcore`` (site-packages, ``PYTHONPATH``) first; else the copy that
``scripts/build_plugin_zip.py`` ships in the plugin's ``_vendor`` folder. If neither imports (e.g. numpy,
scipy or scikit-learn missing from QGIS's Python), the plugin still loads and shows the message.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Tuple

_VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_vendor")

INSTALL_HELP = (
    "The hadcore library cannot be imported in QGIS's Python ({why}). "
    "Install it into the Python that QGIS runs ({python}): on Linux/macOS run "
    "'python3 -m pip install --user hadcore \"scikit-learn<1.4\"' (with Debian/Ubuntu's QGIS keep numpy < 2: "
    "'python3 -m pip install --user \"numpy<2\"'); on Windows open the OSGeo4W Shell and run "
    "'python -m pip install hadcore'. Alternatively reinstall the plugin from the zip built by "
    "scripts/build_plugin_zip.py, which ships hadcore (it still needs numpy, scipy and scikit-learn). "
    "Then restart QGIS."
)

_state = {"done": False, "module": None, "error": None}


def _python_hint() -> str:
    exe = sys.executable or "python3"
    if os.path.basename(exe).lower().startswith(("qgis", "qgis_process")):
        return f"Python {sys.version.split()[0]} of {exe}"
    return exe


def load_hadcore(force: bool = False) -> Tuple[Optional[object], Optional[str]]:
    """Return ``(hadcore module, None)`` or ``(None, install message)``; cached."""
    if _state["done"] and not force:
        return _state["module"], _state["error"]
    module, error = None, None
    try:
        import hadcore as module  # noqa: F811
        if not hasattr(module, "list_detectors"):
            raise ImportError(f"'hadcore' at {getattr(module, '__file__', '?')} is not the hadcore library")
    except Exception as first:  # ImportError, or a broken numpy/scipy build
        module = None
        why = str(first)
        if os.path.isdir(_VENDOR):
            if _VENDOR not in sys.path:
                sys.path.append(_VENDOR)
            sys.modules.pop("hadcore", None)
            try:
                import hadcore as module  # noqa: F811
            except Exception as second:
                module, why = None, str(second)
        if module is None:
            error = INSTALL_HELP.format(why=why, python=_python_hint())
    _state.update(done=True, module=module, error=error)
    return module, error
