"""One thread budget per run, set by the engine and obeyed by every thread pool a detector starts.

A detector never decides how many cores it may use: the one who runs it does. In process that is every core this
process may run on; on a Dask worker it is the one thread the worker runs the task on (the worker's other threads
run other tasks, and a worker's thread count is what the cluster was given: ``threads_per_worker``). Without a
budget, LRX's and CRD's tile pools, PTA's DCTs and torch each took every core of the machine, so two
single-threaded workers on two cores ran up to eight threads and thrashed.

:func:`thread_budget` is what a detector asks for (its pool size, ``workers=`` of :mod:`scipy.fft`, torch's
thread count); :func:`limit_threads` is what the engine enters around a run or a task: it sets the budget for
the calling thread (a :mod:`contextvars` variable, so concurrent tasks on one worker each see their own) and
bounds BLAS/OpenMP (:mod:`threadpoolctl`) to it while the run lasts. BLAS limits are per process, not per
thread: on a worker whose tasks run concurrently, every task asks for the same bound (one thread), which is
also what Dask's nanny sets for its worker processes (``OMP_NUM_THREADS=1`` and friends).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator, Optional

__all__ = ["available_cores", "thread_budget", "limit_threads"]

_BUDGET: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("hadcore_thread_budget", default=None)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def thread_budget(cap: Optional[int] = None) -> int:
    """Threads the code running now may use: the budget the engine set (:func:`limit_threads`), else every
    available core; at most ``cap`` when given."""
    n = _BUDGET.get() or available_cores()
    return max(1, min(n, cap) if cap else n)


@contextlib.contextmanager
def limit_threads(n: Optional[int] = None) -> Iterator[int]:
    """Run the body with a budget of ``n`` threads (default: the budget already in force, else every available
    core; never more than an enclosing budget): :func:`thread_budget` returns it, and BLAS/OpenMP thread pools
    are bounded to it (restored afterwards). Yields the budget."""
    n = thread_budget(max(1, int(n)) if n else None)
    token = _BUDGET.set(n)
    try:
        with _blas_limit(n):
            yield n
    finally:
        _BUDGET.reset(token)


def _blas_limit(n: int):
    """threadpoolctl's bound on BLAS/OpenMP (a scikit-learn dependency); nothing to bound when it is absent or
    when ``n`` is every core (the libraries' own default), so the common in-process run changes nothing."""
    if n >= available_cores():
        return contextlib.nullcontext()
    try:
        import scipy.linalg  # noqa: F401  (load scipy's BLAS first, so that it is bounded too)
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(n)
