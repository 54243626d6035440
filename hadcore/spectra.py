"""The spectra behind each detection (issue 26): per detection its mean, standard deviation and peak-pixel
spectra, and the background's, in the scene's own units, on its selected bands (numpy only).

They are gathered **in the pass that writes the scores**: a :class:`SpectraCollector` is handed to the engine
(:func:`hadcore.engine.run_scene` ``observer=``) and sees every scored block together with the raw block it was
read from. It keeps

- the running sums (shifted by the first block's mean, for a stable variance) of every valid pixel, each pixel
  counted once (in its own block, never in a halo);
- the spectra of the highest-scoring pixels, at most ``capacity`` of them (64 MB by default), with the largest
  score it had to let go.

The detections are known only when every score is (a percentile threshold needs them all), so
:meth:`SpectraCollector.finish` takes the label image afterwards: each detection pixel's spectrum comes from the
kept pixels; a detection pixel that was not kept (a threshold below the kept scores, or a blended tile whose
final score rose above its tile's) is read again from the scene, in windows around those pixels only, and
the result says how many were. A run on Dask, whose blocks are scored on the workers, keeps nothing here: its
spectra are read again after the run (:meth:`SpectraCollector.empty`). The background is every valid pixel
outside the detections: the totals minus the detections' sums.

A swath product (EMIT before orthorectification) is scored on the swath and labelled on its map grid: a map
pixel's spectrum is the one of the swath pixel the lookup table gives it (``output.rows``/``output.cols``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .errors import InputError

__all__ = ["SpectraCollector", "DetectionSpectra", "detection_spectra", "SPECTRA_COLUMNS", "library_matches",
           "expected_detections"]

MB = 2 ** 20
#: the long table's columns: one row per detection (id 0 = the background) and band
SPECTRA_COLUMNS = ["id", "band", "wavelength_nm", "mean", "std", "peak", "pixels"]


def expected_detections(threshold, n_pixels: int) -> Optional[int]:
    """How many pixels a threshold spec will flag among ``n_pixels`` when that is known before the scores are
    (``top:N``; ``percentile:P`` of at most ``n_pixels`` valid ones), else None."""
    from .threshold import parse_threshold

    ts = parse_threshold(threshold)
    if ts.kind == "top":
        return int(ts.value)
    if ts.kind == "percentile":
        return int(np.ceil((1.0 - ts.value / 100.0) * n_pixels))
    return None


class SpectraCollector:
    """The engine's observer of the score pass (see the module docstring).

    ``n_bands``: bands of the raw blocks; ``width``: the scored grid's width (the swath's for a swath
    product); ``floor``: a score below which no pixel can be a detection (a ``value:`` or ``fpr:`` threshold known
    before the run), or None; ``budget_mb``: memory for the kept spectra; ``expected``: how many detection pixels
    the threshold will give when that is known before the run (``top:N``, a percentile of the pixels): the
    capacity grows to hold them with a quarter to spare, up to ``max_mb``, so that none is read again (reading
    23,400 scattered pixels again took 42 s on a 7 GB scene).
    """

    def __init__(self, n_bands: int, width: int, floor: Optional[float] = None, budget_mb: float = 64.0,
                 expected: Optional[int] = None, max_mb: float = 512.0):
        self.B = int(n_bands)
        self.width = int(width)
        self.floor = floor
        # a kept pixel costs its spectrum (as read: float32 for most rasters, float64 at most), key and score;
        # twice the capacity is held between prunes, and a prune copies what it holds once
        per_pixel = 4 * (8 * self.B + 16)
        self.capacity = max(256, int(budget_mb * MB / per_pixel))
        if expected:
            self.capacity = max(self.capacity, min(int(1.25 * expected) + 1, int(max_mb * MB / per_pixel)))
        #: the most memory (MB) the kept pixels take: what a caller leaves out of the engine's budget
        self.footprint_mb = self.capacity * per_pixel / MB
        self.shift: Optional[np.ndarray] = None
        self.s1 = np.zeros(self.B)
        self.s2 = np.zeros(self.B)
        self.n = 0
        self._keys: List[np.ndarray] = []
        self._scores: List[np.ndarray] = []
        self._spectra: List[np.ndarray] = []
        self._held = 0
        self.dropped_max = -np.inf
        self.complete = True  # every valid pixel was seen (False: the totals need a read of the scene)

    def engine_budget(self, mem_limit_mb: Optional[float]) -> float:
        """The engine's share of a memory budget (MB; None: the engine's default): what the kept pixels may take
        is left out of it, at least 64 MB (or the whole budget when smaller) left to the engine."""
        from .engine import default_mem_limit_mb

        total = float(mem_limit_mb) if mem_limit_mb is not None else float(default_mem_limit_mb())
        return max(total - self.footprint_mb, min(total, 64.0))

    @classmethod
    def empty(cls, n_bands: int, width: int) -> "SpectraCollector":
        """A collector that saw nothing (a run on Dask): :meth:`finish` reads what it needs."""
        c = cls(n_bands, width)
        c.complete = False
        return c

    # ------------------------------------------------------------------ the score pass
    def observe(self, core, outer, raw, valid, scores, scores_window) -> None:
        """One scored block: ``raw``/``valid`` as read over ``outer`` (r0, r1, c0, c1), ``scores`` over
        ``scores_window`` (the core, or the whole outer tile when tiles are blended); ``core`` is the part of the
        scene this block owns (its pixels enter the totals once)."""
        R0, R1, C0, C1 = outer
        if raw.shape[:2] != (R1 - R0, C1 - C0) or raw.shape[2] != self.B:
            self.complete = False  # not the block that was scored: never guess
            return
        r0, r1, c0, c1 = core
        X = raw[r0 - R0:r1 - R0, c0 - C0:c1 - C0]
        ok = valid[r0 - R0:r1 - R0, c0 - C0:c1 - C0]
        self._add_totals(np.asarray(X[ok], dtype=np.float64))
        # candidates: the block's highest scores among valid pixels
        S0, S1, T0, T1 = scores_window
        s = np.asarray(scores, dtype=np.float64)
        vs = valid[S0 - R0:S1 - R0, T0 - C0:T1 - C0]
        cand = np.isfinite(s) & vs
        if self.floor is not None:
            cand &= s >= self.floor
        idx = np.flatnonzero(cand)
        if idx.size == 0:
            return
        vals = s.ravel()[idx]
        if idx.size > self.capacity:
            part = np.argpartition(-vals, self.capacity - 1)
            self.dropped_max = max(self.dropped_max, float(vals[part[self.capacity:]].max()))
            idx, vals = idx[part[:self.capacity]], vals[part[:self.capacity]]
        h, w = s.shape
        rr, cc = np.divmod(idx, w)
        Xs = raw[S0 - R0:S1 - R0, T0 - C0:T1 - C0]
        self._keys.append((rr + S0).astype(np.int64) * self.width + (cc + T0))
        self._scores.append(vals)
        keep_dtype = np.float32 if Xs.dtype == np.float32 else np.float64  # exactly the values read
        self._spectra.append(np.asarray(Xs[rr, cc], dtype=keep_dtype))
        self._held += idx.size
        if self._held > 2 * self.capacity:
            self._prune()

    def _add_totals(self, px: np.ndarray) -> None:
        """Valid pixels (N, B) float64 into the shifted running sums (the shift: the first pixels' mean)."""
        if not px.shape[0]:
            return
        if self.shift is None:
            self.shift = px.mean(axis=0)
        d = px - self.shift
        self.s1 += d.sum(axis=0)
        self.s2 += np.einsum("ij,ij->j", d, d)
        self.n += px.shape[0]

    def _prune(self) -> None:
        keys, scores, spectra = self._merged()
        if keys.size > self.capacity:
            part = np.argpartition(-scores, self.capacity - 1)
            self.dropped_max = max(self.dropped_max, float(scores[part[self.capacity:]].max()))
            keep = np.sort(part[:self.capacity])
            keys, scores, spectra = keys[keep], scores[keep], spectra[keep]
        self._keys, self._scores, self._spectra = [keys], [scores], [spectra]
        self._held = keys.size

    def _merged(self):
        if not self._keys:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros((0, self.B))
        keys = np.concatenate(self._keys)
        scores = np.concatenate(self._scores)
        # a pixel seen in two overlapping tiles: once, with its larger score
        order = np.lexsort((-scores, keys))
        keys = keys[order]
        first = np.ones(keys.size, dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        sel = order[first]
        return keys[first], scores[sel], np.concatenate(self._spectra)[sel]

    # ------------------------------------------------------------------ after the run
    def finish(self, labels, table, source, output=None, wavelengths=None, band_numbers=None,
               units: Optional[str] = None) -> "DetectionSpectra":
        """The :class:`DetectionSpectra` of the detections in ``labels`` (the score grid's label image,
        :func:`hadcore.components.label_detections`), ``table`` their rows (``id``, ``peak_row``, ``peak_col``);
        ``source`` the scene source (raw blocks), read again only for what the pass did not keep.

        ``labels`` must mark valid pixels only (detections of finite scores are). On a swath product a
        detection's ``pixels`` counts map-grid pixels (a swath pixel the lookup table shows twice counts twice,
        as it covers twice the map area); the background counts each swath pixel once."""
        return detection_spectra(self, labels, table, source, output=output, wavelengths=wavelengths,
                                 band_numbers=band_numbers, units=units)


@dataclass
class DetectionSpectra:
    """Spectra of detections, on the scene's selected bands, in its units.

    ``ids`` (n,) detection ids (1 = the highest peak, as the polygons); ``pixels`` (n,); ``mean``/``std``
    (population standard deviation over the detection's pixels)/``peak`` (the peak pixel's spectrum) (n, B);
    the background's ``background_mean``/``background_std`` (B,) over ``background_pixels`` pixels;
    ``wavelengths`` (B,) nm or None; ``bands`` (B,) 1-based band numbers in the file; ``reread`` pixels read
    again after the pass.
    """

    ids: np.ndarray
    pixels: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    peak: np.ndarray
    background_mean: np.ndarray
    background_std: np.ndarray
    background_pixels: int
    wavelengths: Optional[np.ndarray] = None
    bands: Optional[np.ndarray] = None
    units: Optional[str] = None
    reread: int = 0
    notes: List[str] = field(default_factory=list)

    @property
    def n_bands(self) -> int:
        return int(self.background_mean.shape[0])

    def spectrum(self, det_id: int, stat: str = "mean") -> np.ndarray:
        """One detection's ``mean``, ``std`` or ``peak`` spectrum (id 0: the background's mean or std)."""
        if stat not in ("mean", "std", "peak"):
            raise InputError(f"unknown spectrum statistic {stat!r}; use mean, std or peak")
        if int(det_id) == 0:
            if stat == "peak":
                raise InputError("the background has no peak spectrum; use mean or std")
            return self.background_mean if stat == "mean" else self.background_std
        hit = np.flatnonzero(self.ids == int(det_id))
        if hit.size == 0:
            known = ", ".join(str(int(i)) for i in self.ids[:10]) or "none"
            raise InputError(f"no detection with id {det_id}; ids: {known}"
                             + (f" ... ({self.ids.size} in all)" if self.ids.size > 10 else ""))
        return getattr(self, stat)[hit[0]]

    # ------------------------------------------------------------------ the long table
    def to_columns(self) -> dict:
        """The long table (:data:`SPECTRA_COLUMNS`): one row per band of the background (id 0), then of each
        detection; ``peak`` of the background is NaN."""
        parts = list(self.iter_columns(chunk=max(1, self.ids.size)))
        return {c: np.concatenate([p[c] for p in parts]) for c in SPECTRA_COLUMNS}

    def iter_columns(self, chunk: int = 2000):
        """The long table of :meth:`to_columns` in parts: the background's rows, then ``chunk`` detections at a
        time (a writer holds one part, not a table of detections x bands rows)."""
        B = self.n_bands
        wl = np.asarray(self.wavelengths if self.wavelengths is not None else np.full(B, np.nan), dtype=np.float64)
        bands = np.asarray(self.bands if self.bands is not None else np.arange(1, B + 1), dtype=np.int64)
        yield {"id": np.zeros(B, np.int64), "band": bands, "wavelength_nm": wl, "mean": self.background_mean,
               "std": self.background_std, "peak": np.full(B, np.nan),
               "pixels": np.full(B, self.background_pixels, np.int64)}
        for a in range(0, self.ids.size, max(1, int(chunk))):
            b = min(a + int(chunk), self.ids.size)
            n = b - a
            yield {"id": np.repeat(self.ids[a:b].astype(np.int64), B), "band": np.tile(bands, n),
                   "wavelength_nm": np.tile(wl, n), "mean": self.mean[a:b].ravel(), "std": self.std[a:b].ravel(),
                   "peak": self.peak[a:b].ravel(), "pixels": np.repeat(self.pixels[a:b].astype(np.int64), B)}

    @classmethod
    def from_columns(cls, cols, units: Optional[str] = None) -> "DetectionSpectra":
        """Back from :meth:`to_columns` (a dict or a DataFrame of the long table)."""
        missing = [c for c in SPECTRA_COLUMNS if c not in cols]
        if missing:
            raise InputError(f"not a detection-spectra table: no column {', '.join(missing)}")
        ids = np.asarray(cols["id"], dtype=np.int64)
        band = np.asarray(cols["band"], dtype=np.int64)
        bg = ids == 0
        B = int(bg.sum())
        if B == 0:
            raise InputError("the detection-spectra table has no background rows (id 0)")
        order = np.lexsort((np.arange(ids.size), ids))  # by id, bands in stored order

        def arr(name):
            return np.asarray(cols[name], dtype=np.float64)[order]

        ids_o = ids[order]
        uid, counts = np.unique(ids_o[ids_o > 0], return_counts=True)
        if np.any(counts != B) or np.any(ids_o < 0):
            raise InputError("the detection-spectra table is ragged: every id needs one row per band")
        shape = (uid.size, B)
        mean, std, peak, pix = arr("mean"), arr("std"), arr("peak"), np.asarray(cols["pixels"])[order]
        return cls(ids=uid, pixels=np.asarray(pix[B:][::B], dtype=np.int64) if uid.size else np.zeros(0, np.int64),
                   mean=mean[B:].reshape(shape), std=std[B:].reshape(shape), peak=peak[B:].reshape(shape),
                   background_mean=mean[:B], background_std=std[:B], background_pixels=int(pix[0]),
                   wavelengths=None if np.all(np.isnan(arr("wavelength_nm")[:B])) else arr("wavelength_nm")[:B],
                   bands=band[order][:B], units=units)


def _source_keys(labels, output, width_src):
    """Flat source-grid keys and ids of the detection pixels of ``labels`` (map grid for a swath product)."""
    rr, cc = np.nonzero(labels > 0)
    ids = labels[rr, cc].astype(np.int64)
    if output is not None:
        rr, cc = output.rows[rr, cc], output.cols[rr, cc]
        ok = (rr >= 0) & (cc >= 0)
        rr, cc, ids = rr[ok], cc[ok], ids[ok]
    return rr.astype(np.int64) * width_src + cc, ids


def read_pixels(source, keys: np.ndarray, width: int, spectra: bool = True):
    """``(valid (n,) bool, raw spectra (n, B) float64 or None)`` of the flat ``keys`` of ``source``, read in
    windows of up to 64 rows around them (only the columns they span)."""
    valid = np.zeros(keys.size, dtype=bool)
    out = np.zeros((keys.size, source.shape[2])) if spectra else None
    if keys.size == 0:
        return valid, out
    rr, cc = np.divmod(keys, width)
    order = np.argsort(rr, kind="stable")
    rows = rr[order]
    start = 0
    while start < order.size:
        r0 = int(rows[start])
        stop = int(np.searchsorted(rows, r0 + 64))
        sel = order[start:stop]
        c0, c1 = int(cc[sel].min()), int(cc[sel].max()) + 1
        raw, ok = source.raw_block(r0, int(rr[sel].max()) + 1, c0, c1)
        valid[sel] = ok[rr[sel] - r0, cc[sel] - c0]
        if spectra:
            out[sel] = np.asarray(raw[rr[sel] - r0, cc[sel] - c0], dtype=np.float64)
        start = stop
    return valid, out


def _totals(source, n_bands):
    """(n, shift, s1, s2) of every valid pixel of ``source``, read strip by strip (the Dask fallback)."""
    H, W = source.shape[:2]
    rows = max(1, int(64 * MB // max(1, W * n_bands * 8)))
    acc = SpectraCollector(n_bands, W)
    for r0 in range(0, H, rows):
        raw, valid = source.raw_block(r0, min(H, r0 + rows), 0, W)
        acc._add_totals(np.asarray(raw[valid], dtype=np.float64))
    return acc.n, acc.shift, acc.s1, acc.s2


def detection_spectra(col: SpectraCollector, labels, table, source, output=None, wavelengths=None,
                      band_numbers=None, units=None) -> DetectionSpectra:
    """See :meth:`SpectraCollector.finish`."""
    labels = np.asarray(labels)
    B = col.B
    W_src = source.shape[1]
    keys, ids = _source_keys(labels, output, W_src)
    notes: List[str] = []
    kept_keys, _, kept_spectra = col._merged()
    spectra = np.zeros((keys.size, B))
    pos_c = np.minimum(np.searchsorted(kept_keys, keys), max(kept_keys.size - 1, 0))
    found = kept_keys[pos_c] == keys if kept_keys.size else np.zeros(keys.size, dtype=bool)
    spectra[found] = kept_spectra[pos_c[found]]
    missing = np.flatnonzero(~found)
    if missing.size:
        spectra[missing] = read_pixels(source, keys[missing], W_src)[1]
        if col.complete:
            notes.append(f"spectra: {missing.size} of {keys.size} detection pixels were below the "
                         f"{col.capacity} highest scores the score pass kept; read again")
    if col.complete:
        n, shift, s1, s2 = col.n, col.shift, col.s1.copy(), col.s2.copy()
    else:
        n, shift, s1, s2 = _totals(source, B)
        notes.append("spectra: the scene was read again for the background (the scores were computed elsewhere)")
    if n == 0 or shift is None:
        raise InputError("the scene has no valid pixel")
    # the background: totals minus the detections' own pixels (each source pixel once)
    uk, first = np.unique(keys, return_index=True)
    d = spectra[first] - shift
    nb = n - uk.size
    if nb > 0:
        bg_mean = (s1 - d.sum(axis=0)) / nb
        bg_var = np.maximum((s2 - np.einsum("ij,ij->j", d, d)) / nb - bg_mean ** 2, 0.0)
        bg_mean = bg_mean + shift
    else:
        bg_mean = np.full(B, np.nan)
        bg_var = np.full(B, np.nan)
    # per detection: mean, std over its pixels, and the peak pixel's spectrum
    uid = np.asarray([int(r["id"]) for r in table], dtype=np.int64)
    n_det = uid.size
    mean = np.zeros((n_det, B))
    std = np.zeros((n_det, B))
    peak = np.zeros((n_det, B))
    pixels = np.zeros(n_det, np.int64)
    if keys.size:
        order = np.argsort(ids, kind="stable")
        sid, sspec = ids[order], spectra[order]
        bounds = np.searchsorted(sid, uid), np.searchsorted(sid, uid, side="right")
        for k, (a, b) in enumerate(zip(*bounds)):
            part = sspec[a:b]
            if b > a:
                pixels[k] = b - a
                mean[k] = part.mean(axis=0)
                std[k] = part.std(axis=0)
    by_key = np.argsort(keys, kind="stable")
    for k, row in enumerate(table):
        pr, pc = int(row["peak_row"]), int(row["peak_col"])
        if output is not None:
            pr, pc = int(output.rows[pr, pc]), int(output.cols[pr, pc])
        pk = np.int64(pr) * W_src + pc
        at = int(np.searchsorted(keys, pk, sorter=by_key)) if keys.size else 0
        if at < keys.size and keys[by_key[at]] == pk:
            peak[k] = spectra[by_key[at]]
        else:
            peak[k] = read_pixels(source, np.array([pk]), W_src)[1][0]
    wl = None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
    bands = None if band_numbers is None else np.asarray(band_numbers, dtype=np.int64)
    return DetectionSpectra(ids=uid, pixels=pixels, mean=mean, std=std, peak=peak, background_mean=bg_mean,
                            background_std=np.sqrt(bg_var), background_pixels=int(max(nb, 0)), wavelengths=wl,
                            bands=bands, units=units, reread=int(missing.size), notes=notes)


def library_matches(spectra: DetectionSpectra, library, k: int = 3, fwhm=None):
    """Each detection's ``k`` best library matches by spectral angle (and SID where both spectra are positive).

    ``library`` a :class:`hadcore.library.SpectralLibrary` with wavelengths; the scene's wavelengths come from
    ``spectra``. Library spectra are resampled to the scene's bands (:meth:`SpectralLibrary.resample`); the
    comparison uses the bands every spectrum covers (a note says how many were left out). Returns ``(rows,
    notes)``: one dict per detection, ``match_i`` (name), ``angle_i`` (degrees), ``sid_i`` (NaN when a spectrum
    is not positive), ``i = 1..k``.
    """
    from .errors import ParameterError
    from .targets import sid, spectral_angle

    if spectra.wavelengths is None or not np.all(np.isfinite(spectra.wavelengths)):
        raise ParameterError("the scene carries no band wavelengths, so a library cannot be matched to its bands")
    vals, covered = library.resample(spectra.wavelengths, fwhm)
    notes = []
    if not covered.any():
        raise ParameterError(f"the library {library.source} covers none of the scene's bands "
                             f"({spectra.wavelengths.min():.0f}-{spectra.wavelengths.max():.0f} nm)")
    if not covered.all():
        notes.append(library.coverage_note(spectra.wavelengths, covered) + "; matched on the covered bands")
    L = vals[:, covered]
    k = max(1, min(int(k), L.shape[0]))
    rows = []
    for i in range(spectra.ids.size):
        x = spectra.mean[i, covered]
        ang = np.degrees(spectral_angle(L, x))
        ang = np.where(np.isfinite(ang), ang, np.inf)
        best = np.argsort(ang, kind="stable")[:k]
        row = {}
        positive = np.all(x > 0)
        for j, m in enumerate(best, start=1):
            row[f"match_{j}"] = library.names[m]
            row[f"angle_{j}"] = float(ang[m])
            row[f"sid_{j}"] = float(sid(L[m:m + 1], x)[0]) if positive and np.all(L[m] > 0) else float("nan")
        rows.append(row)
    return rows, notes
