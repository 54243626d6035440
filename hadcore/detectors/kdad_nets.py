"""Private: the torch networks of KDAD (see :mod:`hadcore.detectors.kdad` for the method and choices).

torch is imported inside :func:`build` only, so importing this module does not need torch.
Every network is fully convolutional on the whole (1, C, H, W) image: a "per-pixel patch encoder that ends
in adaptive average pooling and a fully connected layer" is computed for all pixels at once as convolutions,
a k x k stride-1 average pooling (the pooling over the pixel's patch) and a 1 x 1 convolution (the FC layer).
"""

from __future__ import annotations

__all__ = ["build"]

_NAMES = ("SSFMAutoencoder", "PatchEncoder", "Decoder", "APN")
_CACHE = {}


def __getattr__(name):
    # the classes are module attributes once built, so fitted detectors pickle (by reference) and unpickle
    if name in _NAMES:
        return getattr(build(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build():
    """Return a namespace of the network classes (defined on first use, torch imported here)."""
    if "ns" in _CACHE:
        return _CACHE["ns"]
    import torch
    from torch import nn

    def _conv_stack(c_in, width, n, norm):
        layers = []
        c = c_in
        for _ in range(n):
            layers.append(nn.Conv2d(c, width, 3, padding=1, padding_mode="replicate"))
            if norm:
                # GroupNorm with one group = layer normalisation over (C, H, W): batch-size independent
                # (the whole image is one batch element), deterministic, no running statistics.
                layers.append(nn.GroupNorm(1, width))
            layers.append(nn.ReLU())
            c = width
        return nn.Sequential(*layers)

    class SSFMAutoencoder(nn.Module):
        """Dual-branch stacked convolutional autoencoder (Sec. III-A, eq. 6-7).

        Branch A encodes the PCA image, branch B the spatial information map; each encoder is 4 conv 3x3
        stride 1 + ReLU. The latent maps are concatenated (eq. 6) into the fused image; the decoder (4
        transposed conv 3x3 stride 1) reconstructs the concatenated inputs. ``dual=False`` (ablation) uses
        one encoder on the channel-concatenated inputs, with the same latent width.
        """

        def __init__(self, c_spec, c_spat, width, latent, dual=True):
            super().__init__()
            self.dual = dual
            if dual:
                self.enc_a = nn.Sequential(_conv_stack(c_spec, width, 3, False),
                                           nn.Conv2d(width, latent, 3, padding=1, padding_mode="replicate"))
                self.enc_b = nn.Sequential(_conv_stack(c_spat, width, 3, False),
                                           nn.Conv2d(width, latent, 3, padding=1, padding_mode="replicate"))
            else:
                self.enc_a = nn.Sequential(_conv_stack(c_spec + c_spat, width, 3, False),
                                           nn.Conv2d(width, 2 * latent, 3, padding=1, padding_mode="replicate"))
            c_out = c_spec + c_spat
            self.dec = nn.Sequential(
                nn.ConvTranspose2d(2 * latent, width, 3, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(width, width, 3, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(width, width, 3, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(width, c_out, 3, padding=1),
            )

        def encode(self, a, b):
            if self.dual:
                return torch.cat([self.enc_a(a), self.enc_b(b)], dim=1)  # eq. 6
            return self.enc_a(torch.cat([a, b], dim=1))

        def forward(self, a, b):
            z = self.encode(a, b)
            return z, self.dec(z)

    class PatchEncoder(nn.Module):
        """n conv 3x3 (+ normalisation) + ReLU, average pooling over the pixel's patch, FC (1x1 conv)."""

        def __init__(self, c_in, width, n_conv, out, patch, norm):
            super().__init__()
            self.body = _conv_stack(c_in, width, n_conv, norm)
            self.pool = nn.AvgPool2d(patch, stride=1, padding=patch // 2, count_include_pad=False)
            self.fc = nn.Conv2d(width, out, 1)

        def forward(self, x):
            return self.fc(self.pool(self.body(x)))

        def norm_stats(self, x):
            """(mean, variance) at the input of every normalisation layer for the batch ``x``, pooled over
            its samples (each sample normalised by its own statistics, as in training)."""
            stats = []
            h = x
            for layer in self.body:
                if isinstance(layer, nn.GroupNorm):
                    m = h.mean(dim=(1, 2, 3))
                    v = h.var(dim=(1, 2, 3), unbiased=False)
                    M = m.mean()
                    stats.append((M, (v + m * m).mean() - M * M))
                h = layer(h)
            return stats

        def forward_frozen(self, x, stats):
            """:meth:`forward` with the normalisation statistics fixed to ``stats`` (:meth:`norm_stats`):
            a per-pixel map, so the image can be cut into blocks."""
            h, i = x, 0
            for layer in self.body:
                if isinstance(layer, nn.GroupNorm):
                    M, V = stats[i]
                    i += 1
                    h = (h - M) / torch.sqrt(V + layer.eps) * layer.weight[None, :, None, None] \
                        + layer.bias[None, :, None, None]
                else:
                    h = layer(h)
            return self.fc(self.pool(h))

    class Decoder(nn.Module):
        """Shared per-pixel decoder: code (q) -> reconstructed fused-image vector (two FC layers)."""

        def __init__(self, q, width, c_out):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(q, width, 1), nn.ReLU(), nn.Conv2d(width, c_out, 1))

        def forward(self, z):
            return self.net(z)

    class APN(nn.Module):
        """Adaptive parameter network (eq. 18-21).

        Input: the image-mean of the mapped teacher code and of the student code, concatenated (p -> q
        mapped teacher features, so both halves live in the same space). Output: r_diff in [0.1, 0.9].
        """

        def __init__(self, q, hidden=16):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2 * q, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def forward(self, t_feat, s_feat):
            v = torch.cat([t_feat.mean(dim=(2, 3)), s_feat.mean(dim=(2, 3))], dim=1)
            return 0.1 + 0.8 * torch.sigmoid(self.net(v)).squeeze()

    class NS:
        pass

    ns = NS()
    ns.torch = torch
    for cls in (SSFMAutoencoder, PatchEncoder, Decoder, APN):
        cls.__qualname__ = cls.__name__
        cls.__module__ = __name__
        globals()[cls.__name__] = cls
        setattr(ns, cls.__name__, cls)
    _CACHE["ns"] = ns
    return ns
