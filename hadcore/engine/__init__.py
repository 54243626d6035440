"""The streaming engine: blocks, halos, passes and a memory budget (numpy only; no files here).

A detector declares what it needs of the scene in its :class:`~hadcore.base.Context`; the engine turns that
into a plan and runs it over a :class:`Source` (anything that reads windows: a numpy array, an xarray or dask
array, a GDAL raster through :mod:`hadcore.io`) into a :class:`Sink` (an array, or the score GeoTIFF written
block by block by :mod:`hadcore.io`):

1. **statistics pass** (when the context asks for ``global_stats``, a ``sample``, or ``--reduce``): every
   block is read once, without halo, into mergeable :class:`~hadcore.stats.Moments` and a bottom-k
   :class:`~hadcore.stats.PixelSample`;
2. **crops** (``crops``): a few square windows read at positions drawn with the seed;
3. **fit**: :meth:`Detector._fit` on those; then the optional **refine pass** (``refine``);
4. **score pass**: every block is read with a halo of ``Context.halo`` pixels (clipped at the image border),
   scored by :meth:`Detector._score`, and its interior written to the sink. Whole-scene detectors
   (``whole_scene``) run on scene tiles of ``Context.tile`` pixels that overlap by the halo; their scores
   are blended linearly across the overlap.

Block size is chosen from the memory budget (:func:`plan_blocks`): full-width strips when one fits (every
GDAL layout reads those efficiently), square tiles otherwise. The block functions (:func:`collect_block`,
:func:`score_window`) are plain numpy functions of a source and a window, so every executor runs the very
same code.

With ``reduce=("pca", K)`` every block is projected on the K leading principal components of the global
covariance (from the statistics pass) before any detector sees it.

The package, lowest module first (each imports only those above it):

- :mod:`~hadcore.engine.source`: :class:`Source`, :class:`ArraySource`, :class:`Sink` and the scratch buffers;
- :mod:`~hadcore.engine.plan`: the budget and the :class:`Plan` (:func:`plan_blocks`), :class:`RunInfo`;
- :mod:`~hadcore.engine.blocks`: the work on one block (:func:`collect_block`, :func:`score_window`, blending);
- :mod:`~hadcore.engine.passes`: :func:`drive`, the run of one plan, written once;
- three executors of it: :mod:`~hadcore.engine.local` (this process: :func:`run`, ``Detector.detect``),
  :mod:`~hadcore.engine.cluster` (a ``distributed`` client: :func:`run_distributed`) and
  :mod:`~hadcore.engine.lazy` (a lazy dask array);
- :mod:`~hadcore.engine.entry`: :func:`run_scene`, the one entry of the CLI, QGIS and :func:`hadcore.detect`.
"""

from .blocks import BlendAccumulator, collect_block, score_window
from .cluster import run_distributed, worker_budget_mb
from .local import LocalPasses, detect_in_memory, run
from .passes import drive
from .plan import (
    IN_MEMORY_BUDGET,
    MAX_BLOCK_BYTES,
    MAX_BLOCK_PIXELS,
    MB,
    Plan,
    RunInfo,
    _split,
    block_cost,
    blend_weights,
    check_bands,
    default_mem_limit_mb,
    fit_data,
    halo_window,
    max_block_pixels,
    parse_reduce,
    plan_blocks,
    reduce_projection,
)
from .entry import run_scene
from .source import ArraySink, ArraySource, ProjectedSource, Sink, Source, Window, release_scratch, scratch_buffer
from ..context import crop_windows, fit_data_from_cube

__all__ = [
    "Source", "ArraySource", "ProjectedSource", "Sink", "ArraySink", "Window", "Plan", "RunInfo", "plan_blocks",
    "run", "run_scene", "run_distributed", "drive", "detect_in_memory", "fit_data_from_cube", "collect_block",
    "score_window", "parse_reduce", "default_mem_limit_mb", "MB", "BlendAccumulator", "worker_budget_mb",
    "LocalPasses", "IN_MEMORY_BUDGET", "MAX_BLOCK_BYTES", "MAX_BLOCK_PIXELS", "_split", "block_cost",
    "blend_weights", "check_bands", "fit_data", "halo_window", "max_block_pixels", "reduce_projection",
    "release_scratch", "scratch_buffer", "crop_windows",
]
