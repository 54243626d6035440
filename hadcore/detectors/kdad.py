"""KDAD: knowledge-distillation-based anomaly detection (Zhao et al., IEEE JSTARS 2025)."""

from __future__ import annotations

import warnings
from typing import Dict, Optional

import numpy as np

from ..base import Context, Detector
from ..errors import ParameterError
from ..linalg import inv_psd, mahalanobis_sq, mean_cov
from .torch_runtime import build_nets, device_param, session, torch_device
from ..params import Param

__all__ = ["KDAD"]


# ---------------------------------------------------------------------------------------------------------
# numpy stages (public helpers of this module; tested on their own)
# ---------------------------------------------------------------------------------------------------------
def spatial_information_map(cube: np.ndarray, mask: np.ndarray, inner: int = 5, outer: int = 7,
                            dual: bool = True, mean: Optional[np.ndarray] = None) -> np.ndarray:
    """SPAM (Sec. III-A): 1 - mean cosine similarity of each pixel to the pixels of its window.

    ``dual=True``: the ring between the inner and the outer window (outer^2 - inner^2 pixels, 7^2 - 5^2 = 24
    by default); ``dual=False`` (single-window ablation): every pixel of the outer window but the centre
    (7^2 - 1 = 48). Spectra are centred on the scene mean (over valid pixels; ``mean`` when given, e.g. from
    the whole-scene statistics when ``cube`` is a block) before the cosine, because radiance spectra are all
    positive and nearly parallel (raw cosines all lie near 1). Border rule: only window pixels that lie
    inside the image and are valid count; a pixel with none gets 0. High = unlike its surroundings.
    Returns (H, W) float64. Local: a block with a halo of ``outer // 2`` pixels gives the exact interior.
    """
    H, W, _ = cube.shape
    mu = cube[mask].mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
    # unit centred spectra, a few rows at a time (one (H, W, B) float64 array in all)
    U = np.subtract(cube, mu, dtype=np.float64)
    U[~mask] = 0.0
    step = max(1, (16 * 2**20) // (8 * max(W * cube.shape[2], 1)))
    for r in range(0, H, step):
        nrm = np.linalg.norm(U[r:r + step], axis=2)
        U[r:r + step] /= np.maximum(nrm, 1e-300)[..., None]
    r_out = outer // 2
    r_in = inner // 2 if dual else 0
    acc = np.zeros((H, W))
    cnt = np.zeros((H, W))
    m = mask.astype(np.float64)
    for dr in range(-r_out, r_out + 1):
        for dc in range(-r_out, r_out + 1):
            if max(abs(dr), abs(dc)) <= r_in:
                continue
            # target rows/cols that have the neighbour (r + dr, c + dc) inside the image
            r0, r1 = max(0, -dr), min(H, H - dr)
            c0, c1 = max(0, -dc), min(W, W - dc)
            if r0 >= r1 or c0 >= c1:
                continue
            a = U[r0:r1, c0:c1]
            b = U[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
            mb = m[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
            acc[r0:r1, c0:c1] += np.einsum("ijk,ijk->ij", a, b) * mb
            cnt[r0:r1, c0:c1] += mb
    spam = np.where(cnt > 0, 1.0 - acc / np.maximum(cnt, 1.0), 0.0)
    return np.where(mask, spam, 0.0)


def _f32(x) -> np.ndarray:
    """float64 values rounded to float32 precision."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


class PCABasis:
    """The whitened PCA of :func:`pca_reduce` as a fitted map: from a mean, a covariance and a pixel count
    (the whole-scene :class:`~hadcore.stats.Moments`), applied to any block's pixels."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray, n: int, variance: float = 0.95,
                 min_components: int = 1, rounded: bool = False):
        w, V = np.linalg.eigh(cov)
        w, V = w[::-1], V[:, ::-1]
        w = np.clip(w, 0.0, None)
        total = w.sum()
        if total <= 0:
            d = 1
        else:
            d = int(np.searchsorted(np.cumsum(w) / total, variance) + 1)
        d = int(min(max(d, min_components), cov.shape[0], max(int(n) - 1, 1)))
        V = V[:, :d]
        # a deterministic sign (the largest-magnitude entry of each component positive); ``rounded``: the
        # basis rounded to float32, so that statistics differing by float rounding (merged block by block,
        # another BLAS) give the same basis, hence the same network inputs and the same trained networks
        sign = np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(d)])
        V = V * np.where(sign == 0, 1.0, sign)
        r = _f32 if rounded else (lambda x: np.asarray(x, dtype=np.float64))
        self.V, self.mean, self.d, self.sd = r(V), r(mean), d, r(np.sqrt(w[:d]))
        # components without variance (a constant scene) stay 0 instead of dividing by 0
        self.keep = self.sd > 1e-12 * max(np.sqrt(total), 1e-300)

    @classmethod
    def of_moments(cls, moments, variance: float = 0.95, min_components: int = 1,
                   rounded: bool = False) -> "PCABasis":
        return cls(moments.mean, moments.cov(), moments.n, variance, min_components, rounded)

    @staticmethod
    def step(bands: int) -> int:
        """Rows projected at a time (16 MB of float64 input)."""
        return max(1, (16 * 2**20) // (8 * max(bands, 1)))

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """(N, d) whitened scores of the rows of ``pixels`` (N, B), computed a few thousand rows at a time."""
        n = pixels.shape[0]
        out = np.empty((n, self.d))
        step = self.step(pixels.shape[1])
        sd = np.where(self.sd > 0, self.sd, 1.0)
        for s in range(0, n, step):
            Z = (pixels[s:s + step] - self.mean) @ self.V
            out[s:s + step] = np.where(self.keep, Z / sd, 0.0)
        return out


def pca_reduce(pixels: np.ndarray, variance: float = 0.95, min_components: int = 1):
    """PCA of the valid pixels (N, B) keeping ``variance`` of the variance (at least ``min_components``).

    Returns (scores (N, d) whitened to unit variance per component, d). Whitening is our choice: the
    networks and K-means then weigh every kept direction alike (as RX does) instead of the first one only.
    """
    mu, cov = mean_cov(pixels)
    basis = PCABasis(mu, cov, pixels.shape[0], variance, min_components)
    return basis(pixels), basis.d


class ZScore:
    """Per-column z-score fitted on some rows and applied to others; a column that is constant up to
    float32 rounding (relative spread < 1e-5) maps to 0 instead of amplified rounding noise."""

    def __init__(self, V: np.ndarray):
        self.mu, self.sd = V.mean(axis=0), V.std(axis=0)
        self.flat = self.sd <= 1e-5 * (np.abs(self.mu) + np.abs(V).max(axis=0) + 1e-30)

    def __call__(self, V: np.ndarray) -> np.ndarray:
        return np.where(self.flat, 0.0, (V - self.mu) / np.where(self.flat, 1.0, self.sd))


def _zscore(V: np.ndarray) -> np.ndarray:
    """Columns of V (N, c) to zero mean, unit variance (:class:`ZScore` fitted on V itself)."""
    return ZScore(V)(V)


def _cluster(F: np.ndarray, k: int, seed: int):
    from sklearn.cluster import KMeans  # lazily: `hadcore list` imports this module
    from sklearn.exceptions import ConvergenceWarning

    k = int(min(k, F.shape[0]))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed)
    with warnings.catch_warnings():  # fewer distinct points than clusters (flat scenes): harmless
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = km.fit_predict(F)
    return labels, km.cluster_centers_


def _cluster_mahalanobis(F, labels, centers, ridge=1e-3):
    """Squared Mahalanobis distance of every row to its own cluster centre under the cluster covariance."""
    d = np.zeros(F.shape[0])
    for j in range(centers.shape[0]):
        sel = labels == j
        if sel.sum() < 2:
            continue
        _, cov = mean_cov(F[sel])
        d[sel] = mahalanobis_sq(F[sel], centers[j], inv_psd(cov, ridge=ridge))
    return d


def cluster_classes(labels: np.ndarray, k: int, a: float, b: float) -> np.ndarray:
    """Eq. 22: class of each cluster from its size: 2 = background (>= a N), 0 = anomaly candidate (< b N),
    1 = in between (the paper assigns these to no class; see the detector docstring)."""
    n = labels.size
    sizes = np.bincount(labels, minlength=k)
    cls = np.ones(k, dtype=int)
    cls[sizes >= a * n] = 2
    cls[sizes < b * n] = 0
    if not (cls == 2).any():  # no cluster is large enough: the largest one is background
        cls[int(np.argmax(sizes))] = 2
    return cls


def weight_matrix(F: np.ndarray, k: int = 5, a: float = 0.25, b: float = 0.15, seed: int = 0) -> np.ndarray:
    """The weight matrix W (eq. 22-25) for the valid pixels' PCA features F (N, d); values in [0, 1].

    K-means on F; clusters classed by size (eq. 22); the squared Mahalanobis distance of each pixel to its
    cluster centre (cluster covariance), min-max normalised within the class, is mapped linearly to
    [0.5, 1] for background candidates and [0, 0.5] for anomaly candidates, nearest = highest. Pixels of
    in-between clusters are mapped to [0.25, 0.75].
    """
    labels, centers = _cluster(F, k, seed)
    cls = cluster_classes(labels, centers.shape[0], a, b)
    dist = _cluster_mahalanobis(F, labels, centers)
    w = np.empty(F.shape[0])
    for c, (lo, hi) in {0: (0.0, 0.5), 1: (0.25, 0.75), 2: (0.5, 1.0)}.items():
        sel = cls[labels] == c
        if not sel.any():
            continue
        dd = dist[sel]
        span = dd.max() - dd.min()
        t = (dd - dd.min()) / span if span > 0 else np.zeros_like(dd)
        w[sel] = hi - (hi - lo) * t
    return w


class ADM:
    """The anomaly detection module (Sec. III-C, eq. 28) fitted on the features E (N, m) of some pixels (the
    training crops) and applied to any block's pixels; see :func:`adm_scores`."""

    def __init__(self, E: np.ndarray, k: int = 5, a: float = 0.25, b: float = 0.15, frac: float = 0.1,
                 seed: int = 0, degree: str = "mahal", ridge: float = 0.1):
        self.z = ZScore(E)
        self.degree = degree
        Z = self.z(E)
        labels, centers = _cluster(Z, k, seed)
        cls = cluster_classes(labels, centers.shape[0], a, b)
        dist = _cluster_mahalanobis(Z, labels, centers)
        atoms = []
        for j in np.flatnonzero(cls > 0):
            idx = np.flatnonzero(labels == j)
            n_keep = max(1, int(round(frac * idx.size)))
            atoms.append(idx[np.argsort(dist[idx], kind="stable")[:n_keep]])
        D = Z[np.concatenate(atoms)]
        if degree == "mahal":
            _, cov = mean_cov(Z)
            self.centre, self.icov = D.mean(axis=0), inv_psd(cov, ridge=ridge)
        else:
            self.atoms = D / np.maximum(np.linalg.norm(D, axis=1, keepdims=True), 1e-12)

    def __call__(self, E: np.ndarray) -> np.ndarray:
        """Anomaly degree of the rows of E (N, m); higher = more anomalous."""
        Z = self.z(E)
        if self.degree == "mahal":
            return mahalanobis_sq(Z, self.centre, self.icov)
        Zn = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        Dn = self.atoms
        if self.degree == "cos":
            return 1.0 - Zn @ Dn.mean(axis=0)  # mean of the cosines = cosine against the mean unit atom
        best = np.full(Z.shape[0], -np.inf)
        for s in range(0, Dn.shape[0], 2048):
            best = np.maximum(best, (Zn @ Dn[s:s + 2048].T).max(axis=1))
        return 1.0 - best


def adm_scores(E: np.ndarray, k: int = 5, a: float = 0.25, b: float = 0.15, frac: float = 0.1,
               seed: int = 0, degree: str = "mahal", ridge: float = 0.1) -> np.ndarray:
    """ADM (Sec. III-C, eq. 28) on the valid pixels' features E (N, m); higher = more anomalous.

    E is z-scored per channel. K-means on E; background classes = clusters that are not anomaly candidates
    by size (eq. 22: size >= b N); the background dictionary = for every background cluster, the ``frac``
    of its pixels nearest its centre by Mahalanobis distance (cluster covariance).

    ``degree``:
      - ``"cos"``: eq. 28 with its sign turned, 1 - mean cosine similarity to the dictionary atoms
        (the paper's mean cosine is highest for background).
      - ``"maxcos"``: 1 - largest cosine similarity to an atom (nearest atom).
      - ``"mahal"``: squared Mahalanobis distance to the dictionary's mean under the covariance of E over
        all valid pixels, diagonally loaded by ``ridge`` times the mean variance (E has ~2x(20 + 16)
        correlated channels; the loading keeps the weakest directions, mostly network noise, from
        dominating). The covariance of the atoms alone, or of the background classes alone, is too
        narrow: background clusters smaller than b N then score as anomalies.

    The same as :class:`ADM` fitted on E and applied to E.
    """
    return ADM(E, k, a, b, frac, seed, degree, ridge)(E)


# ---------------------------------------------------------------------------------------------------------
class KDAD(Detector):
    r"""KDAD: knowledge-distillation-based anomaly detection (Zhao et al., JSTARS 2025, Sec. III).

    Pipeline (one scene, no labels, trained on the scene itself):

    1. **SSFM** (Sec. III-A). The spatial information map SPAM (:func:`spatial_information_map`, dual
       window inner 5 / outer 7, Table III); the PCA image keeping 95 % of the variance (and at least
       ``min_components``); a dual-branch stacked convolutional autoencoder (each encoder 4 conv 3x3
       stride 1, ReLU after the first three; decoder 4 transposed conv 3x3) trained with MSE (eq. 7) to
       reconstruct both inputs; the concatenated latent maps (eq. 6) form the fused image
       :math:`X_{fusion}` (with ``keep_spectral``, beside the PCA image: see below).
    2. **REM / KDWAE** (Sec. III-B). Teacher encoder (5 conv + normalisation + ReLU + average pooling over
       the pixel's patch + FC to p), a FC map p -> q, a shared decoder (q -> the fused vector); trained on
       the W-weighted reconstruction loss (eq. 12). Student encoder (3 conv + pooling + FC to q) trained
       with :math:`\alpha L_{recon} + \beta L_{distill}` (eq. 14-16), :math:`L_{distill}` the MSE between
       the mapped teacher code and the student code. The adaptive parameter network (eq. 18-21) gives
       :math:`r_{diff}\in[0.1, 0.9]` from the teacher and student features and
       :math:`r_{step} = 0.5 + 0.5\,t/T \in [0.5, 1]` from the epoch t; :math:`\alpha = r_{step} r_{diff}`,
       :math:`\beta = 1 - \alpha`. W (eq. 22-25, :func:`weight_matrix`) from K-means on the PCA image.
       :math:`R_E = X_{fusion} - \hat X_{student}` per channel (eq. 26); :math:`E = [X_{fusion}, R_E]`
       (eq. 27).
    3. **ADM** (Sec. III-C, :func:`adm_scores`). K-means on E, background classes by size, a background
       dictionary of the 10 % of each background cluster's pixels nearest its centre (Mahalanobis), and an
       anomaly degree against the dictionary (eq. 28).

    Choices where the paper is silent or inconsistent (each exposed as a parameter where it matters):

    - *Per-pixel encoders.* Encoders that pool to one vector cannot score pixels unless they encode each
      pixel's patch. We run them fully convolutionally on every block: conv 3x3 layers, a
      ``patch`` x ``patch`` stride-1 average pooling (the pooling over the pixel's patch) and a 1x1 conv
      (the FC layer). This equals a per-patch encoder up to the patch-border padding and costs one image
      pass instead of one pass per patch. Each training epoch is one gradient step (Adam, learning rate
      ``lr``) over the training crops as one batch; there is no data order, hence no unseeded shuffling.
    - *Normalisation* in the teacher: GroupNorm with one group (layer norm over each crop), since a crop is
      one batch element and batch norm would then be degenerate. Where the teacher scores (``distill``
      off) its normalisation statistics are frozen to those of the training crops (pooled).
    - *Feature scaling.* PCA components are whitened (unit variance each); SPAM and the latent maps are
      z-scored.
    - *How many PCA components.* 95 % of the variance keeps only 2-4 components on the reflectance scenes
      of ../shared/data (the first component is brightness), and the small targets live in the discarded
      ones: global RX on 3 components averages AUC 0.929 over the nine scenes, on 20 components 0.964
      (on all bands 0.941). ``min_components`` (default 20) is therefore a floor under the 95 % rule.
    - *Linear latent layer.* The last encoder convolution has no ReLU: a ReLU there zeroes half of the
      (signed, whitened) information and the fused image then ranks worse than the PCA image it came from.
    - *Fused image keeps the spectrum* (``keep_spectral``, default on): the conv latent maps have a 9 x 9
      receptive field and blur one-pixel targets; X_fusion = [PCA image, latent maps] keeps the spectral
      evidence while adding the spatial features. Off = the paper's latent-only X_fusion.
    - *Shared decoder.* Trained with the teacher, frozen while the student trains, so the student must
      produce codes in the teacher's (mapped) code space.
    - *Clusters between b N and a N* (eq. 22 leaves them unclassed): W maps them to [0.25, 0.75]; the ADM
      counts them as background (a cluster of >= 15 % of the scene is no small target).
    - *Sign of eq. 28*: turned, so higher = more anomalous. The paper's degree (mean cosine similarity to
      the dictionary, ``degree=cos``) is a weak ranker on our scenes (mean AUC well below RX, see
      docs/kdad.md): the default ``degree=mahal`` keeps the dictionary (its mean is the background
      reference) and scores the squared Mahalanobis distance to it under the scene covariance of E,
      diagonally loaded by ``ridge`` (0.1 of the mean variance).
    - *APN* (eq. 18-21 give its range, not its inputs): a 2-layer MLP on the image-mean of the mapped
      teacher code and of the student code, trained with the student; alpha = r_step r_diff, beta =
      1 - alpha, so reconstruction gains weight as training proceeds.
    - *Unspecified sizes*: K = ``clusters`` (5), p = 16, q = 8, widths 16, latent 8 per branch, 60
      Adam steps per network at learning rate 5e-3: chosen for the 30 s budget on 2 CPU cores
      (docs/kdad.md).

    Ablations (Tables II and VI): ``ssfm`` (off: E uses the whitened PCA image as X_fusion), ``window``
    (dual / single), ``branches`` (dual / single), ``distill`` (off = WAE: the teacher autoencoder's
    residual), ``weights`` (proposed / none = KDAE / recon = KDRWAE: W from a warm-up reconstruction error),
    ``apn`` (off: fixed ``alpha``, ``beta``), ``final`` (adm / rx: global RX on E).

    Determinism: torch's global RNG is forked and seeded from ``seed``, deterministic algorithms are on
    while the detector runs, K-means takes ``random_state=seed``: same input, seed and torch thread count
    give bitwise-identical scores on CPU (another thread count changes float reductions, last digits only).

    **Scaling:** fitted on a bounded sample, then scored block by block with a halo (not exact under
    tiling, but fit time and memory are bounded whatever the scene size). The PCA basis comes from the
    whole-scene statistics pass (:class:`~hadcore.stats.Moments`: mean, covariance; its signs fixed and its
    values rounded to float32, so that statistics differing by float rounding - merged from other blocks -
    mostly give the same basis); everything else is fitted on ``crops`` square crops of ``crop_size`` pixels
    drawn with ``seed`` (64 x 32 x 32 = 65,536 pixels by default; many small crops cover a scene's materials
    better than a few large ones): the SPAM and latent z-scores, the weight matrix's K-means, the three
    networks (each epoch one step over the crops as a batch), the ADM's K-means, dictionary and covariance
    (or RX's mean and covariance). Every stage is then a fixed map applied to each block: SPAM is local
    (radius ``outer // 2``), the networks are fully convolutional, the z-scores and the ADM act per pixel, so
    the halo is the receptive field, :meth:`receptive_radius` (12 pixels by default: SPAM 3, the SSFM
    encoder's 4 conv 3x3, the student's 3 conv 3x3 and the 5 x 5 pooling's 2) and block seams do not show:
    a fitted model scores any block as it scores the whole image, up to float rounding. Inside a block the
    networks run on tiles of 256 pixels with the same halo (torch's memory stays bounded). A scene of at
    most ``crops * crop_size**2`` pixels (all nine shared scenes) is one crop, the whole scene, and gets the
    whole-scene fit; on a larger scene the crops are a spatial sample (on a 500 x 500 mosaic of the shared
    scenes AUC 0.881 over 3 seeds against 0.884 for the whole-scene fit, for a quarter of the time). A
    streamed run and ``detect`` fit on the same crops but on statistics rounded differently, which the
    training can amplify (nine shared scenes: mean AUC 0.9689 streamed, 0.9680 in memory). Measured (docs/kdad.md): a
    1000 x 1000 x 224 mosaic fits and scores in 78 s on one CPU thread under a 2048 MB budget (peak 1.9 GB).
    """

    name = "kdad"
    title = "KDAD (knowledge-distillation anomaly detector)"
    summary = "Fused spatial-spectral features, a distilled weighted autoencoder and a dictionary detector."
    reference = (
        "Zhao, Zhang, Qu, Wang, Zhao, 'Knowledge Distillation-Based Anomaly Detection for Thermal Infrared "
        "Hyperspectral Image', IEEE J. Sel. Topics Appl. Earth Observ. Remote Sens., 2025, "
        "doi:10.1109/JSTARS.2025.3622117."
    )
    family = "deep"
    trains = True
    min_pixels = 16
    requires = ("torch", "sklearn")
    test_params = {"epochs": 5}  # quick on a 24 x 24 x 24 crop in the contract checks
    params = (
        Param("ssfm", "bool", True, "Use the spatial-spectral fusion module (off: PCA image as X_fusion)."),
        Param("window", "choice", "dual", "SPAM window: dual (ring) or single.", choices=("dual", "single")),
        Param("inner", "int", 5, "Inner window size of SPAM (odd).", min=1, max=31, odd=True),
        Param("outer", "int", 7, "Outer window size of SPAM (odd).", min=3, max=33, odd=True),
        Param("branches", "choice", "dual", "SSFM autoencoder: dual or single branch.",
              choices=("dual", "single")),
        Param("pca_variance", "float", 0.95, "Fraction of variance the PCA keeps.", min=0.5, max=1.0),
        Param("min_components", "int", 20, "Fewest PCA components kept.", min=1, max=512),
        Param("keep_spectral", "bool", True, "X_fusion keeps the PCA image beside the SSFM latent maps."),
        Param("distill", "bool", True, "Knowledge distillation (off: WAE, the teacher's residual)."),
        Param("weights", "choice", "proposed", "Weight matrix: proposed, none (KDAE), recon (KDRWAE).",
              choices=("proposed", "none", "recon")),
        Param("apn", "bool", True, "Adaptive parameter network (off: fixed alpha and beta)."),
        Param("alpha", "float", 0.5, "Fixed reconstruction weight when apn is off.", min=0.0, max=10.0),
        Param("beta", "float", 0.5, "Fixed distillation weight when apn is off.", min=0.0, max=10.0),
        Param("final", "choice", "adm", "Final detector on E: adm (dictionary) or rx (global RX).",
              choices=("adm", "rx")),
        Param("degree", "choice", "mahal", "ADM anomaly degree: mahal, cos (paper eq. 28) or maxcos.",
              choices=("mahal", "cos", "maxcos")),
        Param("ridge", "float", 0.1, "ADM 'mahal': diagonal loading relative to the mean variance.",
              min=0.0, max=10.0),
        Param("clusters", "int", 5, "K of the K-means (weight matrix and ADM).", min=2, max=50),
        Param("a", "float", 0.25, "Background cluster-size threshold (fraction of pixels).", min=0.0, max=1.0),
        Param("b", "float", 0.15, "Anomaly-candidate cluster-size threshold (fraction).", min=0.0, max=1.0),
        Param("dict_fraction", "float", 0.1, "Fraction of each background cluster in the dictionary.",
              min=0.001, max=1.0),
        Param("patch", "int", 5, "Patch (pooling window) of the teacher and student encoders.",
              min=1, max=15, odd=True),
        Param("width", "int", 16, "Channels of the convolution layers.", min=2, max=256),
        Param("latent", "int", 8, "Latent channels per SSFM branch.", min=1, max=128),
        Param("p", "int", 16, "Teacher code size p.", min=1, max=256),
        Param("q", "int", 8, "Student code size q.", min=1, max=256),
        Param("epochs", "int", 60, "Full-image training steps per network.", min=1, max=10000),
        Param("lr", "float", 5e-3, "Adam learning rate.", min=1e-6, max=1.0),
        device_param(),
        Param("crops", "int", 64, "Training crops drawn from the scene (a scene of at most crops x crop_size^2 "
              "pixels is taken whole).", min=1, max=4096),
        Param("crop_size", "int", 32, "Side of a training crop in pixels.", min=16, max=4096),
        Param("seed", "int", 0, "Random seed (network initialisation, K-means, crop positions).", min=0),
    )

    #: side of the tiles the networks are applied on inside a block (bounds torch's memory; exact, with halo)
    NET_TILE = 256

    def context(self) -> Context:
        return Context(halo=self.receptive_radius(), global_stats=True, crops=self.crops,
                       crop_size=self.crop_size, seed=self.seed)

    def receptive_radius(self) -> int:
        """Pixels of context a score needs on every side: the SPAM window (``outer // 2``) and the SSFM
        encoder's 4 conv 3x3 (ssfm only), then the student's 3 conv 3x3 (the teacher's 5 without
        distillation) and the ``patch`` x ``patch`` pooling. The decoder, the z-scores and the ADM are
        per pixel."""
        r = self.outer // 2 + 4 if self.ssfm else 0
        return r + (3 if self.distill else 5) + self.patch // 2

    def _check_params(self) -> None:
        if self.inner >= self.outer:
            raise ParameterError(f"parameter 'inner' must be smaller than 'outer' ({self.outer}), got {self.inner}")
        if self.b > self.a:
            raise ParameterError(f"parameter 'b' must not exceed 'a' ({self.a}), got {self.b}")

    # ----------------------------------------------------------------------------------------- torch
    def _torch_device(self):
        from . import kdad_nets as _kdad_nets

        ns = build_nets(_kdad_nets.build, "kdad")
        torch = ns.torch
        return ns, torch_device(torch, self.device)

    def _train(self, torch, params, loss_fn, steps, progress):
        opt = torch.optim.Adam(params, lr=self.lr)
        for t in range(steps):
            opt.zero_grad()
            loss = loss_fn(t)
            loss.backward()
            opt.step()
            if t % 5 == 0 or t == steps - 1:
                progress.update((t + 1) / steps)
        return float(loss.detach())

    def _tiled(self, fn, img: np.ndarray, halo: int, c_out: int) -> np.ndarray:
        """``fn`` ((1, c, h, w) tensor -> (1, c_out, h, w) tensor) applied to ``img`` (H, W, c) on tiles of
        NET_TILE pixels with ``halo`` pixels of context (>= fn's receptive-field radius: exact); float64."""
        torch = self._torch_device()[0].torch
        dev = torch.device(self.device_)  # where the networks were fitted
        H, W, _ = img.shape
        out = np.empty((H, W, c_out))
        T = self.NET_TILE
        with torch.no_grad():
            for r in range(0, H, T):
                for c in range(0, W, T):
                    r0, r1, c0, c1 = max(r - halo, 0), min(r + T + halo, H), max(c - halo, 0), min(c + T + halo, W)
                    x = torch.from_numpy(np.ascontiguousarray(img[r0:r1, c0:c1].transpose(2, 0, 1)[None],
                                                              dtype=np.float32)).to(dev)
                    y = fn(x).to("cpu").double().numpy()[0].transpose(1, 2, 0)
                    rr, cc = min(r + T, H), min(c + T, W)
                    out[r:rr, c:cc] = y[r - r0:rr - r0, c - c0:cc - c0]
        return out

    # ----------------------------------------------------------------------------------------- stages
    def stages(self, cube, mask=None, progress=None) -> Dict[str, np.ndarray]:
        """Fit on ``cube`` (its crops) and score it as one block; return the intermediate maps (for tests and
        the docs).

        Keys: ``spam`` (H, W), ``pca`` (H, W, d), ``fusion`` (H, W, c), ``weights`` (H, W; the weight matrix
        of the training crops, 0 outside them), ``residual`` (H, W, c), ``E`` (H, W, 2c), ``scores`` (H, W);
        zeros at invalid pixels.
        """
        from ..base import prepare_cube
        from ..context import crop_windows, fit_data_from_cube
        from ..progress import as_progress

        prog = as_progress(progress)
        X, valid = prepare_cube(cube, mask, min_bands=self.min_bands, min_pixels=self.min_pixels, who=self.name)
        ctx = self.context()
        self._fit(fit_data_from_cube(X, valid, ctx), prog.sub(0.0, 0.9))
        out = self._maps(X, valid, keep=True)
        w = np.zeros(valid.shape)
        wins = [(r0, r1, c0, c1) for r0, r1, c0, c1 in crop_windows(X.shape, ctx.crops, ctx.crop_size, ctx.seed)
                if valid[r0:r1, c0:c1].any()]
        for (r0, r1, c0, c1), wm in zip(wins, self.crop_weights_):
            w[r0:r1, c0:c1] = np.where(valid[r0:r1, c0:c1], wm, w[r0:r1, c0:c1])
        out["weights"] = w
        prog.update(1.0)
        return out

    def _detect(self, cube, mask, progress):
        from ..context import fit_data_from_cube

        self._fit(fit_data_from_cube(cube, mask, self.context()), progress.sub(0.0, 0.9))
        return self._score(cube, mask, progress.sub(0.9, 1.0))

    # ----------------------------------------------------------------------------------------- fit
    def _inputs(self, X, mask):
        """The whitened PCA image (h, w, d) and the z-scored SPAM (h, w, 1) of a block; 0 at invalid pixels."""
        spam = spatial_information_map(X, mask, self.inner, self.outer, dual=(self.window == "dual"),
                                       mean=self.mean_) if self.ssfm else np.zeros(mask.shape)
        pca = np.zeros(mask.shape + (self.pca_.d,))
        P, Xf = pca.reshape(-1, self.pca_.d), X.reshape(-1, X.shape[2])
        idx = np.flatnonzero(mask.reshape(-1))
        step = self.pca_.step(X.shape[2])
        for a in range(0, idx.size, step):  # the valid pixels, never all copied at once
            P[idx[a:a + step]] = self.pca_(Xf[idx[a:a + step]])
        return pca, spam

    def _fused(self, pca, spam, mask):
        """X_fusion (h, w, c) of a block from its PCA image and SPAM; 0 at invalid pixels."""
        if not self.ssfm:
            return pca
        spam_z = np.zeros(mask.shape + (1,))
        spam_z[mask] = self.spam_z_(spam[mask][:, None])
        ae = self.ae_
        d = pca.shape[2]
        both = np.concatenate([pca, spam_z], axis=2)
        lat = self._tiled(lambda x: ae.encode(x[:, :d], x[:, d:]), both, 4, 2 * self.latent)
        fusion = np.zeros(lat.shape)
        fusion[mask] = self.fusion_z_(lat[mask])
        if self.keep_spectral:
            fusion = np.concatenate([pca, fusion], axis=2)
        return fusion

    def _reconstruct(self, fusion):
        """The student's reconstruction of X_fusion through the shared decoder (the teacher's without
        distillation, its normalisation frozen to the training statistics)."""
        c = fusion.shape[2]
        if self.distill:
            student, decoder = self.student_, self.decoder_
            return self._tiled(lambda x: decoder(student(x)), fusion, 3 + self.patch // 2, c)
        teacher, mapper, decoder, stats = self.teacher_, self.mapper_, self.decoder_, self.norm_stats_
        return self._tiled(lambda x: decoder(mapper(teacher.forward_frozen(x, stats))), fusion,
                           5 + self.patch // 2, c)

    def _fit(self, data, progress):
        from ..errors import InputError

        ns, dev = self._torch_device()
        torch = ns.torch
        self.device_ = str(dev)
        mom = data.moments
        self.mean_ = _f32(mom.mean)  # SPAM's centre, rounded as the PCA basis is (see PCABasis)
        self.pca_ = PCABasis.of_moments(mom, self.pca_variance, self.min_components, rounded=True)
        crops = [(X, m) for X, m in data.crops if m.any()]
        masks = [m for _, m in crops]
        sizes = [int(m.sum()) for m in masks]
        if sum(sizes) < self.min_pixels:
            raise InputError(f"{self.name}: the training crops hold {sum(sizes)} valid pixels, fewer than "
                             f"{self.min_pixels}; raise 'crops' or 'crop_size'")
        ins = [self._inputs(X, m) for X, m in crops]
        pca_v = np.concatenate([p[m] for (p, _), m in zip(ins, masks)])
        progress.update(0.05)

        def maps(v):  # rows of the crops' valid pixels (sum n, ...) -> per-crop (h, w, ...) maps
            out, at = [], 0
            for m, n in zip(masks, sizes):
                a = np.zeros(m.shape + v.shape[1:])
                a[m] = v[at:at + n]
                out.append(a)
                at += n
            return out

        def batch(imgs):  # per-crop (h, w, c) maps -> (N, c, h, w) float32 tensor
            return torch.from_numpy(np.ascontiguousarray(np.stack(imgs).transpose(0, 3, 1, 2),
                                                         dtype=np.float32)).to(dev)

        mask_t = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None].to(dev)

        def wmse(x, y, w):  # weighted mean over valid pixels of the per-pixel squared error
            return ((x - y).pow(2).mean(dim=1, keepdim=True) * w).sum() / w.sum().clamp_min(1e-12)

        with session(torch, seed=self.seed, cuda=dev.type == "cuda"):

            # ---------------- SSFM
            if self.ssfm:
                self.spam_z_ = ZScore(np.concatenate([sp[m] for (_, sp), m in zip(ins, masks)])[:, None])
                spam_z = maps(self.spam_z_(np.concatenate([sp[m] for (_, sp), m in zip(ins, masks)])[:, None]))
                a_t, b_t = batch([p for p, _ in ins]), batch(spam_z)
                ae = ns.SSFMAutoencoder(a_t.shape[1], 1, self.width, self.latent,
                                        dual=(self.branches == "dual")).to(dev)
                target = torch.cat([a_t, b_t], dim=1)
                self._train(torch, ae.parameters(), lambda t: wmse(ae(a_t, b_t)[1], target, mask_t),
                            self.epochs, progress.sub(0.05, 0.35))
                ae.train(False)
                for prm in ae.parameters():
                    prm.requires_grad_(False)
                with torch.no_grad():
                    lat = ae.encode(a_t, b_t).to("cpu").double().numpy().transpose(0, 2, 3, 1)
                self.ae_ = ae
                self.fusion_z_ = ZScore(np.concatenate([l[m] for l, m in zip(lat, masks)]))
                fusion = [self._fused(p, sp, m) for (p, sp), m in zip(ins, masks)]
            else:
                fusion = [p for p, _ in ins]
            x_t = batch(fusion)
            c = x_t.shape[1]

            # ---------------- weight matrix
            if self.weights == "proposed":
                w = weight_matrix(pca_v, self.clusters, self.a, self.b, self.seed)
            else:
                w = np.ones(pca_v.shape[0])
            w_t = batch(maps(w[:, None])) * mask_t
            progress.update(0.4)

            # ---------------- teacher (eq. 12)
            teacher = ns.PatchEncoder(c, self.width, 5, self.p, self.patch, norm=True).to(dev)
            mapper = torch.nn.Conv2d(self.p, self.q, 1).to(dev)
            decoder = ns.Decoder(self.q, self.width, c).to(dev)
            t_params = list(teacher.parameters()) + list(mapper.parameters()) + list(decoder.parameters())

            def t_recon():
                return decoder(mapper(teacher(x_t)))

            if self.weights == "recon":
                half = max(1, self.epochs // 2)
                self._train(torch, t_params, lambda t: wmse(t_recon(), x_t, mask_t), half,
                            progress.sub(0.4, 0.5))
                with torch.no_grad():
                    e = (t_recon() - x_t).pow(2).mean(dim=1).to("cpu").double().numpy()
                e = np.concatenate([ee[m] for ee, m in zip(e, masks)])
                span = e.max() - e.min()
                w = 1.0 - (e - e.min()) / span if span > 0 else np.ones(e.shape[0])
                w_t = batch(maps(w[:, None])) * mask_t
                steps, sub = self.epochs - half, progress.sub(0.5, 0.65)
            else:
                steps, sub = self.epochs, progress.sub(0.4, 0.65)
            if steps > 0:
                self._train(torch, t_params, lambda t: wmse(t_recon(), x_t, w_t), steps, sub)
            self.crop_weights_ = [wm[..., 0] for wm in maps(w[:, None])]
            for prm in t_params:
                prm.requires_grad_(False)
            self.decoder_ = decoder

            # ---------------- student (eq. 14-21)
            if self.distill:
                with torch.no_grad():
                    t_code = mapper(teacher(x_t))
                student = ns.PatchEncoder(c, self.width, 3, self.q, self.patch, norm=False).to(dev)
                s_params = list(student.parameters())
                apn = None
                if self.apn:
                    apn = ns.APN(self.q).to(dev)
                    s_params += list(apn.parameters())
                T = self.epochs

                def s_loss(t):
                    s_code = student(x_t)
                    l_rec = wmse(decoder(s_code), x_t, w_t)
                    l_kd = wmse(s_code, t_code, mask_t)
                    if apn is not None:
                        r_diff = apn(t_code, s_code)
                        if r_diff.dim() > 0:  # several crops: one alpha for the batch
                            r_diff = r_diff.mean()
                        alpha = (0.5 + 0.5 * t / max(T - 1, 1)) * r_diff
                        return alpha * l_rec + (1.0 - alpha) * l_kd
                    return self.alpha * l_rec + self.beta * l_kd

                self._train(torch, s_params, s_loss, T, progress.sub(0.65, 0.9))
                for prm in s_params:
                    prm.requires_grad_(False)
                self.student_ = student
            else:
                # the teacher is applied block by block: its layer normalisation over the image is frozen to
                # the statistics of the training crops (pooled), so scores do not depend on the block
                self.teacher_, self.mapper_ = teacher, mapper
                with torch.no_grad():
                    self.norm_stats_ = teacher.norm_stats(x_t)

            # ---------------- ADM (or RX) on the crops' E
            Ev = np.concatenate([self._features(f, m)[m] for f, m in zip(fusion, masks)])
        if self.final == "rx":
            mu, cov = mean_cov(Ev)
            self.rx_ = (mu, inv_psd(cov))
        else:
            self.adm_ = ADM(Ev, self.clusters, self.a, self.b, self.dict_fraction, self.seed, self.degree,
                            self.ridge)
        progress.update(1.0)

    # ----------------------------------------------------------------------------------------- score
    def _features(self, fusion, mask):
        """E = [X_fusion, R_E] (eq. 26-27) of a block; 0 at invalid pixels."""
        residual = np.where(mask[..., None], fusion - self._reconstruct(fusion), 0.0)  # eq. 26
        return np.concatenate([fusion, residual], axis=2)

    def _degree(self, Ev):
        return mahalanobis_sq(Ev, *self.rx_) if self.final == "rx" else self.adm_(Ev)

    def _maps(self, X, mask, keep=False):
        torch = self._torch_device()[0].torch
        with session(torch):
            pca, spam = self._inputs(X, mask)
            fusion = self._fused(pca, spam, mask)
            if keep:
                E = self._features(fusion, mask)
                s = np.zeros(mask.shape)
                s[mask] = self._degree(E[mask])
                c = fusion.shape[2]
                return {"spam": spam, "pca": pca, "fusion": fusion, "residual": E[..., c:], "E": E, "scores": s}
            del pca, spam
            recon = self._reconstruct(fusion)
        # E = [X_fusion, X_fusion - reconstruction] (eq. 26-27) and its degree, a chunk of valid pixels at a
        # time (E of the whole block is never held)
        c = fusion.shape[2]
        F, R = fusion.reshape(-1, c), recon.reshape(-1, c)
        idx = np.flatnonzero(mask.reshape(-1))
        s = np.zeros(mask.size)
        for a in range(0, idx.size, 65536):
            ix = idx[a:a + 65536]
            f = F[ix]
            s[ix] = self._degree(np.concatenate([f, f - R[ix]], axis=1))
        return {"scores": s.reshape(mask.shape)}

    def _score(self, block, mask, progress):
        out = self._maps(block, mask)["scores"]
        progress.update(1.0)
        return out

    def working_bytes(self, h, w, bands):
        # numpy: SPAM's unit spectra (B float64) while it runs; afterwards the PCA image, SPAM and the SSFM
        # latent maps, then X_fusion and its reconstruction (about 5 c channels float64 in all, c = 20 + 2
        # latent; E is scored a chunk of pixels at a time); torch (measured under 600 B per pixel of a
        # tile): one NET_TILE tile with its halo, its input, activations and output
        c = max(self.min_components, 20) + 2 * self.latent
        per_px = max((bands + 40) * 8, 5 * c * 8 + 64)
        t = self.NET_TILE + 2 * self.receptive_radius()
        return h * w * per_px + min(h, t) * min(w, t) * (8 * self.width + 8 * c) * 4

    def state_bytes(self, bands):
        # PCA basis, the crops' features for the fit (not held while scoring), networks, ADM dictionary
        c = max(self.min_components, 20) + 2 * self.latent
        return bands * bands * 8 + self.crops * self.crop_size ** 2 * 2 * c * 8 // 4 + 8 * 2**20
