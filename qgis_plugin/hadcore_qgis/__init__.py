"""QGIS plugin ``hadcore``: the hadcore detectors as a Processing provider.

The plugin folder is ``hadcore_qgis`` and not ``hadcore``: QGIS imports a plugin as a top-level package
named after its folder, and a plugin package called ``hadcore`` would shadow the hadcore library it
runs (``import hadcore`` would return the plugin). The plugin's display name is still ``hadcore`` and
the provider id is ``hadcore`` (algorithms ``hadcore:rx``, ...).
"""


def classFactory(iface=None):  # noqa: N802 - QGIS's name
    """QGIS entry point; ``iface`` is None when loaded headless (``qgis_process``, tests)."""
    from .plugin import HadcorePlugin

    return HadcorePlugin(iface)
