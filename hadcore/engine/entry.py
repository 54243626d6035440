"""The one entry that runs a detector over a scene: in this process or on a Dask client, swath re-gridding
included. The CLI, the QGIS algorithms and :func:`hadcore.detect` call it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .cluster import run_distributed
from .local import run
from .plan import RunInfo
from .source import ArraySink, Sink, Source

if TYPE_CHECKING:  # annotations only: the engine runs any object with the detector contract
    from ..base import Detector

__all__ = ["run_scene"]


def run_scene(det: Detector, source: Source, sink: Sink, *, output=None, mem_limit_mb: Optional[float] = None,
              progress=None, reduce=None, client=None, threads: Optional[int] = None, observer=None) -> RunInfo:
    """Run ``det`` over a scene's ``source`` into ``sink``: the one entry the CLI, the QGIS algorithms and
    :func:`hadcore.detect` call. Returns the run's :class:`RunInfo`.

    ``client``: a ``distributed.Client`` runs the same plan on Dask (:func:`hadcore.engine.cluster.run_distributed`),
    else in this process (:func:`run`). ``output``: a swath product's map grid (``Scene.output``, with
    ``height`` and ``remap(swath, r0, r1)``): the swath is scored into memory (one band, small) and ``sink``
    receives the map grid, 256 rows at a time; ``sink`` then has the grid's shape, not the source's.
    ``threads``: the thread budget of an in-process run (default: every core; :mod:`hadcore.threads`); on Dask
    every task has one thread, the worker's own. ``observer``: sees every scored block of an in-process run with
    the raw block it came from (:class:`hadcore.spectra.SpectraCollector`: the spectra of detections); on Dask
    it is told it saw nothing (``observer.complete = False``).
    """
    target = ArraySink(*source.shape[:2]) if output is not None else sink
    report = getattr(det, "run_report", None)
    if report is not None:
        report(clear=True)
    if client is not None:
        _, info = run_distributed(det, source, target, client=client, mem_limit_mb=mem_limit_mb, progress=progress,
                                  reduce=reduce)
        if observer is not None:
            observer.complete = False
    else:
        _, info = run(det, source, target, mem_limit_mb=mem_limit_mb, progress=progress, reduce=reduce,
                      threads=threads, observer=observer)
    if report is not None:
        info.detector_tags = dict(report())
    if output is not None:
        for r0 in range(0, output.height, 256):
            sink.write(r0, 0, output.remap(target.array, r0, min(r0 + 256, output.height)))
    return info


