"""Private: the torch network and training loop of GT-HAD (see :mod:`hadcore.detectors.gthad` for the
method, the choices and the references).

torch is imported inside :func:`build` only, so importing this module does not need torch.

Geometry (the paper's, fixed): the image is cut into overlapping *blocks* of 9 x 9 pixels every 3 pixels
(``same`` padding by border replication, as the public code does); a block is 3 x 3 *patches* (the
transformer's tokens) of 3 x 3 pixels. Because the block stride equals the patch side, every token of
every block is one *cell* of a fixed 3 x 3 grid over the padded image: the head convolution, the first
layer normalisation and the query projection are per-pixel maps of the image, computed once per step on
the image (not once per block, which would repeat each pixel 9 times), and each block gathers its 9 cells.
"""

from __future__ import annotations

__all__ = ["build", "BLOCK", "STRIDE", "PATCH"]

#: block side, block stride and patch side in pixels (paper Sec. III-A; public code: patch 3, stride 3)
BLOCK, STRIDE, PATCH = 9, 3, 3
#: the value added to the logit of a token attending to itself in the anomaly focus branch (public code)
SELF_MASK = -100.0

_NAMES = ("GatedTransformer",)
_CACHE = {}


def __getattr__(name):
    if name in _NAMES:
        return getattr(build(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def block_geometry(H: int, W: int):
    """``(pads, n_rows, n_cols)`` of the block grid of an H x W image: ``pads`` = (left, right, top,
    bottom) replicate padding so that ceil(H / 3) x ceil(W / 3) blocks of 9 x 9 every 3 pixels cover it
    (TensorFlow-style ``same`` padding, as the public code's ``same_padding``)."""
    oh, ow = -(-H // STRIDE), -(-W // STRIDE)
    ph = (oh - 1) * STRIDE + BLOCK - H
    pw = (ow - 1) * STRIDE + BLOCK - W
    return (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), oh, ow


def build():
    """Return a namespace with the network class and the training function (torch imported here)."""
    if "ns" in _CACHE:
        return _CACHE["ns"]
    import numpy as np
    import torch
    from torch import nn
    import torch.nn.functional as F

    class GatedTransformer(nn.Module):
        """GT-HAD's network (Sec. III-B; public code ``net.py``).

        conv 3x3 head (c -> e) -> LayerNorm -> gated attention among the 9 patches of a block -> FFN with
        residual (LayerNorm, Linear e -> 2e, GELU, Linear 2e -> e) -> conv 3x3 tail (e -> c) per block.

        Gated attention (the GDBN: gated dual-branch network): the query and key of a patch are the same
        linear projection (e -> e/2) of its 9 pixels' features, flattened; the value is the patch's
        features themselves; logits scaled by (9 e/2)^-1/2. In the *anomaly focus branch* (AFB) a patch may
        not attend to itself (its logit gets :data:`SELF_MASK`), so it must be rebuilt from the other
        patches of its block; in the *background focus branch* (BFB) it may. ``gate`` (one value per block,
        1 = BFB) comes from the content matching in :func:`train`.
        """

        def __init__(self, c: int, embed: int = 64, mlp_ratio: float = 2.0, head_kernel: int = 3, tail_kernel: int = 3,
                     head_on: str = "image"):
            super().__init__()
            if head_on not in ("image", "block"):
                raise ValueError(f"head_on: expected 'image' or 'block', got {head_on!r}")
            self.e = int(embed)
            self.hk = int(head_kernel)
            self.head_on = head_on
            # a 1 x 1 head is the same map on blocks as on the image: only a wider one runs per block
            self.per_block = head_on == "block" and self.hk > 1
            # 'image': applied to the replicate-padded image (no zero border); 'block': to each 9 x 9 block
            # with zero padding at the block's edges (the public code)
            self.head = nn.Conv2d(c, self.e, self.hk, padding=self.hk // 2 if head_on == "block" else 0)
            self.norm1 = nn.LayerNorm(self.e)
            self.fc = nn.Linear(self.e, self.e // 2)
            self.norm2 = nn.LayerNorm(self.e)
            hidden = int(self.e * mlp_ratio)
            self.fc1 = nn.Linear(self.e, hidden)
            self.fc2 = nn.Linear(hidden, self.e)
            self.tail = nn.Conv2d(self.e, c, int(tail_kernel), padding=int(tail_kernel) // 2)
            self.scale = (self.e // 2 * PATCH * PATCH) ** -0.5

        def cells(self, img):
            """Token features of every cell of the padded image ``img`` (1, c, Hp, Wp): values
            (cells, 9 e) and queries (cells, 9 e / 2), cells in row-major order, pixels row-major inside."""
            r = self.hk // 2
            h = self.head(F.pad(img, (r, r, r, r), mode="replicate") if r else img)[0].permute(1, 2, 0)
            h = self.norm1(h)
            q = self.fc(h)
            Hp, Wp = h.shape[:2]
            gr, gc = Hp // PATCH, Wp // PATCH

            def tok(t):
                return t.reshape(gr, PATCH, gc, PATCH, -1).permute(0, 2, 1, 3, 4).reshape(gr * gc, -1)

            return tok(h), tok(q)

        def block_tokens(self, x):
            """Token values (n, 9 patches, 9 e) and queries (n, 9, 9 e / 2) of the blocks ``x`` (n, c, 9, 9),
            the head applied to each block on its own (zero padding at its edges)."""
            n = x.shape[0]
            h = self.norm1(self.head(x).permute(0, 2, 3, 1))
            q = self.fc(h)

            def tok(t):
                return t.reshape(n, 3, PATCH, 3, PATCH, -1).permute(0, 1, 3, 2, 4, 5).reshape(n, 9, -1)

            return tok(h), tok(q)

        def tokens(self, im, b, cells=None, x=None):
            """(values, queries) of the blocks ``b`` of the :class:`Image` ``im``; ``cells``: the image's
            :meth:`cells` when already computed (head on the image only); ``x``: the blocks' input
            ``im.targets(b)[0]`` when already gathered (head per block only)."""
            if self.per_block:
                return self.block_tokens(im.targets(b)[0] if x is None else x)
            V, Q = cells if cells is not None else self.cells(im.img)
            idx = im.cell_idx[b]
            return V[idx], Q[idx]

        def attend(self, Vb, Qb, gate):
            """The gated attention of n blocks of tokens ``Vb`` (n, 9, 9 e), ``Qb`` (n, 9, 9 e / 2)."""
            n = Vb.shape[0]
            logits = (Qb @ Qb.transpose(1, 2)) * self.scale
            eye = torch.eye(PATCH * PATCH, device=logits.device, dtype=logits.dtype)
            logits = logits + SELF_MASK * eye * (1.0 - gate).view(n, 1, 1)
            return logits.softmax(-1) @ Vb

        def blocks(self, Vb, Qb, gate):
            """Reconstruction (n, c, 9, 9) of n blocks of tokens (see :meth:`attend`)."""
            n = Vb.shape[0]
            o = self.attend(Vb, Qb, gate)
            o = o.view(n, 3, 3, PATCH, PATCH, self.e).permute(0, 1, 3, 2, 4, 5).reshape(n, BLOCK, BLOCK, self.e)
            o = o + self.fc2(F.gelu(self.fc1(self.norm2(o))))
            return self.tail(o.permute(0, 3, 1, 2))

    class Image:
        """One image's tensors and block geometry: the replicate-padded input, the cells and pixels of every
        block (flat indices into the padded image), validity, the extra per-pixel error."""

        def __init__(self, Y, valid, extra, dev):
            H, W, c = Y.shape
            self.H, self.W, self.c, self.dev = H, W, c, dev
            self.pads, oh, ow = block_geometry(H, W)
            img = torch.from_numpy(np.ascontiguousarray(Y.transpose(2, 0, 1)[None], dtype=np.float32)).to(dev)
            img = F.pad(img, self.pads, mode="replicate")
            v = torch.from_numpy(np.ascontiguousarray(valid, dtype=np.float32))[None, None].to(dev)
            v = F.pad(v, self.pads, mode="replicate")
            self.img = img * v  # replicated invalid pixels stay 0
            self.Hp, self.Wp = self.img.shape[2:]
            gc = self.Wp // PATCH
            bi, bj = torch.meshgrid(torch.arange(oh), torch.arange(ow), indexing="ij")
            base = (bi * gc + bj).reshape(-1)
            off = torch.tensor([di * gc + dj for di in range(3) for dj in range(3)])
            self.cell_idx = (base[:, None] + off[None]).to(dev)
            pr, pc = torch.meshgrid(torch.arange(BLOCK), torch.arange(BLOCK), indexing="ij")
            pix_off = (pr * self.Wp + pc).reshape(-1)
            self.pix_idx = ((bi * STRIDE * self.Wp + bj * STRIDE).reshape(-1)[:, None] + pix_off[None]).to(dev)
            self.N = self.pix_idx.shape[0]
            self.flat = self.img.reshape(c, -1)
            self.vflat = v.reshape(-1)
            self.ex_flat = None
            if extra is not None:
                ex = torch.from_numpy(np.ascontiguousarray(extra, dtype=np.float32))[None, None].to(dev)
                self.ex_flat = F.pad(ex, self.pads, mode="replicate").reshape(-1)
            self._q = None

        def targets(self, b):  # (n, c, 9, 9) blocks of the padded image and their validity (n, 1, 9, 9)
            ix = self.pix_idx[b]
            t = self.flat[:, ix].permute(1, 0, 2).reshape(-1, self.c, BLOCK, BLOCK)
            return t, self.vflat[ix].reshape(-1, 1, BLOCK, BLOCK)

        def fold_avg(self, blocks_):  # (N, k, 9, 9) -> (1, k, Hp, Wp), the overlapping blocks averaged
            k, dev = blocks_.shape[1], self.dev
            out = torch.zeros(k, self.Hp * self.Wp, device=dev, dtype=blocks_.dtype)
            out.index_add_(1, self.pix_idx.reshape(-1), blocks_.permute(1, 0, 2, 3).reshape(k, -1))
            cnt = torch.zeros(self.Hp * self.Wp, device=dev, dtype=blocks_.dtype)
            cnt.index_add_(0, self.pix_idx.reshape(-1),
                           torch.ones(self.N * BLOCK * BLOCK, device=dev, dtype=blocks_.dtype))
            return (out / cnt.clamp_min(1.0)).reshape(1, k, self.Hp, self.Wp)

        def cmm(self, outs):
            """Content matching: 1 for the blocks whose reconstruction's nearest original block is
            themselves (BFB), else 0 (AFB); distances over the valid pixels of all bands."""
            N, pix_idx, vflat = self.N, self.pix_idx, self.vflat
            if self._q is None:
                q_all = (self.flat[:, pix_idx] * vflat[pix_idx][None]).permute(1, 0, 2).reshape(N, -1)
                self._q = (q_all, (q_all * q_all).sum(1))
            q_all, q_sq = self._q
            rec = self.fold_avg(outs)[0].reshape(self.c, -1)
            keys = (rec[:, pix_idx] * vflat[pix_idx][None]).permute(1, 0, 2).reshape(N, -1)
            nearest = torch.empty(N, dtype=torch.long, device=self.dev)
            for s in range(0, N, 1024):
                k = keys[s:s + 1024]
                d = (k * k).sum(1, keepdim=True) + q_sq[None] - 2.0 * (k @ q_all.T)
                nearest[s:s + 1024] = d.argmin(1)
            return (nearest == torch.arange(N, device=self.dev)).to(torch.float32)

    def train(net, images, *, epochs, search_every, gating, lr, batch, seed, progress, on_epoch=None):
        """Train ``net`` on ``images`` (:class:`Image`; every block of every image once per epoch, each step
        within one image) and return each image's gate (1 = BFB) after the last content matching.
        ``on_epoch(ep, gates)``, when given, is called after each epoch (it must leave ``net`` in training
        mode and draw no random numbers)."""
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(int(seed))
        gates = [torch.zeros(im.N, device=im.dev) for im in images]
        for ep in range(1, int(epochs) + 1):
            search = gating and search_every > 0 and ep % search_every == 0 and ep != epochs
            for i, im in enumerate(images):
                N = im.N
                n_steps = max(1, -(-N // int(batch)))
                step_size = -(-N // n_steps)
                outs = torch.empty(N, im.c, BLOCK, BLOCK, device=im.dev) if search else None
                perm = torch.randperm(N, generator=gen).to(im.dev)
                for s in range(0, N, step_size):
                    b = perm[s:s + step_size]
                    tgt, tv = im.targets(b)
                    out = net.blocks(*net.tokens(im, b, x=tgt), gates[i][b])
                    loss = (((out - tgt) ** 2) * tv).sum() / (tv.sum() * im.c).clamp_min(1.0)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if search:
                        outs[b] = out.detach()
                if search:
                    gates[i] = im.cmm(outs)
            if on_epoch is not None:
                on_epoch(ep, gates)
            progress.update(ep / (epochs + 1))
        return gates

    def _image_cells(net, im):  # the cells once per image when the head runs on the image
        return None if net.per_block else net.cells(im.img)

    def reconstruct_all(net, im, gate):
        """The trained network's reconstruction (N, c, 9, 9) of every block of ``im``."""
        cells = _image_cells(net, im)
        outs = torch.empty(im.N, im.c, BLOCK, BLOCK, device=im.dev)
        for s in range(0, im.N, 1024):
            b = torch.arange(s, min(s + 1024, im.N), device=im.dev)
            outs[s:s + 1024] = net.blocks(*net.tokens(im, b, cells), gate[b])
        return outs

    def score(net, im, gate, pool, match=False):
        """Per-pixel score (H, W) float64 of ``im`` under ``gate``; ``match``: the gate is first computed
        by content matching of the AFB reconstruction (as at a search epoch; for images not trained on)."""
        net.train(False)
        with torch.no_grad():
            if match:
                gate = im.cmm(reconstruct_all(net, im, torch.zeros(im.N, device=im.dev)))
            cells = _image_cells(net, im)
            res = torch.empty(im.N, 1, BLOCK, BLOCK, device=im.dev)
            for s in range(0, im.N, 1024):
                b = torch.arange(s, min(s + 1024, im.N), device=im.dev)
                tgt, tv = im.targets(b)
                r = ((tgt - net.blocks(*net.tokens(im, b, cells, tgt), gate[b])) ** 2).sum(1, keepdim=True)
                if im.ex_flat is not None:
                    r = r + im.ex_flat[im.pix_idx[b]].reshape(-1, 1, BLOCK, BLOCK)
                r = r * tv
                res[s:s + 1024] = F.avg_pool2d(r, 3, 1, 1) if pool else r
            p = im.pads
            S = im.fold_avg(res)[0, 0, p[2]:p[2] + im.H, p[0]:p[0] + im.W]
        return S.to("cpu").double().numpy(), int(gate.sum().item())

    def make_net(c, embed, head_kernel, tail_kernel, device, head_on="image"):
        return GatedTransformer(c, embed, head_kernel=head_kernel, tail_kernel=tail_kernel,
                                head_on=head_on).to(torch.device(device))

    class NS:
        pass

    ns = NS()
    ns.torch = torch
    ns.GatedTransformer = GatedTransformer
    GatedTransformer.__qualname__ = GatedTransformer.__name__
    GatedTransformer.__module__ = __name__
    globals()["GatedTransformer"] = GatedTransformer
    ns.Image, ns.train, ns.score, ns.make_net = Image, train, score, make_net
    _CACHE["ns"] = ns
    return ns
