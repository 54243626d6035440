"""Errors a user can cause.

Every error that bad input, a bad parameter or a bad file can trigger derives from
:class:`HadcoreError`. The CLI turns it into one line on stderr and exit code 2; the QGIS
plugin turns it into a ``QgsProcessingException``. Anything else is a bug.
Subclasses also inherit the matching builtin so that callers catching ``ValueError`` or
``OSError`` keep working.
"""

__all__ = [
    "HadcoreError",
    "ParameterError",
    "InputError",
    "FileError",
    "OverwriteError",
    "Cancelled",
]


class HadcoreError(Exception):
    """Root of every error a user can cause."""


class ParameterError(HadcoreError, ValueError):
    """An unknown detector or parameter, or a value of the wrong type or out of range."""


class InputError(HadcoreError, ValueError):
    """Input data that cannot be processed (wrong shape, too few bands or valid pixels, ...)."""


class FileError(HadcoreError, OSError):
    """A file that is missing, unreadable or of an unknown format."""


class OverwriteError(FileError):
    """The output exists and overwriting was not asked for."""


class Cancelled(HadcoreError):
    """The caller asked the running detector to stop."""
