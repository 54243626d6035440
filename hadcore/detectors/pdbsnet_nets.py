"""Private: the torch network of PDBSNet (see :mod:`hadcore.detectors.pdbsnet` for the method and choices).

torch is imported inside :func:`build` only, so importing this module does not need torch.

The network works on the pixel-shuffle-downsampled (PD) image: an (N, C, H, W) batch becomes the
(N f^2, C, ceil(H/f), ceil(W/f)) batch of its f x f phase sub-images (:func:`pd_split`), each sub-image holding
the pixels whose row and column are congruent to one (i, j) modulo f. The blind-spot network runs on every
sub-image independently and the reconstruction is shuffled back (:func:`pd_merge`). Rows and columns added
to reach a multiple of f, and invalid pixels, carry a zero validity mask; the features are multiplied by it
before every spatial convolution, so such pixels act exactly as the zero padding outside the image. The
whole network is then the same as dilated convolutions with every dilation multiplied by f on the original
image: translation-equivariant, whatever the phase of the block it is applied to.
"""

from __future__ import annotations

__all__ = ["build", "receptive_radius"]

_NAMES = ("BlindSpotNet", "Branch", "CentreMaskedConv")
_CACHE = {}

#: the two branches' scales: branch s has a centre-masked (2 s - 1) x (2 s - 1) convolution and
#: 3 x 3 convolutions dilated by s (in PD units), so its receptive field never holds the centre pixel
SCALES = (2, 3)


def receptive_radius(factor: int, blocks: int) -> int:
    """Chebyshev radius (original pixels) of the context one output pixel depends on: f times the
    largest branch radius (s - 1) + blocks * s."""
    return int(factor) * max((s - 1) + int(blocks) * s for s in SCALES)


def __getattr__(name):
    # the classes are module attributes once built, so fitted detectors pickle (by reference) and unpickle
    if name in _NAMES:
        return getattr(build(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build():
    """Return a namespace of the network class and the PD helpers (defined on first use, torch imported here)."""
    if "ns" in _CACHE:
        return _CACHE["ns"]
    import torch
    from torch import nn
    from torch.nn import functional as F

    def pd_split(x, f):
        """(N, C, H, W) -> (N f^2, C, ceil(H/f), ceil(W/f)): the f x f phase sub-images (zero-filled to a
        multiple of f at the bottom and right)."""
        if f == 1:
            return x
        N, C, H, W = x.shape
        Hp, Wp = -(-H // f) * f, -(-W // f) * f
        if (Hp, Wp) != (H, W):
            x = F.pad(x, (0, Wp - W, 0, Hp - H))
        x = x.reshape(N, C, Hp // f, f, Wp // f, f).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(N * f * f, C, Hp // f, Wp // f)

    def pd_merge(y, f, H, W):
        """Inverse of :func:`pd_split`: (N f^2, C, h, w) -> (N, C, H, W)."""
        if f == 1:
            return y
        M, C, h, w = y.shape
        N = M // (f * f)
        y = y.reshape(N, f, f, C, h, w).permute(0, 3, 4, 1, 5, 2).reshape(N, C, h * f, w * f)
        return y[:, :, :H, :W]

    class CentreMaskedConv(nn.Conv2d):
        """k x k convolution whose centre tap is held at zero (the blind spot)."""

        def __init__(self, channels, k):
            super().__init__(channels, channels, k, padding=k // 2)
            keep = torch.ones(1, 1, k, k)
            keep[..., k // 2, k // 2] = 0.0
            self.register_buffer("keep", keep)

        def forward(self, x):
            return F.conv2d(x, self.weight * self.keep, self.bias, padding=self.padding)

    class Branch(nn.Module):
        """Centre-masked conv (2s-1) -> ReLU -> 2 x (1x1 + ReLU) -> ``blocks`` residual units
        (x + 1x1(ReLU(3x3 dilated s (x)))) -> 1x1 + ReLU."""

        def __init__(self, channels, s, blocks):
            super().__init__()
            self.masked = CentreMaskedConv(channels, 2 * s - 1)
            self.pre = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                     nn.Conv2d(channels, channels, 1), nn.ReLU())
            self.spatial = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=s, dilation=s)
                                         for _ in range(blocks))
            self.mix = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(blocks))
            self.post = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU())

        def forward(self, h, m):
            x = self.pre(self.masked(h))
            for conv, mix in zip(self.spatial, self.mix):
                x = x + mix(F.relu(conv(x * m)))
            return self.post(x)

    class BlindSpotNet(nn.Module):
        """PD + two-branch blind-spot network + inverse PD.

        ``forward(x, m)``: x (N, B, H, W) input, m (N, 1, H, W) validity (1 valid, 0 invalid); returns the
        (N, B, H, W) reconstruction, in which no output pixel depends on the same input pixel.
        """

        def __init__(self, bands, width, blocks, factor):
            super().__init__()
            self.factor = int(factor)
            self.head = nn.Sequential(nn.Conv2d(bands, width, 1), nn.ReLU())
            self.branches = nn.ModuleList(Branch(width, s, blocks) for s in SCALES)
            half = max(width // 2, 1)
            self.tail = nn.Sequential(nn.Conv2d(len(SCALES) * width, width, 1), nn.ReLU(),
                                      nn.Conv2d(width, half, 1), nn.ReLU(), nn.Conv2d(half, bands, 1))

        def forward(self, x, m):
            H, W = x.shape[2:]
            f = self.factor
            xs, ms = pd_split(x, f), pd_split(m, f)
            h = self.head(xs) * ms
            y = self.tail(torch.cat([b(h, ms) for b in self.branches], dim=1))
            return pd_merge(y, f, H, W)

    class NS:
        pass

    ns = NS()
    ns.torch = torch
    ns.pd_split, ns.pd_merge = pd_split, pd_merge
    # module attributes, so that pickle finds the classes by their qualified names
    for cls in (BlindSpotNet, Branch, CentreMaskedConv):
        cls.__qualname__ = cls.__name__
        cls.__module__ = __name__
        globals()[cls.__name__] = cls
        setattr(ns, cls.__name__, cls)
    _CACHE["ns"] = ns
    return ns
