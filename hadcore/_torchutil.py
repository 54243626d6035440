"""Private helpers shared by the torch detectors (torch itself is passed in, never imported here)."""

from __future__ import annotations

__all__ = ["deterministic"]


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
