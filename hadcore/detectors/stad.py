"""STAD: the small-target-aware detector (teacher Transformer, distilled convolutional student, STF mask)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from ..base import Context, Detector
from ..errors import FileError, ParameterError
from .torch_runtime import device_param, session, torch_device
from ..linalg import inv_psd, mahalanobis_sq, mean_cov
from ..params import Param
from ..progress import as_progress
from .stad_nets import FORMAT, FORMAT_VERSION, _build_nets, band_resampling_matrix
from .stad_nets import prepare_input  # noqa: F401  (the network input, read here by bench/ and tests)

__all__ = ["STAD"]

#: file name of the default weights (trained on ../shared/data only, see docs/stad.md)
WEIGHTS_NAME = "stad_default.pt"
#: the package's weights folder: holds the default weights in an installed hadcore; empty in the copy the QGIS
#: plugin ZIP vendors (the plugin repository accepts no binary file), see :func:`default_weights`
PACKAGE_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: the weights shipped in the package
DEFAULT_WEIGHTS = PACKAGE_WEIGHTS_DIR / WEIGHTS_NAME
#: where to download the default weights from
WEIGHTS_URL = "https://github.com/hadcore/hadcore/raw/main/hadcore/weights/stad_default.pt"
MODES = ("full", "saliency", "mask", "recon", "recon_mask")

# STF constants (paper Sec. III-C, eq. 8-13)
STF_RADIUS = 1
STF_SIGMA_S = 1.0
STF_SIGMA_C = 80.0


# ================================================================================ numpy parts (no torch)
class InputTransform:
    """:func:`prepare_input` as a fitted per-pixel map, from the :class:`~hadcore.stats.Moments` of the raw bands.

    With R the resampling matrix, the resampled pixels ``y = x @ R`` have mean ``mean_x @ R`` and, per band,
    variance ``diag(R^T S R) / n`` (S the scatter of x; divisor n as in ``numpy.std``), so the per-band
    z-score of :func:`prepare_input` is known before any pixel is resampled. The covariance of the network
    input (RX of the STF) is ``R^T S R / (n - 1)`` divided by the outer product of the standard deviations.
    A resampled band whose standard deviation is below 1e-9 of its mean's magnitude (constant up to
    rounding) is set to 0 instead of amplified rounding noise.
    """

    def __init__(self, moments, bands: int):
        B, n = moments.bands, max(int(moments.n), 1)
        self.R = band_resampling_matrix(B, int(bands))
        self.mean = moments.mean @ self.R
        RSR = self.R.T @ moments.scatter @ self.R
        RSR = 0.5 * (RSR + RSR.T)
        sd = np.sqrt(np.clip(np.diag(RSR) / n, 0.0, None))
        self.flat = ~(sd > 1e-9 * np.abs(self.mean))
        self.sd = np.where(self.flat, 1.0, sd)
        cov = RSR / max(n - 1, 1) / np.outer(self.sd, self.sd)
        cov[self.flat] = 0.0
        cov[:, self.flat] = 0.0
        #: RX of the STF on the network input: its mean is 0 by construction, pseudo-inverse covariance
        self.icov = inv_psd(cov)

    def __call__(self, block: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The network input of a prepared block: (h, w, bands) float32, 0 at invalid pixels."""
        h, w, B = block.shape
        nb = self.R.shape[1]
        out = np.zeros((h * w, nb), dtype=np.float32)
        flat_mask = mask.reshape(-1)
        X = block.reshape(h * w, B)
        step = max(1, (16 * 2**20) // (8 * max(B, 1)))
        for s in range(0, h * w, step):
            Y = X[s:s + step] @ self.R
            Y = (Y - self.mean) / self.sd
            Y[:, self.flat] = 0.0
            Y[~flat_mask[s:s + step]] = 0.0
            out[s:s + step] = Y
        return out.reshape(h, w, nb)

    def rx(self, Xin: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(h, w) RX of the network input (float32 values, as the STF sees them); 0 at invalid pixels."""
        rx = np.zeros(mask.shape)
        rx[mask] = mahalanobis_sq(np.asarray(Xin[mask], dtype=np.float64), np.zeros(Xin.shape[2]), self.icov)
        return rx


#: neighbourhoods kept to estimate the STF median when streaming (bottom-k on a hash of the pixel's values)
STF_SAMPLE = 2**17
_HASH_MULT = (np.random.default_rng(20240101).integers(0, 2**63, size=4096, dtype=np.uint64) * np.uint64(2)
              + np.uint64(1))


def content_keys(pixels: np.ndarray) -> np.ndarray:
    """A pseudo-random uint64 key per row of ``pixels`` (N, B) float64, from its values (not its position),
    so that a bottom-k sample does not depend on how the scene is cut into blocks.

    Equal rows would share a key and enter or leave a bottom-k sample together (a large flat area could
    then fill the sample); the i-th repeat of a row within ``pixels`` therefore gets a key mixed with i.
    """
    from ..stats import pixel_keys

    keys = _value_keys(pixels)
    o = np.argsort(keys, kind="stable")
    ks = keys[o]
    first = np.r_[True, ks[1:] != ks[:-1]]
    pos = np.arange(ks.size)
    rank = pos - np.maximum.accumulate(np.where(first, pos, 0))
    dup = rank > 0
    if dup.any():
        keys[o[dup]] = pixel_keys(ks[dup] ^ pixel_keys(rank[dup], 1), 2)
    return keys


def _value_keys(pixels: np.ndarray) -> np.ndarray:
    from ..stats import pixel_keys

    P = np.ascontiguousarray(pixels, dtype=np.float64)
    n, B = P.shape
    mult = _HASH_MULT[np.arange(B) % _HASH_MULT.size]
    acc = np.zeros(n, dtype=np.uint64)
    bits = P.view(np.uint64)
    step = max(1, (8 * 2**20) // (8 * max(B, 1)))
    with np.errstate(over="ignore"):
        for s in range(0, n, step):
            acc[s:s + step] = (bits[s:s + step] * mult).sum(axis=1, dtype=np.uint64)
    return pixel_keys(acc, 0)


class STFSample:
    """Refine-pass state of the STF (mergeable): the RX minimum and maximum over the valid pixels, and a
    bounded sample of valid pixels' 3 x 3 RX neighbourhoods (NaN = neighbour invalid or outside the block).

    After the merge the RX range is exact; the median of the bilateral-filtered map is the median over the
    sampled pixels (exact when the scene has at most ``size`` valid pixels, except for pixels on the edge
    of a refine block, whose neighbours across the edge are missing).
    """

    __slots__ = ("lo", "hi", "keys", "nbh", "size")

    def __init__(self, lo, hi, keys, nbh, size):
        self.lo, self.hi, self.keys, self.nbh, self.size = float(lo), float(hi), keys, nbh, int(size)

    @classmethod
    def of_block(cls, rx: np.ndarray, mask: np.ndarray, keys: np.ndarray, size: int) -> "STFSample":
        """``rx`` (h, w), ``mask`` (h, w), ``keys`` (n_valid,) of the valid pixels in row-major order."""
        if not mask.any():
            return cls(np.inf, -np.inf, np.zeros(0, np.uint64), np.zeros((0, 9)), size)
        v = rx[mask]
        rr, cc = np.nonzero(mask)
        if keys.size > size:
            keep = np.argpartition(keys, size - 1)[:size]
            rr, cc, keys = rr[keep], cc[keep], keys[keep]
        P = np.pad(np.where(mask, rx, np.nan), 1, constant_values=np.nan)
        nbh = np.stack([P[rr + 1 + dy, cc + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=1)
        return cls(v.min(), v.max(), keys, nbh, size)

    def merge(self, other: "STFSample") -> "STFSample":
        keys = np.concatenate([self.keys, other.keys])
        nbh = np.concatenate([self.nbh, other.nbh])
        if keys.size > self.size:
            keep = np.argpartition(keys, self.size - 1)[:self.size]
            keys, nbh = keys[keep], nbh[keep]
        return STFSample(min(self.lo, other.lo), max(self.hi, other.hi), keys, nbh, self.size)

    def median(self) -> float:
        """Median of the bilateral-filtered (radius 1), 0-255 scaled RX over the sampled pixels, as
        :func:`stf_from_rx` computes it over all pixels."""
        sigma_s, sigma_c = STF_SIGMA_S, STF_SIGMA_C
        if self.nbh.shape[0] == 0:
            return 0.0
        o = np.argsort(self.keys, kind="stable")  # canonical order (the median does not need it; bitwise
        nb = self.nbh[o]                          # reproducible sums do)
        ok = np.isfinite(nb)
        if self.hi > self.lo:
            I = np.where(ok, 255.0 * (nb - self.lo) / (self.hi - self.lo), 0.0)
        else:
            I = np.zeros(nb.shape)
        c = I[:, 4]
        num = np.zeros(nb.shape[0])
        den = np.zeros(nb.shape[0])
        j = 0
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                w = ok[:, j] * np.exp(-(dy * dy + dx * dx) / (2 * sigma_s ** 2))
                w = w * np.exp(-((c - I[:, j]) ** 2) / (2 * sigma_c ** 2))
                num += w * I[:, j]
                den += w
                j += 1
        F = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        return float(np.median(F))


def bilateral_filter(img: np.ndarray, valid: np.ndarray, radius: int = STF_RADIUS,
                     sigma_s: float = STF_SIGMA_S, sigma_c: float = STF_SIGMA_C) -> np.ndarray:
    r"""Bilateral filter of a 2-D image over valid pixels (paper eq. 10-12).

    .. math:: F(p) = \frac{\sum_{q} w_s(p,q) w_c(p,q) I(q)}{\sum_q w_s(p,q) w_c(p,q)},\quad
              w_s = e^{-\|p-q\|^2 / 2\sigma_s^2},\ w_c = e^{-(I(p)-I(q))^2 / 2\sigma_c^2}

    over the (2 radius + 1)^2 square window; neighbours outside the image or invalid are left out of both
    sums (no padding values enter). Invalid pixels get 0.
    """
    H, W = img.shape
    I = np.where(valid, np.asarray(img, dtype=np.float64), 0.0)
    r = int(radius)
    P = np.pad(I, r)
    V = np.pad(valid.astype(np.float64), r)
    num = np.zeros((H, W))
    den = np.zeros((H, W))
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            Q = P[r + dy:r + dy + H, r + dx:r + dx + W]
            w = V[r + dy:r + dy + H, r + dx:r + dx + W] * np.exp(-(dy * dy + dx * dx) / (2 * sigma_s ** 2))
            w = w * np.exp(-((I - Q) ** 2) / (2 * sigma_c ** 2))
            num += w * Q
            den += w
    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    out[~valid] = 0.0
    return out


def small_target_filter(X: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The STF mask (paper eq. 8-13) of a (H, W, B) cube: (H, W), values in [0, 255], 0 at and below the median.

    Global RX over the valid pixels (pseudo-inverse covariance), scaled to 0-255 by min-max over the valid
    pixels, bilateral-filtered (radius 1, sigma_s 1, sigma_c 80), then every value at or below the median of
    the valid pixels is set to 0. The statistics are always those of the whole image given.
    """
    rx = np.zeros(valid.shape)
    pix = np.asarray(X, dtype=np.float64)[valid]
    mu, cov = mean_cov(pix)
    rx[valid] = mahalanobis_sq(pix, mu, inv_psd(cov))
    return stf_from_rx(rx, valid)


def stf_from_rx(rx: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Eq. 9-13 from an RX map: scale to 0-255, bilateral filter, zero at or below the median."""
    v = rx[valid]
    lo, hi = float(v.min()), float(v.max())
    scaled = np.zeros(rx.shape)
    if hi > lo:
        scaled[valid] = 255.0 * (v - lo) / (hi - lo)
    F = bilateral_filter(scaled, valid)
    med = float(np.median(F[valid]))
    M = np.where(valid & (F > med), F, 0.0)
    return M


# ================================================================================ weights
def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ParameterError(f"detector 'stad' needs torch (pip install 'hadcore[torch]'): {exc}") from None
    return torch


_LOADED: Dict[Tuple[str, float, int], Any] = {}


def user_weights_dir() -> Path:
    """The user's folder for the default weights: ``$HADCORE_WEIGHTS_DIR`` if set, else, inside QGIS, the
    profile's ``hadcore/weights`` folder, else ``~/.cache/hadcore/weights``."""
    env = os.environ.get("HADCORE_WEIGHTS_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    if "qgis" in sys.modules:  # running inside QGIS: never import qgis otherwise
        try:
            from qgis.core import QgsApplication

            settings = QgsApplication.qgisSettingsDirPath()
        except Exception:  # pragma: no cover - a broken or partial qgis module
            settings = ""
        if settings:
            return Path(settings) / "hadcore" / "weights"
    return Path.home() / ".cache" / "hadcore" / "weights"


def default_weights() -> Path:
    """The default STAD weights file: the package's ``weights/`` folder first (an installed hadcore), then
    :func:`user_weights_dir` (the QGIS plugin's vendored copy ships no weights). FileError, in one line, when
    neither holds it."""
    user = user_weights_dir()
    for folder in (PACKAGE_WEIGHTS_DIR, user):
        path = folder / WEIGHTS_NAME
        if path.is_file():
            return path
    raise FileError(
        f"stad: no default weights {WEIGHTS_NAME} (looked in {PACKAGE_WEIGHTS_DIR} and {user}); "
        f"install hadcore into QGIS's Python (pip install hadcore), or download {WEIGHTS_URL} into {user} "
        f"(HADCORE_WEIGHTS_DIR chooses that folder), or give the parameter 'weights'"
    )


def load_weights(path) -> Dict[str, Any]:
    """Read and check a STAD weights file without executing code (``torch.load(weights_only=True)``)."""
    torch = _torch()
    p = Path(path)
    if not p.is_file():
        raise FileError(f"stad: weights file not found: {path}")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or containing objects that need code to load
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileError(f"stad: cannot read weights file {path}: {msg[:200]}") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise FileError(f"stad: {path} is not a STAD weights file (expected format {FORMAT!r})")
    if int(obj.get("format_version", -1)) != FORMAT_VERSION:
        raise FileError(
            f"stad: {path} has format version {obj.get('format_version')!r}, this hadcore reads {FORMAT_VERSION}"
        )
    for key in ("config", "student", "teacher", "meta"):
        if key not in obj:
            raise FileError(f"stad: weights file {path} lacks {key!r}")
    return obj


def _load_student(path, device):
    p = str(Path(path).resolve())
    try:
        st = os.stat(p)
        key = (p, st.st_mtime, st.st_size)
    except OSError:
        key = None
    if key is not None and key in _LOADED:
        cfg, student = _LOADED[key]
    else:
        obj = load_weights(path)
        cfg = dict(obj["config"])
        try:
            _, student = _build_nets(cfg)
            student.load_state_dict(obj["student"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FileError(f"stad: weights file {path} does not fit the STAD network: {msg[:200]}") from None
        student.train(False)
        for prm in student.parameters():
            prm.requires_grad_(False)
        if key is not None:
            _LOADED.clear()
            _LOADED[key] = (cfg, student)
    return cfg, student.to(device)


# ================================================================================ scores (torch)
def stad_loss(student, x, m):
    """Eq. 14-15: L = sum over stages k, pixels and bands of (x - student_k(x))^2 * m.

    ``x`` (N, C, H, W), ``m`` (N, 1, H, W) broadcast over bands.
    """
    return sum((((x - o) ** 2) * m).sum() for o in student(x))


def gradient_score(student, x, m):
    """Eq. 16: (score (N, H, W) = max over bands of |dL/dx|, the gradient dL/dx (N, C, H, W))."""
    torch = _torch()
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(stad_loss(student, xg, m), xg)
    return g.abs().amax(dim=1).detach(), g.detach()


def reconstruction_error(student, x):
    """Table III "reconstruction error": sum over stages and bands of (x - student_k(x))^2, (N, H, W)."""
    torch = _torch()
    with torch.no_grad():
        return sum(((x - o) ** 2).sum(dim=1) for o in student(x))


# ================================================================================ the detector
class STAD(Detector):
    r"""STAD, the small-target-aware detector (Ma, Xie & Li), with a consistent, trainable pipeline.

    **Networks** (Sec. III-A/B). The teacher is a Transformer whose tokens are the pixels of a patch, each
    token the pixel's spectrum; 3 blocks (multi-head self-attention with 2 heads, feed-forward width 1000,
    residuals, layer norm), each block's output a reconstruction of the spectra (eq. 4-5). It is trained to
    reconstruct clean patches from patches with pseudo-anomalies, with an exponential moving average (EMA)
    of its weights. The student has one stage per teacher block: conv 3x3 -> ReLU -> transposed conv 3x3
    -> ReLU -> per-pixel fully connected layer (1x1 conv); stage k is trained to match the EMA teacher's
    block-k output on the same input (eq. 6-7), with EMA too. Only the student runs at test time.

    **Small target filter** (eq. 8-13, :func:`small_target_filter`): global RX of the network input over the
    whole image, scaled to 0-255, bilateral filter (radius 1, sigma_s 1, sigma_c 80), values at or below the
    median set to 0; the result M is divided by 255.

    **Score** (eq. 14-16): with the student's stage outputs :math:`\hat X_k`,

    .. math:: L = \sum_k \sum_{p,b} (X - \hat X_k)^2_{p,b} M_p,\qquad s(p) = \max_b |\partial L/\partial X_{p,b}|

    computed by automatic differentiation through the student.

    **Choices where the paper or its code is silent or inconsistent.**

    - *Bands.* The paper keeps the first 50 bands; our scenes have 64-224. Every spectrum is resampled to
      ``bands`` (32, fixed by the weights) equal bins of the band axis, each the overlap-weighted mean of
      the input bands (:func:`band_resampling_matrix`), so one trained model serves any band count and uses
      the whole spectrum. 32 rather than 50: the 50,000 pixels/s target on 2 CPU cores. The sources carry
      no wavelengths, so resampling is by band index, not wavelength.
    - *Scaling.* The public code scales differently at training and test time; here both use
      :func:`prepare_input`: per-scene, per-band z-score over the valid pixels. Invalid pixels are set to
      the scene mean (0) before the network and get M = 0, so they never enter RX, the median or L.
    - *Teacher input.* No positional encoding: the attention sees the patch's pixels as a set (background
      modelling by non-local similarity), so the teacher does not depend on where a patch lies.
    - *Pseudo-anomalies.* 1-4 blobs per training patch, each 1-16 pixels (a random rectangle of side 1-4
      or a single pixel), whose spectrum is replaced by a blend ``a * donor + (1 - a) * original``
      (a in [0.4, 1]), the donor a random valid pixel of the *same* scene, multiplied by a random gain in
      [0.7, 1.3] and with Gaussian noise of sd 0.1 added: a real material of the scene out of its place,
      which is what a small target is to its surroundings. Donors from other scenes (our first recipe)
      are spectrally foreign after per-scene scaling and too easy to spot; the teacher learnt little that
      transfers to real targets (docs/stad.md).
    - *Tiles.* Blocks are scored in tiles of ``tile`` pixels with a halo of 16 pixels (twice the student's
      receptive-field radius of 6, plus 1 for the bilateral filter, plus margin): the score equals the
      untiled one, and the torch memory is bounded by the tile whatever the block.

    **Scaling:** three passes, nearly exact under tiling (halo 16). (1) The statistics pass gives the
    :class:`~hadcore.stats.Moments` of the raw bands, from which the per-band z-score of the resampled input
    and the mean and covariance of the STF's RX on it follow exactly (:class:`InputTransform`: mean ``mu @ R``,
    covariance ``R^T S R``). (2) A refine pass computes RX block by block: the RX minimum and maximum (the
    0-255 scaling) are exact; the median of the bilateral-filtered map, which needs the scaling first, is
    estimated from a bounded sample of 2^17 valid pixels' 3 x 3 RX neighbourhoods (:class:`STFSample`,
    bottom-k on a hash of each pixel's values, so independent of the block layout). A scene with at most
    2^17 valid pixels is sampled whole; only pixels on the edge of a refine block then lack the neighbours
    across it. (3) The score pass computes each block's input, RX, bilateral filter and mask M locally and the
    gradient score through the student, with the halo. In memory (``detect``) the RX range and the median
    are computed exactly on the whole image, as before. Streamed against in-memory scores on the nine shared
    scenes with 100-169 blocks and 3-4 refine strips: Pearson correlation >= 0.99998, mean AUC equal to 5
    decimals; with one refine strip equal up to float rounding; on a 500 x 500 mosaic (250,000 pixels, the
    median from the sample) correlation 1.0000000, largest difference 6e-5 of the score range. Modes
    without the STF (``saliency``, ``recon``) need no refine pass and are exact.

    **Ablations** (Table III), parameter ``mode``: ``recon`` (sum over stages and bands of the squared
    reconstruction error), ``saliency`` (the gradient score with M = 1), ``mask`` (M alone), ``recon_mask``
    (reconstruction error times M), ``full`` (STAD).

    **Training** (:meth:`train`, ``hadcore train stad``) reads cubes only, never ground truth. The shipped
    weights (``hadcore/weights/stad_default.pt``) were trained on the nine cubes of ``../shared/data``;
    the command, seed and time are stored in the file (``meta``) and in ``docs/stad.md``.
    """

    name = "stad"
    title = "STAD (small-target-aware detector)"
    summary = "Transformer teacher distilled into a conv student; gradient saliency under a small-target filter."
    reference = (
        "J. Ma, W. Xie, Y. Li, 'Exploring Hyperspectral Anomaly Detection with Human Vision: A Small Target "
        "Aware Detector', arXiv:2401.01093, 2024 (code: github.com/majitao-xd/STAD-HAD)."
    )
    family = "deep"
    trains = True
    min_bands = 2
    min_pixels = 3
    requires = ("torch",)
    params = (
        Param("weights", "path", None,
              "STAD weights file (.pt); empty = the default weights (shipped with hadcore; for the QGIS plugin ZIP "
              "see docs/qgis.md).", optional=True),
        Param("mode", "choice", "full", "Score: full STAD or a Table III ablation.", choices=MODES),
        device_param(),
        Param("tile", "int", 256, "Tile size in pixels for scoring large images (halo 16 added).",
              min=16, max=4096),
        Param("seed", "int", 0, "Random seed (training: crops, pseudo-anomalies, initialisation).", min=0),
        # ---- training only
        Param("bands", "int", 32, "Training: number of network input bands (spectra are resampled to it).",
              min=4, max=256),
        Param("hidden", "int", 16, "Training: width of the student's convolutions.", min=2, max=256),
        Param("teacher_steps", "int", 2000, "Training: optimisation steps of the teacher.", min=1, max=1000000),
        Param("student_steps", "int", 400, "Training: optimisation steps of the student.", min=1, max=1000000),
        Param("batch", "int", 16, "Training: patches per step.", min=1, max=4096),
        Param("patch", "int", 16, "Training: patch side in pixels (the teacher attends over its pixels).",
              min=4, max=256),
        Param("lr", "float", 1e-3, "Training: Adam learning rate.", min=1e-7, max=1.0),
        Param("ema", "float", 0.99, "Training: EMA decay of teacher and student weights.", min=0.0, max=1.0),
        Param("ffn", "int", 1000, "Training: teacher feed-forward width.", min=4, max=100000),
    )

    #: pixels of halo around a block or tile: the gradient at a pixel depends on the inputs within twice the
    #: student's receptive-field radius (2 x 6 = 12), and the STF mask M on the RX map within 1 more (13)
    HALO = 16

    def _needs_stf(self) -> bool:
        return self.mode in ("full", "mask", "recon_mask")

    def context(self) -> Context:
        # the z-score of the input and RX's mean and covariance come from the statistics pass; the RX range
        # and the STF median from a refine pass (modes that use the STF only)
        return Context(halo=self.HALO, global_stats=True, refine=self._needs_stf())

    def _check_params(self) -> None:
        if self.weights is not None and str(self.weights).strip() == "":
            self.weights = None
        if self.bands % 2:
            raise ParameterError(f"parameter 'bands': expected an even number (2 attention heads), got {self.bands}")

    # ------------------------------------------------------------------ helpers
    def _device(self):
        return torch_device(_torch(), self.device)

    def weights_path(self) -> Path:
        return Path(self.weights) if self.weights is not None else default_weights()

    # ------------------------------------------------------------------ fit / refine / score
    def _fit(self, data, progress):
        cfg, _ = _load_student(self.weights_path(), self._device())
        self.transform_ = InputTransform(data.moments, int(cfg["bands"]))
        progress.update(1.0)

    def _refine_block(self, block, mask):
        # a few rows at a time: the refine blocks are the statistics pass's, sized for the block alone
        h, w, B = block.shape
        rx = np.zeros((h, w))
        rows = max(1, (16 * 2**20) // (8 * max(B, 1) * max(w, 1)))
        for r in range(0, h, rows):
            m = mask[r:r + rows]
            rx[r:r + rows] = self.transform_.rx(self.transform_(block[r:r + rows], m), m)
        keys = content_keys(block.reshape(-1, B))[mask.reshape(-1)]
        return STFSample.of_block(rx, mask, keys, STF_SAMPLE)

    def _refine_merge(self, a, b):
        return a.merge(b)

    def _refine_finish(self, merged):
        self.rx_range_ = (merged.lo, merged.hi)
        self.stf_median_ = merged.median()

    def _filtered(self, rx, mask):
        """Eq. 9-12 on a block: RX scaled to 0-255 with the scene's RX range, then the bilateral filter."""
        lo, hi = self.rx_range_
        scaled = np.zeros(mask.shape)
        if hi > lo:
            scaled[mask] = 255.0 * (rx[mask] - lo) / (hi - lo)
        return bilateral_filter(scaled, mask)

    def _mask(self, F, mask):
        """Eq. 13 and the division by 255: M in [0, 1], 0 at or below the scene's median."""
        return np.where(mask & (F > self.stf_median_), F, 0.0) / 255.0

    def _score(self, block, mask, progress):
        Xin = self.transform_(block, mask)
        if self._needs_stf():
            M = self._mask(self._filtered(self.transform_.rx(Xin, mask), mask), mask)
        else:
            M = mask.astype(np.float64)
        progress.update(0.1)
        if self.mode == "mask":
            return M
        return self._net_scores(Xin, M, progress.sub(0.1, 1.0))

    def _detect(self, cube, mask, progress):
        """In memory: the statistics of the whole cube, the exact RX range and STF median, then tiles."""
        from ..context import fit_data_from_cube

        self._fit(fit_data_from_cube(cube, mask, Context(global_stats=True)), progress.sub(0.0, 0.05))
        Xin = self.transform_(cube, mask)
        if self._needs_stf():
            rx = self.transform_.rx(Xin, mask)
            v = rx[mask]
            self.rx_range_ = (float(v.min()), float(v.max()))
            F = self._filtered(rx, mask)
            self.stf_median_ = float(np.median(F[mask]))
            M = self._mask(F, mask)
        else:
            M = mask.astype(np.float64)
        progress.update(0.15)
        if self.mode == "mask":
            return M
        return self._net_scores(Xin, M, progress.sub(0.15, 1.0))

    def _net_scores(self, X, M, progress):
        """Eq. 14-16 (or the reconstruction ablations) on tiles of ``tile`` pixels with a halo of HALO."""
        torch = _torch()
        dev = self._device()
        _, student = _load_student(self.weights_path(), dev)
        H, W, _ = X.shape
        scores = np.zeros((H, W))
        T, h = int(self.tile), self.HALO
        tiles = [(r, c) for r in range(0, H, T) for c in range(0, W, T)]
        use_grad = self.mode in ("full", "saliency")
        with session(torch):  # the engine's thread budget, deterministic algorithms
            for i, (r, c) in enumerate(tiles):
                r0, r1 = max(r - h, 0), min(r + T + h, H)
                c0, c1 = max(c - h, 0), min(c + T + h, W)
                xt = torch.from_numpy(np.ascontiguousarray(X[r0:r1, c0:c1].transpose(2, 0, 1)))[None].to(dev)
                mt = torch.from_numpy(np.ascontiguousarray(M[r0:r1, c0:c1], dtype=np.float32))[None, None].to(dev)
                if use_grad:
                    s = gradient_score(student, xt, mt)[0][0]
                else:
                    s = reconstruction_error(student, xt)[0]
                    if self.mode == "recon_mask":
                        s = s * mt[0, 0]
                s = s.detach().to("cpu").double().numpy()
                rr, cc = min(r + T, H), min(c + T, W)
                scores[r:rr, c:cc] = s[r - r0:rr - r0, c - c0:cc - c0]
                progress.update((i + 1) / len(tiles))
        return scores

    #: bytes per pixel of a block outside the networks (network input, RX, STF maps; 32 network bands)
    BLOCK_BYTES_PER_PIXEL = 640
    #: bytes per pixel of a tile inside the student's forward and backward pass (hidden 16, 32 bands)
    TORCH_BYTES_PER_PIXEL = 4096

    def working_bytes(self, h, w, bands):
        t = int(self.tile) + 2 * self.HALO
        return h * w * self.BLOCK_BYTES_PER_PIXEL + min(h, t) * min(w, t) * self.TORCH_BYTES_PER_PIXEL

    def state_bytes(self, bands):
        # resampling matrix, the refine sample of STF neighbourhoods (and its merge), the student
        return bands * 64 * 8 + 3 * STF_SAMPLE * 80 + 4 * 2**20

    # ------------------------------------------------------------------ training
    def train(self, cubes, out, progress=None, resume: bool = False) -> Dict[str, Any]:
        """Train teacher then student on ``cubes`` and write a weights file to ``out``.

        ``cubes``: a sequence of (H, W, B) arrays, or of objects with ``.cube`` (and optionally ``.mask`` and
        ``.path``, e.g. :class:`hadcore.io.Raster`). Ground truth is never read. A checkpoint
        ``<out>.ckpt`` is written every 50 steps; ``resume=True`` continues from it (same data and
        parameters required), giving the same weights as an uninterrupted run on CPU. Returns the metadata
        stored in the file.
        """
        from .stad_nets import train_stad

        return train_stad(self, cubes, out, progress=as_progress(progress), resume=resume)
