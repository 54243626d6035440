"""Private: the torch networks of STAD (see :mod:`hadcore.detectors.stad` for the method and choices).

torch is imported inside :func:`build` only, so importing this module does not need torch.

Tensors are laid out as in torch: the teacher takes tokens (N, T, C) (one token per pixel of a patch, its
C-band spectrum as the embedding); the student takes images (N, C, H, W). Both return a list with one
reconstruction per stage, each of the same shape as the input.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict

import numpy as np

from ..errors import InputError

__all__ = ["build", "train_stad"]

#: the weights file's format tag and version (:func:`hadcore.detectors.stad.load_weights` checks them)
FORMAT = "hadcore.stad"
FORMAT_VERSION = 1


def band_resampling_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_in, n_out) matrix mapping a spectrum of ``n_in`` bands onto ``n_out`` bands.

    The band axis [0, n_in) is cut into ``n_out`` equal bins; output band k is the mean of the input bands
    weighted by their overlap with bin k (area-weighted resampling, each input band a unit interval).
    Rows sum to n_out/n_in, columns to 1: a constant spectrum stays constant. Works for n_in < n_out too
    (then an output band lies inside one input band or straddles two).
    """
    if n_in < 1 or n_out < 1:
        raise InputError(f"stad: band counts must be positive, got {n_in} -> {n_out}")
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    lo = np.arange(n_in, dtype=np.float64)[:, None]
    overlap = np.clip(np.minimum(lo + 1, edges[None, 1:]) - np.maximum(lo, edges[None, :-1]), 0, None)
    return overlap / overlap.sum(axis=0, keepdims=True)


def prepare_input(cube: np.ndarray, mask: np.ndarray, bands: int) -> np.ndarray:
    """The network input: (H, W, bands) float32, identical at training and at test time.

    1. Resample every spectrum to ``bands`` bands (:func:`band_resampling_matrix`).
    2. Standardise each band to zero mean and unit variance over the valid pixels of this scene.
    3. Invalid pixels are set to 0 (the scene mean) so that they carry no signal into the convolutions.
    """
    X = np.asarray(cube, dtype=np.float64)
    H, W, B = X.shape
    Y = (X.reshape(H * W, B) @ band_resampling_matrix(B, bands)).reshape(H, W, bands)
    v = Y[mask]
    mu = v.mean(axis=0)
    sd = v.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Y = (Y - mu) / sd
    Y[~mask] = 0.0
    return np.ascontiguousarray(Y, dtype=np.float32)


def _build_nets(cfg: Dict[str, Any]):
    ns = build()
    teacher = ns.Teacher(int(cfg["bands"]), int(cfg["heads"]), int(cfg["ffn"]), int(cfg["stages"]))
    student = ns.Student(int(cfg["bands"]), int(cfg["hidden"]), int(cfg["stages"]))
    return teacher, student


_CACHE = {}


def build():
    """Return a namespace of the network classes (defined on first use, torch imported here)."""
    if "ns" in _CACHE:
        return _CACHE["ns"]
    import torch
    from torch import nn

    class TeacherBlock(nn.Module):
        """One Transformer block (paper eq. 4-5): multi-head self-attention over the pixel tokens of a patch
        and a feed-forward layer, each with a residual connection and post-layer-normalisation.

        The output is a reconstruction of the spectra (same width as the input) and the next block's input.
        """

        def __init__(self, dim: int, heads: int, ffn: int):
            super().__init__()
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.norm1 = nn.LayerNorm(dim)
            self.ff = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))
            self.norm2 = nn.LayerNorm(dim)
            self.out = nn.Linear(dim, dim)

        def forward(self, x):
            a, _ = self.attn(x, x, x, need_weights=False)
            z = self.norm1(x + a)
            z = self.norm2(z + self.ff(z))
            return self.out(z)

    class Teacher(nn.Module):
        """Spectral-token Transformer: ``blocks`` blocks, each output a reconstruction (eq. 4-5)."""

        def __init__(self, bands: int, heads: int = 2, ffn: int = 1000, blocks: int = 3):
            super().__init__()
            self.blocks = nn.ModuleList([TeacherBlock(bands, heads, ffn) for _ in range(blocks)])

        def forward(self, tokens):
            outs = []
            x = tokens
            for blk in self.blocks:
                x = blk(x)
                outs.append(x)
            return outs

    class StudentStage(nn.Module):
        """Conv 3x3 -> ReLU -> transposed conv 3x3 -> ReLU -> per-pixel fully connected layer (1x1 conv).

        Stride 1 and padding 1 everywhere, so the image size is kept; receptive-field radius 2 per stage.
        """

        def __init__(self, bands: int, hidden: int):
            super().__init__()
            self.conv = nn.Conv2d(bands, hidden, 3, padding=1)
            self.deconv = nn.ConvTranspose2d(hidden, hidden, 3, padding=1)
            self.fc = nn.Conv2d(hidden, bands, 1)

        def forward(self, x):
            return self.fc(torch.relu(self.deconv(torch.relu(self.conv(x)))))

    class Student(nn.Module):
        """Convolutional student: one stage per teacher block, each stage output a reconstruction (eq. 6-7)."""

        def __init__(self, bands: int, hidden: int = 32, stages: int = 3):
            super().__init__()
            self.stages = nn.ModuleList([StudentStage(bands, hidden) for _ in range(stages)])

        #: receptive-field radius of one stage (conv 3x3 then transposed conv 3x3)
        stage_radius = 2

        def forward(self, x):
            outs = []
            for st in self.stages:
                x = st(x)
                outs.append(x)
            return outs

    class _NS:
        pass

    ns = _NS()
    ns.Teacher = Teacher
    ns.Student = Student
    _CACHE["ns"] = ns
    return ns


# ================================================================================ training
CKPT_EVERY = 50


def _collect(cubes, min_side: int):
    """[(name, prepared float64 cube, valid mask)] from arrays or Raster-like objects; never reads gt."""
    from ..base import prepare_cube
    from ..errors import InputError

    if cubes is None or isinstance(cubes, (str, bytes)) or not hasattr(cubes, "__iter__"):
        raise InputError("stad train: expected a list of cubes (H, W, B)")
    items = []
    for i, c in enumerate(cubes):
        arr = getattr(c, "cube", c)
        mask = getattr(c, "mask", None)
        name = str(getattr(c, "path", None) or f"cube {i}")
        X, valid = prepare_cube(arr, mask, min_bands=2, min_pixels=3, who=f"stad train ({name})")
        H, W, _ = X.shape
        if H < min_side or W < min_side:
            raise InputError(f"stad train: {name} is {H} x {W} pixels, smaller than the training patch {min_side}")
        items.append((name, X, valid))
    if not items:
        raise InputError("stad train: no training cube given")
    return items


def _make_batch(rng, data, masks, weights, batch, patch):
    """(clean, corrupt, valid) arrays (N, p, p, C), (N, p, p, C), (N, p, p): crops with pseudo-anomalies."""
    C = data[0].shape[2]
    clean = np.empty((batch, patch, patch, C), dtype=np.float32)
    valid = np.empty((batch, patch, patch), dtype=np.float32)
    src = np.empty(batch, dtype=np.int64)
    for b in range(batch):
        i = int(rng.choice(len(data), p=weights))
        src[b] = i
        H, W, _ = data[i].shape
        r, c = int(rng.integers(0, H - patch + 1)), int(rng.integers(0, W - patch + 1))
        clean[b] = data[i][r:r + patch, c:c + patch]
        valid[b] = masks[i][r:r + patch, c:c + patch]
    corrupt = clean.copy()
    for b in range(batch):
        for _ in range(int(rng.integers(1, 5))):
            if rng.random() < 0.3:
                h = w = 1
            else:
                h, w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
            r, c = int(rng.integers(0, patch - h + 1)), int(rng.integers(0, patch - w + 1))
            j = int(src[b])  # donor from the patch's own scene: a real material, out of its place
            vy, vx = np.nonzero(masks[j])
            k = int(rng.integers(0, len(vy)))
            donor = data[j][vy[k], vx[k]] * rng.uniform(0.7, 1.3)
            donor = donor + rng.normal(0.0, 0.1, size=(h, w, C))
            a = rng.uniform(0.4, 1.0)
            region = corrupt[b, r:r + h, c:c + w]
            corrupt[b, r:r + h, c:c + w] = (a * donor + (1 - a) * region).astype(np.float32)
    return clean, corrupt, valid


def _fingerprint(det, items) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    h.update(f"pseudo-anomalies={PSEUDO_ANOMALIES};".encode())
    for k in TRAIN_KEYS:
        h.update(f"{k}={getattr(det, k)!r};".encode())
    for _, X, valid in items:
        h.update(repr(X.shape).encode())
        h.update(np.ascontiguousarray(X[::3, ::3]).tobytes())
        h.update(valid.tobytes())
    return h.hexdigest()


#: version of the pseudo-anomaly recipe (part of the checkpoint fingerprint and of the weights' metadata)
PSEUDO_ANOMALIES = "same-scene donor, v2"
TRAIN_KEYS = ("seed", "bands", "hidden", "teacher_steps", "student_steps", "batch", "patch", "lr", "ema", "ffn")


def train_stad(det, cubes, out, progress, resume=False):
    """Train teacher then student (see :meth:`hadcore.detectors.stad.STAD.train`)."""
    import copy
    import os
    import shlex
    import sys
    import time
    from pathlib import Path

    import torch

    from .._version import __version__
    from ..errors import FileError

    t_start = time.time()
    out = Path(out)
    if not out.parent.exists():
        raise FileError(f"stad train: output folder does not exist: {out.parent}")
    ckpt = out.with_name(out.name + ".ckpt")
    items = _collect(cubes, det.patch)
    nb = int(det.bands)
    data = [prepare_input(X, v, nb) for _, X, v in items]
    masks = [v.astype(np.float32) for _, _, v in items]
    npx = np.array([float((m.shape[0] - det.patch + 1) * (m.shape[1] - det.patch + 1)) for m in masks])
    weights = npx / npx.sum()
    fp = _fingerprint(det, items)
    cfg = {"bands": nb, "hidden": int(det.hidden), "stages": 3, "heads": 2, "ffn": int(det.ffn)}
    dev = det._device()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(det.seed))
        teacher, student = _build_nets(cfg)
    teacher.to(dev)
    student.to(dev)
    t_ema, s_ema = copy.deepcopy(teacher), copy.deepcopy(student)
    for m in (t_ema, s_ema):
        for prm in m.parameters():
            prm.requires_grad_(False)
    opt_t = torch.optim.Adam(teacher.parameters(), lr=det.lr)
    opt_s = torch.optim.Adam(student.parameters(), lr=det.lr)
    nets = {"teacher": teacher, "student": student, "teacher_ema": t_ema, "student_ema": s_ema}
    opts = {"opt_teacher": opt_t, "opt_student": opt_s}
    start, elapsed_before = 0, 0.0
    if resume and ckpt.exists():
        try:
            state = torch.load(str(ckpt), map_location="cpu", weights_only=True)
            if state.get("fingerprint") != fp:
                raise FileError(
                    f"stad train: checkpoint {ckpt} was made with other data or parameters; "
                    "delete it or run without --resume"
                )
            for k, m in nets.items():
                m.load_state_dict(state[k])
            for k, o in opts.items():
                o.load_state_dict(state[k])
            start = int(state["step"])
            elapsed_before = float(state.get("elapsed", 0.0))
        except FileError:
            raise
        except Exception as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise FileError(f"stad train: cannot resume from checkpoint {ckpt}: {why}") from None

    Tt, Ts = int(det.teacher_steps), int(det.student_steps)
    total = Tt + Ts
    p, B = int(det.patch), int(det.batch)

    def masked_mse(a, b, v):  # a, b (N, T, C); v (N, T, 1)
        return (((a - b) ** 2) * v).sum() / (v.sum() * a.shape[-1]).clamp_min(1.0)

    def ema_update(ema, model, decay):
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)

    def save_ckpt(step):
        state = {k: m.state_dict() for k, m in nets.items()}
        state.update({k: o.state_dict() for k, o in opts.items()})
        state.update({"step": step, "fingerprint": fp, "elapsed": elapsed_before + time.time() - t_start})
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        torch.save(state, str(tmp))
        os.replace(tmp, ckpt)

    loss_v = float("nan")
    for step in range(start, total):
        rng = np.random.default_rng([int(det.seed), step])
        clean, corrupt, valid = _make_batch(rng, data, masks, weights, B, p)
        xc = torch.from_numpy(corrupt.reshape(B, p * p, nb)).to(dev)
        xt = torch.from_numpy(clean.reshape(B, p * p, nb)).to(dev)
        vv = torch.from_numpy(valid.reshape(B, p * p, 1)).to(dev)
        if step < Tt:
            outs = teacher(xc)
            loss = sum(masked_mse(o, xt, vv) for o in outs)
            opt_t.zero_grad(set_to_none=True)
            loss.backward()
            opt_t.step()
            ema_update(t_ema, teacher, det.ema)
        else:
            if step == Tt:
                t_ema.train(False)
            with torch.no_grad():
                targets = t_ema(xc)
            img = xc.reshape(B, p, p, nb).permute(0, 3, 1, 2).contiguous()
            outs = student(img)
            loss = sum(
                masked_mse(o.permute(0, 2, 3, 1).reshape(B, p * p, nb), t, vv) for o, t in zip(outs, targets)
            )
            opt_s.zero_grad(set_to_none=True)
            loss.backward()
            opt_s.step()
            ema_update(s_ema, student, det.ema)
        loss_v = float(loss.detach())
        phase = "teacher" if step < Tt else "student"
        progress.update((step + 1) / total, f"{phase} loss {loss_v:.4f}")
        if (step + 1) % CKPT_EVERY == 0 or step + 1 == Tt:
            save_ckpt(step + 1)

    seconds = elapsed_before + time.time() - t_start
    meta = {
        "hadcore_version": __version__,
        "torch_version": str(torch.__version__),
        "band_mapping": f"area-weighted resampling of the band axis onto {nb} equal bins (band index, not wavelength)",
        "scaling": "per-scene per-band z-score over valid pixels, invalid pixels set to 0",
        "train_params": {k: getattr(det, k) for k in TRAIN_KEYS},
        "pseudo_anomalies": PSEUDO_ANOMALIES,
        "seed": int(det.seed),
        "data": [f"{Path(n).name} {X.shape[0]}x{X.shape[1]}x{X.shape[2]}" for n, X, _ in items],
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "train_seconds": round(seconds, 1),
        "final_loss": loss_v,
        "device": str(dev),
        "threads": int(torch.get_num_threads()),
    }
    obj = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": cfg,
        "meta": meta,
        "teacher": {k: v.detach().cpu() for k, v in t_ema.state_dict().items()},
        "student": {k: v.detach().cpu() for k, v in s_ema.state_dict().items()},
    }
    tmp = out.with_name(out.name + ".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, out)
    if ckpt.exists():
        ckpt.unlink()
    return meta
