"""GT-HAD: gated transformer for hyperspectral anomaly detection (Lian et al., IEEE TNNLS 2024)."""

from __future__ import annotations

import numpy as np

from ..base import Context, Detector
from ..errors import InputError, ParameterError
from .torch_runtime import build_nets, device_param, session, torch_device
from ..params import Param

__all__ = ["GTHAD"]


def _f32(x) -> np.ndarray:
    """float64 values rounded to float32 precision."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def combine_errors(scores, how: str = "geo"):
    """Per-pixel errors of several networks (each >= 0) combined: ``geo`` (geometric mean; an error of
    exactly 0, at invalid pixels, stays about 0) or ``mean``; one map is returned as it is."""
    if len(scores) == 1:
        return scores[0]
    if how == "mean":
        return sum(scores) / len(scores)
    tiny = np.finfo(np.float64).tiny
    return np.exp(sum(np.log(np.maximum(S, tiny)) for S in scores) / len(scores))


class SpectralBasis:
    """The network input of GT-HAD as a fitted per-pixel map (numpy only).

    From the scene's mean, covariance and value range (the whole-scene :class:`~hadcore.stats.Moments`):
    spectra are min-max scaled by the scene's lowest and highest value over all bands (the public code's
    ``(x - min) / (max - min)``, one range for the whole cube), centred on the scene mean and projected on
    the ``components`` leading principal components. The projection is a rotation followed by a
    truncation, so Euclidean distances between scaled spectra, hence squared reconstruction errors, are
    kept up to the energy outside the kept components, :meth:`outside`, which the detector adds to the
    score. ``components = 0`` (or at least the band count) keeps every scaled band as it is: the paper's
    input, without the rotation.
    """

    def __init__(self, mean, cov, lo, hi, components: int):
        B = int(np.asarray(mean).shape[0])
        self.lo = float(lo)
        self.span = float(hi - lo) if hi > lo else 1.0
        self.mean = _f32((np.asarray(mean, dtype=np.float64) - self.lo) / self.span)
        self.full = components <= 0 or components >= B
        if self.full:
            self.V = None
            self.k = B
            return
        C = np.asarray(cov, dtype=np.float64) / self.span ** 2
        w, V = np.linalg.eigh(0.5 * (C + C.T))
        V = V[:, ::-1][:, :components]
        # deterministic signs (largest-magnitude entry of each component positive), then float32 rounding,
        # so that statistics differing by float rounding (merged block by block) give the same inputs
        sign = np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(V.shape[1])])
        V = V * np.where(sign == 0, 1.0, sign)
        self.V = _f32(V)
        self.k = int(components)

    def __call__(self, block: np.ndarray, mask: np.ndarray):
        """(Y (h, w, k) float32, outside (h, w) float64 or None) of a prepared block; 0 at invalid pixels."""
        h, w, B = block.shape
        Y = np.zeros((h * w, self.k), dtype=np.float32)
        out = None if self.full else np.zeros(h * w)
        X = block.reshape(h * w, B)
        m = mask.reshape(-1)
        step = max(1, (16 * 2**20) // (8 * max(B, 1)))
        for s in range(0, h * w, step):
            D = (X[s:s + step] - self.lo) / self.span
            if self.full:
                Z = D
            else:
                D = D - self.mean
                Z = D @ self.V
                out[s:s + step] = np.clip(np.einsum("ij,ij->i", D, D) - np.einsum("ij,ij->i", Z, Z), 0.0, None)
            Y[s:s + step] = Z
        Y[~m] = 0.0
        if out is not None:
            out[~m] = 0.0
            out = out.reshape(h, w)
        return Y.reshape(h, w, self.k), out


class GTHAD(Detector):
    r"""GT-HAD: a gated transformer, trained on the scene itself to reconstruct it; score = reconstruction
    error per pixel (Lian, Wang, Sun and Huang, IEEE TNNLS 2024; public code github.com/jeline0110/GT-HAD).

    **Method** (Sec. III). The scene is cut into overlapping blocks of 9 x 9 pixels every 3 pixels
    (``same`` padding by border replication), each block into 3 x 3 patches of 3 x 3 pixels, the tokens. The
    network (:class:`hadcore.detectors.gthad_nets.GatedTransformer`, one gated transformer block between a conv
    head and a conv tail, 3 x 3 in the paper) is trained with the MSE between each block and its
    reconstruction.
    Background and anomaly take two routes through the attention (the gated dual-branch network, GDBN):
    in the *anomaly focus branch* (AFB) a patch may not attend to itself and must be rebuilt from the other
    patches of its block, which works for background (similar content nearby) and fails for anomalies;
    in the *background focus branch* (BFB) it may attend to itself. The *content matching module* (CMM)
    routes the blocks: every ``search_every`` epochs (not after the last) the reconstructions of that
    epoch are folded into an image, re-cut into blocks, and a block goes to the BFB when the nearest block
    of the original image (Euclidean distance over all its pixels and bands) is the block itself, else to
    the AFB; all blocks start in the AFB. The score of a pixel: the squared reconstruction error summed
    over the bands, averaged over a 3 x 3 window inside each block and over the 9 blocks holding the pixel
    (the public code's ``AvgPool3d((5, 3, 3))`` + fold; its 5-band average is left out: summed over the
    bands it only reweights the first and last two bands).

    **Fixed as in the public code**: block 9, stride 3, patch 3; embedding 64, FFN ratio 2, GELU, one
    transformer block, no dropout; Adam, learning rate 1e-3 in the code (see below); the -100 self mask;
    shuffled blocks each epoch.

    **Choices** (the paper's schedule, 150 epochs of batches of 64 blocks, takes about 25 minutes on 2 CPU
    cores for a 100 x 100 x 200 scene with every band; with these choices the two networks take about
    100 s on one core, see docs/gthad.md for the measured seconds):

    - *Spectral input.* The network sees the ``components`` (32) leading principal components of the
      min-max scaled spectra (:class:`SpectralBasis`, a rotation and truncation: squared errors are
      Euclidean errors of the scaled spectra, as in the paper), and the energy of each pixel outside them
      is added to its error. The head and tail convolutions then cost c = 32 instead of 200 channels.
      ``components = 0`` gives the paper's input (every scaled band); it was also worse here (seed 0,
      paper head and pooling: abu-beach-2 0.747 against 0.840, hydice-162 0.720 against 0.977).
      Whitening the components (Mahalanobis errors) was worse too (abu-beach-2 0.869, hydice-162 0.953,
      abu-urban-2 0.981) and is not offered.
    - *Two networks, two head sides* (``heads`` "3,1"; the paper: one network with a 3 x 3 head). One
      network has the paper's 3 x 3 head, applied to each block with zero padding at its edges as the
      public code does (``head_on`` "block"), and pools its error (``pool`` "wide"); the other has a
      per-pixel (1 x 1) head and no pooling. The score is the geometric mean of their errors
      (``combine`` "geo"). Why: the two fail on different scenes. A 3 x 3 head mixes the pixels on a patch's
      border into the neighbouring patches' tokens, so in the AFB a patch partly sees itself through its
      neighbours: a leak in the mechanism meant to fail on anomalies, which costs small targets, while its
      spatial context (and the 3 x 3 pooling) helps extended ones. Measured (mean over seeds 0-2, 1 thread,
      per-pixel tail): the 3 x 3 network alone, without pooling, 0.9721 (abu-airport-1 0.946, abu-beach-2
      0.907, below RX there and on abu-urban-2); the 1 x 1 network alone (the previous default) 0.9709
      (abu-airport-1 0.905, abu-beach-2 0.947, abu-urban-2 0.973 with one seed at 0.945); three 1 x 1
      networks of different seeds 0.9759, so the gain of two head sides is not only the averaging of seeds.
      The geometric mean ranks pixels the same whatever each network's error scale (pooled or not), and a
      pixel scores high only where both networks fail to rebuild it; the arithmetic mean of the same two
      (``combine`` "mean") let the pooled network's blur cost abu-beach-2 (seed 0: 0.902 against 0.915).
      The selection over these candidates, leave-one-scene-out, is in docs/gthad.md. The image-level head
      (``head_on`` "image": the head once on the replicate-padded image, each block gathering its cells, 9
      times cheaper) is kept as an option: with the code's settings otherwise (every band, 3 x 3 tail, 150
      epochs, pooling), seed 0, abu-airport-1 scored 0.961 with the block head against 0.923.
    - *Per-pixel tail* (``tail_kernel`` 1; the paper: 3 x 3). A 3 x 3 tail mixes the neighbours'
      reconstructions back into a patch, the same leak: seed 0, 3 x 3 block head, abu-beach-2 0.872 (3 x 3
      tail) against 0.904 (1 x 1), abu-urban-1 0.988 against 0.992.
    - *Pooling only in the 3 x 3 network* (``pool`` "wide"; the code averages each block's error over 3 x 3
      pixels). Small targets lose contrast in the 3 x 3 average (paper head and tail, seed 0: abu-beach-2,
      60 targets of at most 7 pixels, 0.840 pooled against 0.874; hydice-162 0.977 against 0.9905), while
      the 3 x 3 network gains on the airports (seed 0: 0.953 / 0.972 pooled against 0.945 / 0.943).
    - *Large batches.* An epoch is ``ceil(N / batch)`` equal steps (N blocks; 1156 for 100 x 100, so one
      full-batch step), which CPUs run 5-10 times faster per block than batches of 64; the learning rate
      is raised to ``lr`` (3e-3) for the fewer steps, with ``epochs`` 90 and matching every
      ``search_every`` 15 epochs. More epochs overfit some scenes: 150 epochs (per-pixel head and tail)
      gave abu-beach-2 0.975 but abu-urban-2 0.895 and abu-airport-1 0.801; 30 epochs underfit (abu-beach-2
      0.757, hydice-162 0.891, paper head).
    - *The per-pixel network stops earlier* (``pixel_epochs`` 75: it trains min(``epochs``,
      ``pixel_epochs``); the 3 x 3 network trains ``epochs``). The per-pixel network has no neighbours to
      hide a target from it and, trained long, learns to rebuild the anomalies too: on abu-urban-2, seed 2,
      its AUC falls from 0.995 at 30 epochs to 0.945 at 90, while the 3 x 3 network is stable there. Chosen
      by leave-one-scene-out over snapshots of one 90-epoch run per scene and seed
      (``bench/gthad_epochs.py``, table in docs/gthad.md): stopping it at 75 is the only candidate whose
      seed mean is above global RX on all nine shared scenes (mean 0.9804 against 0.9812 at 90, which is
      below RX on abu-urban-2); the margins are small (abu-beach-2 +0.0004, abu-urban-2 +0.0008).
    - *CMM reconstructions.* As in the code, the outputs of the training steps of the search epoch.
    - *Invalid pixels* are set to the scene mean (0 after centring), carry no weight in the loss and no
      term in the matching distances, and give no error to their neighbours' pooled scores.

    Determinism: torch's global RNG is forked and seeded with ``seed`` (network initialisation), the block
    order comes from a generator seeded with ``seed``, deterministic algorithms are on while it runs: same
    input, seed and torch thread count give bitwise-identical scores on CPU.

    **Scaling:** fitted on a bounded sample, then scored block by block with a halo (not exact under
    tiling). The min-max range, the mean and the principal components come from the whole-scene statistics
    pass, so every part of the scene sees the same input space. The network is trained on ``crops`` square
    crops of ``crop_size`` pixels drawn with ``seed`` (every block of every crop once per epoch, each crop
    with its own content matching); a scene of at most ``crops * crop_size**2`` pixels (every shared scene)
    is one crop, the whole scene, and gets the paper's training on the test scene itself. Scoring: a block
    that is the whole training scene keeps the gates of its training; any other block is scored in tiles
    of ``NET_TILE`` pixels with ``halo`` pixels of context on every side: the trained network reconstructs
    the tile's blocks in the AFB, one content matching (as at a search epoch) routes them, and the routed
    reconstruction gives the error. The matching then looks for a block's nearest neighbour within its
    tile and halo, not the whole scene: the one approximation, which is why streamed and in-memory scores
    of a large scene differ slightly. Fit time and memory are bounded by the crops whatever the scene
    size (the default 4 crops of 128 pixels cost about 6 times a 100 x 100 scene's training), and scoring
    is linear in the area.
    """

    name = "gthad"
    title = "GT-HAD (gated transformer)"
    summary = "A gated transformer trained on the scene to reconstruct its blocks; reconstruction error per pixel."
    reference = (
        "J. Lian, L. Wang, H. Sun and H. Huang, 'GT-HAD: Gated Transformer for Hyperspectral Anomaly "
        "Detection', IEEE Trans. Neural Netw. Learn. Syst., 2024 (code: github.com/jeline0110/GT-HAD)."
    )
    family = "deep"
    trains = True
    min_pixels = 16
    requires = ("torch",)
    test_params = {"epochs": 3, "embed": 16}  # quick on a 24 x 24 x 24 crop in the contract checks
    params = (
        Param("components", "int", 32, "Principal components the network sees (0: every band, as the paper).",
              min=0, max=4096),
        Param("embed", "int", 64, "Token feature width (embedding dimension, even).", min=4, max=1024),
        Param("heads", "str", "3,1", "Sides of the head convolution, one network each, their errors averaged "
              "(the paper: one network, 3)."),
        Param("head_on", "choice", "block", "Where a head convolution wider than 1 runs: on each 9 x 9 block with "
              "zero padding at its edges (the public code), or once on the padded image.",
              choices=("block", "image")),
        Param("tail_kernel", "int", 1, "Side of the tail convolution (1: per pixel; the paper: 3).",
              min=1, max=7, odd=True),
        Param("epochs", "int", 90, "Training epochs (each: every block once).", min=1, max=100000),
        Param("pixel_epochs", "int", 75, "Most training epochs of a network with a 1 x 1 head (it trains "
              "min(epochs, pixel_epochs); 0: epochs).", min=0, max=100000),
        Param("search_every", "int", 15, "Epochs between content matchings (0: never, all blocks in the AFB).",
              min=0, max=100000),
        Param("gating", "bool", True, "Content matching routes blocks to the BFB (off: all in the AFB)."),
        Param("lr", "float", 3e-3, "Adam learning rate.", min=1e-6, max=1.0),
        Param("batch", "int", 1536, "Most blocks per training step (an epoch is split in equal steps).",
              min=16, max=1000000),
        Param("pool", "choice", "wide", "Which networks average their error over 3 x 3 pixels inside each block "
              "(the code's pooling): those with a head wider than 1, all, or none.", choices=("wide", "all", "none")),
        Param("combine", "choice", "geo", "How the networks' errors are combined: geometric mean (the same "
              "ranking whatever each network's error scale) or arithmetic mean.", choices=("geo", "mean")),
        device_param(),
        Param("crops", "int", 4, "Training crops drawn from the scene (a scene of at most crops x crop_size^2 "
              "pixels is taken whole).", min=1, max=4096),
        Param("crop_size", "int", 128, "Side of a training crop in pixels.", min=16, max=4096),
        Param("halo", "int", 16, "Pixels of context around each scored tile of a scene not trained on whole.",
              min=9, max=4096),
        Param("seed", "int", 0, "Random seed (network initialisation, block order).", min=0),
    )

    #: training is most of an in-memory run
    FIT_SHARE = 0.95

    #: side of the tiles a block not trained on is scored in (content matching within the tile and its halo)
    NET_TILE = 128

    def context(self) -> Context:
        return Context(halo=self.halo, global_stats=True, crops=self.crops, crop_size=self.crop_size,
                       seed=self.seed)

    def _check_params(self) -> None:
        if self.embed % 2:
            raise ParameterError(f"parameter 'embed': expected an even number, got {self.embed}")
        self.head_sides()

    def _pools(self, net) -> bool:
        return self.pool == "all" or (self.pool == "wide" and net.hk > 1)

    def _combine(self, scores):
        """The networks' per-pixel errors (each >= 0) combined by :attr:`combine`."""
        return combine_errors(scores, self.combine)

    def net_epochs(self, side: int) -> int:
        """Training epochs of the network with head side ``side``."""
        if side == 1 and self.pixel_epochs:
            return min(self.epochs, self.pixel_epochs)
        return self.epochs

    def head_sides(self):
        """The head sides of :attr:`heads`, one network each (ParameterError when malformed)."""
        bad = ParameterError(f"parameter 'heads': expected distinct odd head sides in [1, 7] separated by "
                             f"commas, such as 3,1; got {self.heads!r}")
        try:
            sides = [int(t) for t in str(self.heads).split(",")]
        except ValueError:
            raise bad from None
        if not sides or len(set(sides)) != len(sides) or any(k < 1 or k > 7 or k % 2 == 0 for k in sides):
            raise bad
        return sides

    # ------------------------------------------------------------------ torch
    def _nets(self):
        from . import gthad_nets as _gthad_nets

        ns = build_nets(_gthad_nets.build, "gthad")
        torch = ns.torch
        return ns, torch_device(torch, self.device).type

    # ------------------------------------------------------------------ fit / score
    def _fit(self, data, progress):
        ns, dev = self._nets()
        torch = ns.torch
        mom = data.moments
        lo, hi = data.value_range()
        self.range_ = (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None
        self.moments_ = (mom.mean, mom.cov())
        self.basis_ = SpectralBasis(mom.mean, mom.cov(), *(self.range_ or (0.0, 1.0)), self.components) \
            if self.range_ is not None else None
        crops = [(X, m) for X, m in data.crops if m.any()]
        if sum(int(m.sum()) for _, m in crops) < self.min_pixels:
            raise InputError(f"{self.name}: the training crops hold fewer than {self.min_pixels} valid pixels; "
                             "raise 'crops' or 'crop_size'")
        progress.update(0.02)
        images, self.whole_ = [], None
        for X, m in crops:
            Y, outside = self._basis(X, m)(X, m)
            images.append(ns.Image(Y, m, outside, torch.device(dev)))
        sides = self.head_sides()
        nets, self.gates_ = [], []
        for i, k in enumerate(sides):
            # every network from the same seed: they differ by their head
            with session(torch, seed=self.seed, cuda=dev == "cuda"):
                net = ns.make_net(images[0].c, self.embed, k, self.tail_kernel, dev, self.head_on)
                sub = progress.sub(0.02 + 0.98 * i / len(sides), 0.02 + 0.98 * (i + 1) / len(sides))
                gates = ns.train(net, images, epochs=self.net_epochs(k), search_every=self.search_every,
                                 gating=self.gating, lr=self.lr, batch=self.batch, seed=self.seed, progress=sub)
            net.train(False)
            for prm in net.parameters():
                prm.requires_grad_(False)
            nets.append(net)
            self.gates_.append(gates[0])
        self.nets_, self.device_ = nets, dev
        if len(crops) == 1 and crops[0][0].shape[:2] == tuple(data.shape[:2]):
            # the whole scene was the training image: its blocks keep their training gates
            self.whole_ = (tuple(data.shape[:2]), images[0])
        progress.update(1.0)

    def _basis(self, block, mask):
        if self.basis_ is not None:
            return self.basis_
        vals = block[mask]  # no global range (after --reduce): the block's own
        return SpectralBasis(*self.moments_, float(vals.min()), float(vals.max()), self.components)

    def _score(self, block, mask, progress):
        ns, _ = self._nets()
        torch = ns.torch
        H, W, _ = block.shape
        dev = torch.device(self.device_)
        with session(torch):
            if self.whole_ is not None and self.whole_[0] == (H, W):
                scored = [ns.score(net, self.whole_[1], g, self._pools(net)) for net, g in zip(self.nets_, self.gates_)]
                self.bfb_blocks_ = [n for _, n in scored]
                progress.update(1.0)
                return self._combine([S for S, _ in scored])
            Y, outside = self._basis(block, mask)(block, mask)
            out = np.zeros((H, W))
            T, halo = self.NET_TILE, self.halo
            tiles = [(r, c) for r in range(0, H, T) for c in range(0, W, T)]
            bfb = [0] * len(self.nets_)
            for i, (r, c) in enumerate(tiles):
                r0, r1, c0, c1 = max(r - halo, 0), min(r + T + halo, H), max(c - halo, 0), min(c + T + halo, W)
                rr, cc = min(r + T, H), min(c + T, W)
                m = mask[r0:r1, c0:c1]
                if not m[r - r0:rr - r0, c - c0:cc - c0].any():
                    continue
                im = ns.Image(Y[r0:r1, c0:c1], m, None if outside is None else outside[r0:r1, c0:c1], dev)
                parts = []
                for j, net in enumerate(self.nets_):
                    S, n = ns.score(net, im, None, self._pools(net), match=True)
                    parts.append(S[r - r0:rr - r0, c - c0:cc - c0])
                    bfb[j] += n
                out[r:rr, c:cc] = self._combine(parts)
                progress.update((i + 1) / len(tiles))
            self.bfb_blocks_ = bfb
        out[~mask] = 0.0
        return out

    # ------------------------------------------------------------------ memory
    def working_bytes(self, h, w, bands):
        # numpy: the block's float32 network input, its outside energy and the float64 scores; torch, one
        # tile with its halo: its blocks' reconstructions and errors, the matching's queries and keys
        k = bands if self.components <= 0 else min(self.components, bands)
        t = self.NET_TILE + 2 * self.halo
        n_blocks = (min(h, t) // 3 + 3) * (min(w, t) // 3 + 3)
        return (h * w * (4 * k + 8 + 8 + 1) + n_blocks * 81 * 4 * (4 * k + 2 + 2 * self.embed)
                + 1024 * n_blocks * 4)

    def state_bytes(self, bands):
        # the statistics, the network, and the training scene's blocks when it is small enough to be one crop
        k = bands if self.components <= 0 else min(self.components, bands)
        px = self.crops * self.crop_size ** 2
        return 3 * bands * bands * 8 + 8 * 2**20 + px * 4 * (k + 2) * 2
