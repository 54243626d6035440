"""Private helpers shared by the torch detectors (torch itself is passed in, never imported here)."""

from __future__ import annotations

__all__ = ["build_nets", "deterministic", "device_param", "torch_device"]


class deterministic:
    """Context manager: torch deterministic algorithms on, restored afterwards."""

    def __init__(self, torch):
        self.torch = torch

    def __enter__(self):
        self.prev = self.torch.are_deterministic_algorithms_enabled()
        self.torch.use_deterministic_algorithms(True, warn_only=True)
        return self

    def __exit__(self, *exc):
        self.torch.use_deterministic_algorithms(self.prev)
        return False


def device_param():
    """The ``device`` parameter every torch detector declares (one wording in the CLI and QGIS)."""
    from .params import Param

    return Param("device", "choice", "auto", "Torch device: auto (GPU if present), cpu or cuda.",
                 choices=("auto", "cpu", "cuda"))


def torch_device(torch, choice: str):
    """The torch.device for a ``device`` parameter value; 'cuda' without a CUDA device is a one-line error."""
    from .errors import ParameterError

    cuda = torch.cuda.is_available()
    if choice == "cuda" and not cuda:
        raise ParameterError("parameter 'device': 'cuda' was asked for but torch sees no CUDA device")
    return torch.device("cuda" if choice in ("auto", "cuda") and cuda else "cpu")


def build_nets(build, who: str):
    """``build()`` of a detector's lazily built torch namespace (``hadcore._*_nets``); without torch, the
    one-line error naming the detector and how to install it."""
    from .errors import HadcoreError

    try:
        return build()
    except ImportError as exc:
        raise HadcoreError(f"{who} needs torch (pip install 'hadcore[torch]'): {exc}") from None
