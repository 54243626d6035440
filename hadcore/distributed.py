"""The Dask backend, kept at its old path: it lives in :mod:`hadcore.engine.cluster` (one of the engine's three
executors); ``from hadcore.distributed import run_distributed`` keeps working."""

from .engine.cluster import _ClusterPasses, run_distributed, worker_budget_mb

__all__ = ["run_distributed", "worker_budget_mb", "_ClusterPasses"]
