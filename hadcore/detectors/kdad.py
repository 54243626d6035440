"""KDAD: knowledge-distillation-based anomaly detection (Zhao et al., IEEE JSTARS 2025)."""

from __future__ import annotations

import warnings
from typing import Dict

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from ..base import Context, Detector
from ..errors import HadcoreError, ParameterError
from ..linalg import inv_psd, mahalanobis_sq, mean_cov
from ..params import Param

__all__ = ["KDAD"]


# ---------------------------------------------------------------------------------------------------------
# numpy stages (public helpers of this module; tested on their own)
# ---------------------------------------------------------------------------------------------------------
def spatial_information_map(cube: np.ndarray, mask: np.ndarray, inner: int = 5, outer: int = 7,
                            dual: bool = True) -> np.ndarray:
    """SPAM (Sec. III-A): 1 - mean cosine similarity of each pixel to the pixels of its window.

    ``dual=True``: the ring between the inner and the outer window (outer^2 - inner^2 pixels, 7^2 - 5^2 = 24
    by default); ``dual=False`` (single-window ablation): every pixel of the outer window but the centre
    (7^2 - 1 = 48). Spectra are centred on the scene mean (over valid pixels) before the cosine, because
    radiance spectra are all positive and nearly parallel (raw cosines all lie near 1). Border rule: only
    window pixels that lie inside the image and are valid count; a pixel with none gets 0. High = unlike its
    surroundings. Returns (H, W) float64.
    """
    H, W, _ = cube.shape
    mu = cube[mask].mean(axis=0)
    Xc = np.where(mask[..., None], cube - mu, 0.0)
    nrm = np.linalg.norm(Xc, axis=2)
    U = np.where(nrm[..., None] > 0, Xc / np.maximum(nrm, 1e-300)[..., None], 0.0)
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


def pca_reduce(pixels: np.ndarray, variance: float = 0.95, min_components: int = 1):
    """PCA of the valid pixels (N, B) keeping ``variance`` of the variance (at least ``min_components``).

    Returns (scores (N, d) whitened to unit variance per component, d). Whitening is our choice: the
    networks and K-means then weigh every kept direction alike (as RX does) instead of the first one only.
    """
    mu, cov = mean_cov(pixels)
    w, V = np.linalg.eigh(cov)
    w, V = w[::-1], V[:, ::-1]
    w = np.clip(w, 0.0, None)
    total = w.sum()
    if total <= 0:
        d = 1
    else:
        d = int(np.searchsorted(np.cumsum(w) / total, variance) + 1)
    d = int(min(max(d, min_components), pixels.shape[1], max(pixels.shape[0] - 1, 1)))
    Z = (pixels - mu) @ V[:, :d]
    sd = np.sqrt(w[:d])
    # components without variance (a constant scene) stay 0 instead of dividing by 0
    return np.where(sd > 1e-12 * max(np.sqrt(total), 1e-300), Z / np.where(sd > 0, sd, 1.0), 0.0), d


def _zscore(V: np.ndarray) -> np.ndarray:
    """Columns of V (N, c) to zero mean, unit variance; a column that is constant up to float32 rounding
    (relative spread < 1e-5) becomes 0 instead of amplified rounding noise."""
    mu, sd = V.mean(axis=0), V.std(axis=0)
    flat = sd <= 1e-5 * (np.abs(mu) + np.abs(V).max(axis=0) + 1e-30)
    return np.where(flat, 0.0, (V - mu) / np.where(flat, 1.0, sd))


def _cluster(F: np.ndarray, k: int, seed: int):
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
    """
    Z = _zscore(E)
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
        return mahalanobis_sq(Z, D.mean(axis=0), inv_psd(cov, ridge=ridge))
    Zn = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
    Dn = D / np.maximum(np.linalg.norm(D, axis=1, keepdims=True), 1e-12)
    if degree == "cos":
        return 1.0 - Zn @ Dn.mean(axis=0)  # mean of the cosines = cosine against the mean unit atom
    best = np.full(Z.shape[0], -np.inf)
    for s in range(0, Dn.shape[0], 2048):
        best = np.maximum(best, (Zn @ Dn[s:s + 2048].T).max(axis=1))
    return 1.0 - best


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
      pixel's patch. We run them fully convolutionally on the whole image: conv 3x3 layers, a
      ``patch`` x ``patch`` stride-1 average pooling (the pooling over the pixel's patch) and a 1x1 conv
      (the FC layer). This equals a per-patch encoder up to the patch-border padding and costs one image
      pass instead of one pass per patch. Each training epoch is one full-image gradient step (Adam,
      learning rate ``lr``); there is no data order, hence no unseeded shuffling.
    - *Normalisation* in the teacher: GroupNorm with one group (layer norm over the image), since the whole
      scene is one batch element and batch norm would then be degenerate.
    - *Scaling.* PCA components are whitened (unit variance each); SPAM and the latent maps are z-scored.
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
      full-image Adam steps per network at learning rate 5e-3: chosen for the 30 s budget on 2 CPU cores
      (docs/kdad.md).

    Ablations (Tables II and VI): ``ssfm`` (off: E uses the whitened PCA image as X_fusion), ``window``
    (dual / single), ``branches`` (dual / single), ``distill`` (off = WAE: the teacher autoencoder's
    residual), ``weights`` (proposed / none = KDAE / recon = KDRWAE: W from a warm-up reconstruction error),
    ``apn`` (off: fixed ``alpha``, ``beta``), ``final`` (adm / rx: global RX on E).

    Determinism: torch's global RNG is forked and seeded from ``seed``, deterministic algorithms are on
    while the detector runs, K-means takes ``random_state=seed``: same input, seed and torch thread count
    give bitwise-identical scores on CPU (another thread count changes float reductions, last digits only).

    Context: the whole scene (K-means, networks trained per scene).
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
        Param("device", "choice", "auto", "Torch device: auto (GPU if present), cpu or cuda.",
              choices=("auto", "cpu", "cuda")),
        Param("seed", "int", 0, "Random seed.", min=0),
    )

    def context(self) -> Context:
        return Context(whole_scene=True)

    def _check_params(self) -> None:
        if self.inner >= self.outer:
            raise ParameterError(f"parameter 'inner' must be smaller than 'outer' ({self.outer}), got {self.inner}")
        if self.b > self.a:
            raise ParameterError(f"parameter 'b' must not exceed 'a' ({self.a}), got {self.b}")

    # ----------------------------------------------------------------------------------------- torch
    def _torch_device(self):
        try:
            from .. import _kdad_nets
            ns = _kdad_nets.build()
        except ImportError as exc:
            raise HadcoreError(f"kdad needs torch (pip install 'hadcore[torch]'): {exc}") from None
        torch = ns.torch
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ParameterError("parameter 'device': 'cuda' was asked for but torch sees no CUDA device")
        dev = "cuda" if (self.device in ("auto", "cuda") and torch.cuda.is_available()) else "cpu"
        return ns, torch.device(dev)

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

    # ----------------------------------------------------------------------------------------- stages
    def stages(self, cube, mask=None, progress=None) -> Dict[str, np.ndarray]:
        """Run the pipeline and return its intermediate maps (for tests and the docs).

        Keys: ``spam`` (H, W), ``pca`` (H, W, d), ``fusion`` (H, W, c), ``weights`` (H, W), ``residual``
        (H, W, c), ``E`` (H, W, 2c), ``scores`` (H, W); zeros at invalid pixels.
        """
        from ..base import prepare_cube
        from ..progress import as_progress

        X, valid = prepare_cube(cube, mask, min_bands=self.min_bands, min_pixels=self.min_pixels, who=self.name)
        return self._run(X, valid, as_progress(progress))

    def _detect(self, cube, mask, progress):
        return self._run(cube, mask, progress)["scores"]

    def _run(self, cube, mask, progress):
        ns, dev = self._torch_device()
        torch = ns.torch
        H, W, _ = cube.shape
        N = int(mask.sum())
        out: Dict[str, np.ndarray] = {}

        def to_map(v):  # (N, c) -> (H, W, c) with zeros at invalid pixels
            m = np.zeros((H, W) + v.shape[1:])
            m[mask] = v
            return m

        def to_t(img):  # (H, W, c) -> (1, c, H, W) float32 tensor
            return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)).to(dev)

        def to_np(t):  # (1, c, H, W) -> (H, W, c) float64
            return t.detach().to("cpu").double().numpy()[0].transpose(1, 2, 0)

        pixels = cube[mask]
        pca, _ = pca_reduce(pixels, self.pca_variance, self.min_components)
        out["pca"] = to_map(pca)
        spam = spatial_information_map(cube, mask, self.inner, self.outer, dual=(self.window == "dual"))
        spam_z = to_map(_zscore(spam[mask][:, None]))[..., 0]
        out["spam"] = spam
        progress.update(0.05)

        mask_t = torch.from_numpy(mask.astype(np.float32))[None, None].to(dev)

        def wmse(x, y, w):  # weighted mean over valid pixels of the per-pixel squared error
            return ((x - y).pow(2).mean(dim=1, keepdim=True) * w).sum() / w.sum().clamp_min(1e-12)

        with torch.random.fork_rng(devices=[]), _deterministic(torch):
            torch.manual_seed(self.seed)
            if dev.type == "cuda":
                torch.cuda.manual_seed_all(self.seed)

            # ---------------- SSFM
            if self.ssfm:
                a_t, b_t = to_t(out["pca"]), to_t(spam_z[..., None])
                ae = ns.SSFMAutoencoder(a_t.shape[1], 1, self.width, self.latent,
                                        dual=(self.branches == "dual")).to(dev)
                target = torch.cat([a_t, b_t], dim=1)
                self._train(torch, ae.parameters(), lambda t: wmse(ae(a_t, b_t)[1], target, mask_t),
                            self.epochs, progress.sub(0.05, 0.35))
                with torch.no_grad():
                    fusion = to_np(ae.encode(a_t, b_t))
                fusion = to_map(_zscore(fusion[mask]))
                if self.keep_spectral:
                    fusion = np.concatenate([out["pca"], fusion], axis=2)
            else:
                fusion = out["pca"]
            out["fusion"] = fusion
            x_t = to_t(fusion)
            c = x_t.shape[1]

            # ---------------- weight matrix
            if self.weights == "proposed":
                w = weight_matrix(pca, self.clusters, self.a, self.b, self.seed)
            else:
                w = np.ones(N)
            w_t = torch.from_numpy(to_map(w[:, None])[..., 0].astype(np.float32))[None, None].to(dev) * mask_t
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
                    e = to_np((t_recon() - x_t).pow(2).mean(dim=1, keepdim=True))[..., 0][mask]
                span = e.max() - e.min()
                w = 1.0 - (e - e.min()) / span if span > 0 else np.ones(N)
                w_t = torch.from_numpy(to_map(w[:, None])[..., 0].astype(np.float32))[None, None].to(dev) * mask_t
                steps, sub = self.epochs - half, progress.sub(0.5, 0.65)
            else:
                steps, sub = self.epochs, progress.sub(0.4, 0.65)
            if steps > 0:
                self._train(torch, t_params, lambda t: wmse(t_recon(), x_t, w_t), steps, sub)
            out["weights"] = to_map(w[:, None])[..., 0]

            # ---------------- student (eq. 14-21)
            if self.distill:
                for prm in t_params:
                    prm.requires_grad_(False)
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
                        r_step = 0.5 + 0.5 * t / max(T - 1, 1)
                        alpha = r_step * apn(t_code, s_code)
                        return alpha * l_rec + (1.0 - alpha) * l_kd
                    return self.alpha * l_rec + self.beta * l_kd

                self._train(torch, s_params, s_loss, T, progress.sub(0.65, 0.9))
                with torch.no_grad():
                    recon = decoder(student(x_t))
            else:
                with torch.no_grad():
                    recon = t_recon()
            residual = np.where(mask[..., None], fusion - to_np(recon), 0.0)  # eq. 26
        out["residual"] = residual
        E = np.concatenate([fusion, residual], axis=2)  # eq. 27
        out["E"] = E
        progress.update(0.92)

        # ---------------- ADM
        Ev = E[mask]
        if self.final == "rx":
            mu, cov = mean_cov(Ev)
            s = mahalanobis_sq(Ev, mu, inv_psd(cov))
        else:
            s = adm_scores(Ev, self.clusters, self.a, self.b, self.dict_fraction, self.seed, self.degree,
                           self.ridge)
        out["scores"] = to_map(s[:, None])[..., 0]
        return out


class _deterministic:
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
