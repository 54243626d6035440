"""Progress reporting and cancellation for long-running work.

A detector receives a :class:`Progress` and calls :meth:`Progress.update` from its loops.
``update`` reports a fraction in [0, 1] to whoever listens (a tqdm bar in the CLI, the
QGIS feedback object in the plugin) and raises :class:`~hadcore.errors.Cancelled` as soon as
the listener says to stop, so cancellation is honoured inside long detectors.
"""

from __future__ import annotations

from typing import Callable, Optional

from .errors import Cancelled

__all__ = ["Progress", "as_progress"]


class Progress:
    """Report progress and poll for cancellation.

    Parameters
    ----------
    callback : callable(fraction: float, message: str | None), optional
        Receives overall progress in [0, 1].
    is_cancelled : callable() -> bool, optional
        Polled at every update; when it returns True, :class:`Cancelled` is raised.
    """

    def __init__(
        self,
        callback: Optional[Callable[[float, Optional[str]], None]] = None,
        is_cancelled: Optional[Callable[[], bool]] = None,
        _start: float = 0.0,
        _stop: float = 1.0,
    ):
        self._callback = callback
        self._is_cancelled = is_cancelled
        self._start = _start
        self._stop = _stop

    def check(self) -> None:
        """Raise :class:`Cancelled` if the listener asked to stop."""
        if self._is_cancelled is not None and self._is_cancelled():
            raise Cancelled("cancelled by the user")

    def update(self, fraction: float, message: Optional[str] = None) -> None:
        """Report that ``fraction`` (0..1) of this (sub-)task is done, then check for cancellation."""
        if self._callback is not None:
            f = min(max(float(fraction), 0.0), 1.0)
            self._callback(self._start + f * (self._stop - self._start), message)
        self.check()

    def sub(self, start: float, stop: float) -> "Progress":
        """A progress for a sub-task that covers ``[start, stop]`` of this one."""
        span = self._stop - self._start
        return Progress(
            self._callback,
            self._is_cancelled,
            self._start + start * span,
            self._start + stop * span,
        )


def as_progress(progress) -> Progress:
    """Accept None, a Progress, or a bare callback ``f(fraction, message)``."""
    if progress is None:
        return Progress()
    if isinstance(progress, Progress):
        return progress
    if callable(progress):
        return Progress(progress)
    raise TypeError(f"progress must be None, a Progress or a callable, got {type(progress).__name__}")
