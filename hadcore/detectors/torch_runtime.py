"""The one torch runtime of the deep detectors: device, threads, seed and determinism (torch itself is passed in,
never imported here)."""

from __future__ import annotations

from ..threads import thread_budget

__all__ = ["build_nets", "deterministic", "device_param", "session", "torch_device"]


class deterministic:
    """Context manager: torch deterministic algorithms on, restored afterwards."""

    def __init__(self, torch):
        self.torch = torch

    def __enter__(self):
        self.prev = self.torch.are_deterministic_algorithms_enabled()
        self.prev_warn = self.torch.is_deterministic_algorithms_warn_only_enabled()
        self.torch.use_deterministic_algorithms(True, warn_only=True)
        return self

    def __exit__(self, *exc):
        self.torch.use_deterministic_algorithms(self.prev, warn_only=self.prev_warn)
        return False


class session:
    """Context manager for a torch detector's calls: torch's CPU threads bounded by ``threads`` and by the
    engine's thread budget (:func:`hadcore.threads.thread_budget`: every core in process, one on a Dask worker),
    deterministic algorithms, and (``seed`` given) torch's global RNG forked and seeded, the CUDA one too on a
    GPU; all restored afterwards. ``threads`` None: the budget itself."""

    def __init__(self, torch, threads=None, seed=None, cuda: bool = False):
        self.torch, self.threads, self.seed, self.cuda = torch, threads, seed, cuda

    def __enter__(self):
        t = self.torch
        self.prev_threads = t.get_num_threads()
        t.set_num_threads(thread_budget(None if self.threads is None else max(1, int(self.threads))))
        self.det = deterministic(t).__enter__()
        self.prev_bench = t.backends.cudnn.benchmark
        t.backends.cudnn.benchmark = False
        self.rng = None
        if self.seed is not None:
            self.rng = t.random.fork_rng(devices=[0] if self.cuda else [])
            self.rng.__enter__()
            t.manual_seed(int(self.seed))
            if self.cuda:
                t.cuda.manual_seed_all(int(self.seed))
        return self

    def __exit__(self, *exc):
        t = self.torch
        if self.rng is not None:
            self.rng.__exit__(*exc)
        t.backends.cudnn.benchmark = self.prev_bench
        self.det.__exit__(*exc)
        t.set_num_threads(self.prev_threads)
        return False


def device_param():
    """The ``device`` parameter every torch detector declares (one wording in the CLI and QGIS)."""
    from ..params import Param

    return Param("device", "choice", "auto", "Torch device: auto (GPU if present), cpu or cuda.",
                 choices=("auto", "cpu", "cuda"))


def torch_device(torch, choice: str):
    """The torch.device for a ``device`` parameter value; 'cuda' without a CUDA device is a one-line error."""
    from ..errors import ParameterError

    cuda = torch.cuda.is_available()
    if choice == "cuda" and not cuda:
        raise ParameterError("parameter 'device': 'cuda' was asked for but torch sees no CUDA device")
    return torch.device("cuda" if choice in ("auto", "cuda") and cuda else "cpu")


def build_nets(build, who: str):
    """``build()`` of a detector's lazily built torch namespace (``hadcore._*_nets``); without torch, the
    one-line error naming the detector and how to install it."""
    from ..errors import HadcoreError

    try:
        return build()
    except ImportError as exc:
        raise HadcoreError(f"{who} needs torch (pip install 'hadcore[torch]'): {exc}") from None
