"""The ``hadcore`` command line (installed as the ``hadcore_cli`` package)."""
