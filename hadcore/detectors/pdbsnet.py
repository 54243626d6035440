"""PDBSNet: pixel-shuffle downsampling blind-spot reconstruction network (Wang et al., IEEE TGRS 2023)."""

from __future__ import annotations

import numpy as np

from ..base import Context, Detector
from .torch_runtime import build_nets, device_param, session, torch_device
from ..errors import InputError, ParameterError
from ..params import Param

__all__ = ["PDBSNet"]


def _f32(x) -> np.ndarray:
    """float64 values rounded to float32 precision."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


class BandScaler:
    """The network's input scaling, fitted on whole-scene statistics (:class:`~hadcore.stats.Moments`) and
    applied to any block: ``(x - offset) / scale`` per band, float32, 0 at invalid pixels.

    ``zscore``: offset = band mean, scale = band standard deviation (divisor n); a band whose deviation is
    below 1e-9 of its mean's magnitude (constant up to rounding) maps to 0. ``minmax`` (the paper's code):
    one offset and one scale for all bands, the lowest and the highest value of the cube, so values lie in
    [0, 1]. The constants are rounded to float32, so that statistics differing by float rounding (merged
    block by block) give the same network input.
    """

    def __init__(self, moments, kind: str):
        B, n = moments.bands, max(int(moments.n), 1)
        if kind == "zscore":
            mean = np.asarray(moments.mean, dtype=np.float64)
            sd = np.sqrt(np.clip(np.diag(moments.scatter) / n, 0.0, None))
            flat = ~(sd > 1e-9 * np.abs(mean)) | ~(sd > 0)
            self.offset, self.scale = _f32(mean), _f32(np.where(flat, 1.0, sd))
            self.flat = flat
        else:
            lo, hi = float(np.min(moments.minimum)), float(np.max(moments.maximum))
            span = hi - lo if np.isfinite(hi - lo) and hi > lo else 1.0
            self.offset, self.scale = _f32(np.full(B, lo)), _f32(np.full(B, span))
            self.flat = np.zeros(B, dtype=bool)

    def __call__(self, block: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(h, w, B) float32 network input of a prepared block; 0 at invalid pixels and flat bands."""
        h, w, B = block.shape
        out = np.zeros((h * w, B), dtype=np.float32)
        X = block.reshape(h * w, B)
        flat_mask = mask.reshape(-1)
        step = max(1, (16 * 2**20) // (8 * max(B, 1)))
        for s in range(0, h * w, step):
            Y = (X[s:s + step] - self.offset) / self.scale
            Y[:, self.flat] = 0.0
            Y[~flat_mask[s:s + step]] = 0.0
            out[s:s + step] = Y
        return out.reshape(h, w, B)


class PDBSNet(Detector):
    r"""PDBSNet: pixel-shuffle downsampling blind-spot reconstruction network (Wang et al., TGRS 2023, Sec. III).

    Self-supervised on the scene itself, no labels. The method of the paper's Sec. III (its PD, blind-spot
    network, training and detection parts; subsection and equation numbers not checked against the paper,
    the structure checked against the authors' code):

    1. **Pixel-shuffle downsampling**. The image is split into its :math:`f^2` phase sub-images
       (pixels whose row and column are congruent to one (i, j) modulo the stride factor ``factor`` f), so
       the neighbours a pixel is reconstructed from lie f pixels apart: a target a few pixels wide no longer
       sees itself around the blind spot (PD breaks the anomaly's spatial correlation), while the
       background, spatially smooth at that scale, still does.
    2. **Blind-spot network** (the paper's Fig. 2), on every sub-image: a 1x1 convolution (bands ->
       ``width``) + ReLU; two branches, s = 2 and s = 3, each a centre-masked (2s-1) x (2s-1) convolution
       (its centre tap held at 0), ReLU, two 1x1 + ReLU, ``blocks`` residual units
       :math:`x + \mathrm{conv}_{1\times1}(\mathrm{ReLU}(\mathrm{conv}_{3\times3,\ \mathrm{dilation}\ s}(x)))`
       and a 1x1 + ReLU; the branches concatenated, then 1x1 convolutions width*2 -> width -> width/2 ->
       bands. A tap offset a of the masked convolution (|a| < s, a != 0) plus multiples of s never
       cancels, so no output pixel sees its own input pixel: the network must predict every pixel from its
       neighbours and cannot learn the identity.
    3. **Training**: every step is one Adam step (betas 0.5, 0.999, weight decay
       ``weight_decay``) on the whole training image (or all crops as one batch), L1 loss between the input
       and its reconstruction (``loss``) over valid pixels.
    4. **Score**: after the inverse PD, the mean over bands of the squared residual between the
       scaled input and its reconstruction; higher = more anomalous.

    Choices where the paper or its code is silent, or which we change (each a parameter where it matters):

    - *Scaling* (``scaling``). The paper's code scales the whole cube to [0, 1] by its global minimum and
      maximum (``minmax``), which weighs bands by their radiance, so the bright bands dominate both the L1
      loss and the score. The default ``zscore`` standardises every band (whole-scene mean and deviation):
      measured on abu-airport-1 / abu-beach-2 / sandiego-lren / pavia-100 (width 32, 3 blocks, 150 steps,
      seed 0) AUC 0.916 / 0.930 / 0.978 / 0.998 against 0.708 / 0.901 / 0.961 / 0.996 for ``minmax``.
    - *PD as a batch, not a mosaic.* The paper's code lays the f^2 sub-images side by side in one image, so
      the convolutions near a sub-image's edge read the neighbouring sub-image (pixels from elsewhere in
      the scene). Here they are separate batch elements with zero padding, which also makes the network
      exactly the same as its dilated form on the original image (every dilation times f): translation-
      equivariant, so blocks of any origin are scored alike. A scene side that is not a multiple of f is
      zero-filled and the fill masked (the paper's code needs sides divisible by f).
    - *Invalid pixels* are masked in the features before every spatial convolution (they act as the zero
      padding outside the image) and out of the loss; their values never enter.
    - *Masked convolution*: the mask multiplies the weight in the forward pass (the code resets the
      weight's centre in place before each call); same function, clean gradients.
    - *Sizes and schedule.* The paper's code trains 3000 full-image steps at learning rate 1e-4 with width
      64 and 6 residual units per branch (its model class defaults to 9): minutes on a GPU. One training
      step on a 100 x 100 x 205 scene, one CPU thread, unloaded machine: width 64 / 6 units 0.74 s, width 32 /
      6 units 0.29 s, width 32 / 3 units 0.20 s. The defaults, ``width`` 32, ``blocks`` 3, ``epochs`` 200
      at ``lr`` 1e-3 (ten times the paper's step for a fifteenth of its steps), train in about 40 s there.
      3 units rather than 6: in our trials (width 32, seed 0) the 6-unit network overfits abu-urban-1 (AUC
      0.984 after 100 steps, 0.960 after 200; global RX 0.991) where 3 units keep 0.986; 6 units do better
      on abu-beach-1 (0.986 against 0.968) and abu-airport-2 (0.960 against 0.948), at twice the cost. The
      protocol prefers never falling far below RX. A receptive radius of 33 pixels (3 units, f = 3) still
      spans a third of a 100-pixel scene.
    - *Stride factor* ``factor`` = 3, the paper's code default for training and testing.
    - *Threads* (``threads``, default 1, set with ``torch.set_num_threads`` while the detector runs and
      restored afterwards). The network's small convolutions gained nothing from a second thread on a
      100 x 100 scene (0.18-0.35 s per step with 2 threads against 0.20-0.29 s with 1), and on cores shared
      with other jobs 2 threads were up to 7 times slower than 1. Raise it on a dedicated many-core machine
      for large scenes (the scores then differ in the last digits).

    Determinism: torch's global RNG is forked and seeded from ``seed``, deterministic algorithms are on and
    the thread count is fixed while the detector runs: same input, seed and ``threads`` give bitwise-identical
    scores on CPU. The GPU (``device`` auto / cuda) is used when present; its results may differ in the last
    digits.

    **Scaling:** fitted on a bounded sample, then scored block by block with a halo (not exact under tiling
    of the fit, but fit time and memory are bounded whatever the scene size). The input scaling comes from
    the whole-scene statistics pass (:class:`~hadcore.stats.Moments`; its constants rounded to float32).
    The network is trained on ``crops`` square crops of ``crop_size`` pixels drawn with ``seed`` (all crops one
    batch per step); a scene of at most ``crops * crop_size**2`` pixels (every shared scene) is one crop,
    the whole scene, and gets the paper's whole-image training. The trained network is fully convolutional
    and, thanks to the batch PD, translation-equivariant: each block is scored with a halo equal to its
    receptive field, :meth:`receptive_radius` = ``factor`` x (2 + 3 ``blocks``) pixels (the s = 3 branch:
    its 5 x 5 masked convolution and ``blocks`` 3 x 3 convolutions dilated by 3, all in PD units of
    ``factor`` pixels), so block seams do not show: a fitted model scores any block as it scores the whole
    image, up to float rounding. Inside a block the network runs on tiles of ``NET_TILE`` pixels with the
    same halo, which bounds torch's memory. Crops: 4 of 96 pixels (36,864 pixels, about 3.7 times the
    training cost per step of a 100 x 100 scene): every shared scene (at most 22,500 pixels) is taken whole,
    and a crop is about three receptive radii wide, so most of its pixels are trained with their full
    context. The fit holds the training crops' activations for backpropagation (about
    4 (6 bands + (22 + 10 ``blocks``) ``width``) bytes per crop pixel: 116 MB for a 100 x 100 x 205 scene,
    430 MB for the default crops), outside the block budget.
    """

    name = "pdbsnet"
    title = "PDBSNet (pixel-shuffle downsampling blind-spot network)"
    summary = "Blind-spot network on pixel-shuffle-downsampled sub-images, trained on the scene; reconstruction error."
    reference = (
        "D. Wang, L. Zhuang, L. Gao, X. Sun, M. Huang, A. Plaza, 'PDBSNet: Pixel-Shuffle Downsampling "
        "Blind-Spot Reconstruction Network for Hyperspectral Anomaly Detection', IEEE Trans. Geosci. Remote "
        "Sens., vol. 61, 2023, Art. no. 5511914, doi:10.1109/TGRS.2023.3276175 "
        "(code: github.com/DegangWang97/IEEE_TGRS_PDBSNet)."
    )
    family = "deep"
    trains = True
    min_pixels = 3
    requires = ("torch",)
    test_params = {"epochs": 5}  # quick on a 24 x 24 x 24 crop in the contract checks
    params = (
        Param("factor", "int", 3, "Pixel-shuffle downsampling stride factor f (1 = no PD).", min=1, max=8),
        Param("width", "int", 32, "Channels of the convolution layers (paper: 64).", min=2, max=512),
        Param("blocks", "int", 3, "Dilated residual units per branch (paper code: 6).", min=1, max=32),
        Param("epochs", "int", 200, "Training steps, each over the whole training image or crops (paper: 3000).",
              min=1, max=100000),
        Param("lr", "float", 1e-3, "Adam learning rate (paper: 1e-4 for 3000 steps).", min=1e-7, max=1.0),
        Param("weight_decay", "float", 1e-5, "Adam weight decay.", min=0.0, max=1.0),
        Param("loss", "choice", "l1", "Training loss: l1 (paper code default) or l2.", choices=("l1", "l2")),
        Param("scaling", "choice", "zscore", "Input scaling: zscore per band, or minmax (paper code: whole-cube "
              "[0, 1]).", choices=("zscore", "minmax")),
        device_param(),
        Param("threads", "int", 1, "Torch CPU threads while the detector runs (restored afterwards).",
              min=1, max=256),
        Param("crops", "int", 4, "Training crops drawn from the scene (a scene of at most crops x crop_size^2 "
              "pixels is taken whole).", min=1, max=4096),
        Param("crop_size", "int", 96, "Side of a training crop in pixels.", min=16, max=4096),
        Param("seed", "int", 0, "Random seed (network initialisation, crop positions).", min=0),
    )

    #: training is most of an in-memory run
    FIT_SHARE = 0.95

    #: side of the tiles the network is applied on inside a block (bounds torch's memory; exact, with halo)
    NET_TILE = 128

    def context(self) -> Context:
        return Context(halo=self.receptive_radius(), global_stats=True, crops=self.crops,
                       crop_size=self.crop_size, seed=self.seed)

    def receptive_radius(self) -> int:
        """Pixels of context a score needs on every side: ``factor`` x (2 + 3 ``blocks``)."""
        from .pdbsnet_nets import receptive_radius

        return receptive_radius(self.factor, self.blocks)

    def _check_params(self) -> None:
        if self.crop_size < 4 * self.factor:
            raise ParameterError(f"parameter 'crop_size' must be at least 4 x factor ({4 * self.factor}), "
                                 f"got {self.crop_size}")

    # ----------------------------------------------------------------------------------------- torch
    def _torch(self):
        from . import pdbsnet_nets as _pdbsnet_nets

        return build_nets(_pdbsnet_nets.build, "pdbsnet")

    def _torch_device(self):
        ns = self._torch()
        torch = ns.torch
        return ns, torch_device(torch, self.device)

    # ----------------------------------------------------------------------------------------- fit
    def _fit(self, data, progress):
        ns, dev = self._torch_device()
        torch = ns.torch
        self.device_ = str(dev)
        self.scaler_ = BandScaler(data.moments, self.scaling)
        crops = [(X, m) for X, m in data.crops if m.any()]
        n_valid = sum(int(m.sum()) for _, m in crops)
        if n_valid < self.min_pixels:
            raise InputError(f"{self.name}: the training crops hold {n_valid} valid pixels, fewer than "
                             f"{self.min_pixels}; raise 'crops' or 'crop_size'")
        x = np.stack([self.scaler_(X, m) for X, m in crops]).transpose(0, 3, 1, 2)
        x_t = torch.from_numpy(np.ascontiguousarray(x)).to(dev)
        del x
        m_t = torch.from_numpy(np.stack([m for _, m in crops]).astype(np.float32)[:, None]).to(dev)
        bands = x_t.shape[1]
        progress.update(0.02)
        with session(torch, self.threads, self.seed, dev.type == "cuda"):
            net = ns.BlindSpotNet(bands, self.width, self.blocks, self.factor).to(dev)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, betas=(0.5, 0.999),
                                   weight_decay=self.weight_decay)
            denom = m_t.sum() * bands
            sub = progress.sub(0.02, 1.0)
            for t in range(self.epochs):
                opt.zero_grad()
                diff = net(x_t, m_t) - x_t
                err = diff.abs() if self.loss == "l1" else diff * diff
                loss = (err * m_t).sum() / denom
                loss.backward()
                opt.step()
                if t % 5 == 0 or t == self.epochs - 1:
                    sub.update((t + 1) / self.epochs)
        net.train(False)
        for prm in net.parameters():
            prm.requires_grad_(False)
        self.net_ = net
        self.train_loss_ = float(loss.detach())
        progress.update(1.0)

    # ----------------------------------------------------------------------------------------- score
    def reconstruct(self, block: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(h, w, B) float32 reconstruction of a prepared block's scaled input by the fitted network (each
        pixel predicted from its neighbours only), computed on tiles of ``NET_TILE`` pixels with the halo."""
        return self._run(block, mask, want="recon")

    def _run(self, block, mask, want="score", progress=None):
        ns = self._torch()
        torch = ns.torch
        dev = torch.device(self.device_)
        X = self.scaler_(block, mask)
        H, W, B = X.shape
        halo, T = self.receptive_radius(), self.NET_TILE
        out = np.zeros((H, W, B), dtype=np.float32) if want == "recon" else np.zeros((H, W))
        tiles = [(r, c) for r in range(0, H, T) for c in range(0, W, T)]
        with session(torch, self.threads), torch.no_grad():
            for i, (r, c) in enumerate(tiles):
                r0, r1, c0, c1 = max(r - halo, 0), min(r + T + halo, H), max(c - halo, 0), min(c + T + halo, W)
                x = torch.from_numpy(np.ascontiguousarray(X[r0:r1, c0:c1].transpose(2, 0, 1))[None]).to(dev)
                m = torch.from_numpy(np.ascontiguousarray(mask[r0:r1, c0:c1], dtype=np.float32)[None, None]).to(dev)
                y = self.net_(x, m)
                rr, cc = min(r + T, H), min(c + T, W)
                if want == "recon":
                    out[r:rr, c:cc] = y[0].to("cpu").numpy().transpose(1, 2, 0)[r - r0:rr - r0, c - c0:cc - c0]
                else:
                    s = (y - x).pow(2).mean(dim=1)[0].to("cpu").double().numpy()  # eq. 9, per pixel
                    out[r:rr, c:cc] = s[r - r0:rr - r0, c - c0:cc - c0]
                del x, m, y
                if progress is not None:
                    progress.update((i + 1) / len(tiles))
        if want != "recon":
            out[~mask] = 0.0
        return out

    def _score(self, block, mask, progress):
        out = self._run(block, mask, progress=progress)
        progress.update(1.0)
        return out

    def working_bytes(self, h, w, bands):
        # numpy: the scaled float32 input and the float64 scores of the block; torch, per pixel of one tile
        # with its halo: input, its PD copy, the reconstruction, its merged copy and the residual (5 bands),
        # and about 8 + 2 width feature maps live at once (head, two branches' units, concatenation, tail)
        t = self.NET_TILE + 2 * self.receptive_radius()
        tile_px = min(h, t) * min(w, t)
        return h * w * (4 * bands + 8 + 1) + tile_px * 4 * (5 * bands + 10 * self.width)

    def state_bytes(self, bands):
        # the network (weights only while scoring; its gradients and Adam moments during the fit) and the
        # scaling constants; the training crops' activations are the fit's, not held while scoring
        c = self.width
        n_par = 2 * bands * c + c * c * (2 * (9 + 25) + 2 * self.blocks * 10 + 8) + 4 * c + bands
        return 4 * 4 * n_par + 2 * bands * 8 + 4 * 2**20
