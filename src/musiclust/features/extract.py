"""Batched audio features that reproduce librosa's numbers, faster.

:class:`Featurizer` takes a batch of equal-length clips ``(B, n_samples)`` and computes
every requested feature set from **one** STFT per clip:

- the STFT is a strided view of the zero-padded batch (``center=True``,
  ``pad_mode="constant"``, periodic Hann window, exactly like ``librosa.stft``) and one
  ``scipy.fft.rfft`` call over all frames of all clips;
- mel spectrograms are one matrix product with a cached filterbank
  (``librosa.filters.mel``, Slaney scale and norm) instead of a per-clip einsum;
- MFCCs are a matrix product with a cached orthonormal DCT-II matrix;
- spectral statistics reuse the same magnitude spectrogram (moments as one matrix
  product), and tempo reuses the 128-band dB mel spectrogram of the MFCCs as its onset
  envelope, exactly as ``librosa.onset.onset_strength`` computes it.

librosa is only used to build the filterbanks (in :meth:`Featurizer.__init__`); the
per-batch code needs numpy and scipy only, so worker processes stay light.

Reference functions (the tests compare against these with tolerances):

=============  ====================================================================
mfcc_stats     ``librosa.feature.mfcc(y, sr, n_mfcc, n_fft, hop_length)`` (128 mel bands, the
               librosa default) and ``librosa.feature.delta(mfcc)``; mean/std/min/max over time
spectral       ``spectral_centroid``, ``spectral_bandwidth``, ``spectral_rolloff``,
               ``spectral_flatness``, ``spectral_contrast`` (7 bands), ``zero_crossing_rate``,
               ``rms`` (mean/std over time), ``chroma_stft(tuning=0.0)`` (mean/std of 12
               pitch classes) and ``librosa.feature.tempo`` (one value)
logmel         ``power_to_db(melspectrogram(n_mels))``, ``logmel_frames`` central frames, float16
mfcc_seq       the MFCC matrix (n_mfcc x ``logmel_frames`` central frames), float32
rhythm         ``librosa.onset.onset_strength`` (mean/std, and the rate of its peaks) and
               ``onset_strength_multi`` over 4 equal groups of the 128 mel bands (mean/std
               each); the onset pattern: the unbiased autocorrelation of the envelope, its
               maximum in each of 8 log-spaced tempo bands from 40 to 320 BPM, and the overall
               maximum (pulse clarity)
=============  ====================================================================

Chroma uses ``tuning=0.0`` (A440): librosa's default per-clip tuning estimate runs a pitch
tracker over every clip, which would cost more than all other features together, and a
3-second clip gives a poor tuning estimate anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from musiclust.contracts.features import TENSOR_SETS, VECTOR_SETS
from musiclust.params import (
    MFCC_N_MELS,
    SPECTRAL_CONTRAST_FMIN_HZ,
    SPECTRAL_CONTRAST_OCTAVES,
    AudioParams,
    FeatureParams,
)

STATS = ("mean", "std", "min", "max")
SPECTRAL_FRAMEWISE = ("centroid", "bandwidth", "rolloff", "flatness", "zcr", "rms")
N_CONTRAST = SPECTRAL_CONTRAST_OCTAVES + 1  # librosa default: 6 octave bands + the residual band above
N_CHROMA = 12
#: rhythm: onset envelopes of this many equal groups of the 128 mel bands (low to high)
N_ONSET_BANDS = 4
#: rhythm: edges (BPM) of the log-spaced tempo bands of the onset autocorrelation
RHYTHM_BPM_EDGES = tuple(float(x) for x in 40.0 * 2.0 ** (np.arange(9) * 3.0 / 8.0))  # 40 .. 320
_AMIN = 1e-10
_TOP_DB = 80.0
_TINY32 = np.finfo(np.float32).tiny


@dataclass
class FeatureConfig:
    """What to compute: ``params.features`` plus the sample rate (:meth:`from_params`). The defaults
    are the params' own (``FeatureParams``/``AudioParams``, which equal params.yaml), not restated."""

    sample_rate: int = AudioParams.sample_rate
    sets: tuple[str, ...] = FeatureParams.sets
    n_mfcc: int = FeatureParams.n_mfcc
    n_fft: int = FeatureParams.n_fft
    hop_length: int = FeatureParams.hop_length
    n_mels: int = FeatureParams.n_mels
    logmel_frames: int = FeatureParams.logmel_frames

    @classmethod
    def from_params(cls, sample_rate: int, features: object) -> FeatureConfig:
        """Build from ``params.features`` (a :class:`musiclust.params.FeatureParams`)."""
        return cls(
            sample_rate=int(sample_rate),
            sets=tuple(features.sets),
            n_mfcc=int(features.n_mfcc),
            n_fft=int(features.n_fft),
            hop_length=int(features.hop_length),
            n_mels=int(features.n_mels),
            logmel_frames=int(features.logmel_frames),
        )


def feature_columns(cfg: FeatureConfig) -> dict[str, list[str]]:
    """Column names of each vector set, in the order :class:`Featurizer` returns them."""
    cols: dict[str, list[str]] = {}
    if "mfcc_stats" in cfg.sets:
        cols["mfcc_stats"] = [
            f"{p}_{i:02d}_{s}" for p in ("mfcc", "dmfcc") for i in range(cfg.n_mfcc) for s in STATS
        ]
    if "spectral" in cfg.sets:
        names = [f"{f}_{s}" for f in SPECTRAL_FRAMEWISE for s in ("mean", "std")]
        names += [f"contrast_{i}_{s}" for i in range(N_CONTRAST) for s in ("mean", "std")]
        names += [f"chroma_{i:02d}_{s}" for i in range(N_CHROMA) for s in ("mean", "std")]
        names.append("tempo")
        cols["spectral"] = names
    if "rhythm" in cfg.sets:
        names = ["onset_mean", "onset_std", "onset_rate"]
        names += [f"onset_band{i}_{s}" for i in range(N_ONSET_BANDS) for s in ("mean", "std")]
        names += [f"onset_ac_{i:02d}" for i in range(len(RHYTHM_BPM_EDGES) - 1)]
        names.append("pulse_clarity")
        cols["rhythm"] = names
    return cols


def tensor_shapes(cfg: FeatureConfig) -> dict[str, tuple[tuple[int, ...], type]]:
    """Per-clip shape and dtype of each tensor set."""
    out: dict[str, tuple[tuple[int, ...], type]] = {}
    if "logmel" in cfg.sets:
        out["logmel"] = ((cfg.n_mels, cfg.logmel_frames), np.float16)
    if "mfcc_seq" in cfg.sets:
        out["mfcc_seq"] = ((cfg.n_mfcc, cfg.logmel_frames), np.float32)
    return out


def _power_to_db(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``librosa.power_to_db`` (ref 1, amin 1e-10, top_db 80) with the top-dB floor per clip.

    librosa floors at ``max - 80`` over the whole array it is given; here each clip
    (index 0) gets its own max, which is what a per-clip librosa call does.
    """
    db = 10.0 * np.log10(np.maximum(x, _AMIN))
    floor = db.max(axis=axes, keepdims=True) - _TOP_DB
    return np.maximum(db, floor)


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window, ``scipy.signal.get_window("hann", n)`` (what librosa uses)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _delta(m: np.ndarray) -> np.ndarray:
    """``librosa.feature.delta`` (width 9, order 1, mode "interp") along axis 1 of ``(B, T, C)``.

    A first-order Savitzky-Golay derivative is the least-squares slope over 9 frames,
    ``sum(k * x[t + k]) / 60`` for k = -4..4; in "interp" mode the first and last 4 frames
    take the slope of the first / last full window. Written out because
    ``scipy.signal.savgol_filter`` refits the edge polynomials on every call.
    """
    t = m.shape[1]
    if t < 9:  # librosa refuses; fall back to edge-replicating scipy so short clips still work
        import scipy.signal  # slow to import (about a second); only this rare path needs it

        return scipy.signal.savgol_filter(
            m, max(3, t - (1 - t % 2)), polyorder=1, deriv=1, axis=1, mode="nearest"
        )
    d = np.zeros_like(m)
    inner = d[:, 4 : t - 4]
    for k in (1, 2, 3, 4):
        inner += k * (m[:, 4 + k : t - 4 + k] - m[:, 4 - k : t - 4 - k])
    inner /= 60.0
    d[:, :4] = d[:, 4:5]
    d[:, t - 4 :] = d[:, t - 5 : t - 4]
    return d


def _frames(y: np.ndarray, frame_length: int, hop: int) -> np.ndarray:
    """Strided frames ``(B, T, frame_length)`` of an already padded batch ``(B, n)``."""
    return sliding_window_view(y, frame_length, axis=-1)[:, ::hop]


def _centre_crop(x: np.ndarray, frames: int) -> np.ndarray:
    """Central ``frames`` columns of ``(B, C, T)``; shorter inputs repeat their edges."""
    t = x.shape[-1]
    if t >= frames:
        start = (t - frames) // 2
        return x[..., start : start + frames]
    left = (frames - t) // 2
    return np.pad(x, ((0, 0), (0, 0), (left, frames - t - left)), mode="edge")


class BandedMatrix:
    """A ``(K, M)`` filterbank whose columns have contiguous support, multiplied block by block.

    Mel filters are triangles: each of 128 bands touches a short run of FFT bins, so a
    dense ``(frames, 1025) @ (1025, 128)`` product multiplies mostly zeros. Grouping the
    bands ``group`` at a time and multiplying each group only by the bins it covers does the
    same sums with about a sixth of the work (and stays a BLAS call per group).
    """

    __array_ufunc__ = None  # make ``ndarray @ BandedMatrix`` defer to __rmatmul__

    def __init__(self, mat: np.ndarray, group: int = 16) -> None:
        mat = np.asarray(mat, np.float32)
        self.shape = mat.shape
        self.blocks: list[tuple[int, int, int, int, np.ndarray]] = []
        for c0 in range(0, mat.shape[1], group):
            sub = mat[:, c0 : c0 + group]
            nz = np.flatnonzero(np.any(sub != 0, axis=1))
            if nz.size:
                lo, hi = int(nz[0]), int(nz[-1]) + 1
                self.blocks.append((lo, hi, c0, c0 + sub.shape[1], np.ascontiguousarray(sub[lo:hi])))

    def __rmatmul__(self, x: np.ndarray) -> np.ndarray:
        """``x @ self`` for ``x`` of shape ``(..., K)``."""
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        out = np.zeros((x2.shape[0], self.shape[1]), np.float32)
        for lo, hi, c0, c1, sub in self.blocks:
            out[:, c0:c1] = x2[:, lo:hi] @ sub
        return out.reshape(*lead, self.shape[1])


@dataclass
class Featurizer:
    """Compute the configured feature sets for batches of equal-length clips.

    Call it with ``(B, n_samples)`` float32 audio; it returns ``{set: array}`` with vector
    sets as ``(B, n_columns)`` float32 (columns as in :func:`feature_columns`) and tensor
    sets as ``(B, ...)`` (see :func:`tensor_shapes`). All outputs are finite, also for
    silent clips.
    """

    cfg: FeatureConfig

    def __post_init__(self) -> None:
        import librosa  # only here: filterbanks are built once, in the parent process

        c = self.cfg
        sr, n_fft = c.sample_rate, c.n_fft
        for s in c.sets:
            if s not in VECTOR_SETS + TENSOR_SETS:
                raise ValueError(f"unknown feature set {s!r}")
        if not 1 <= c.n_mfcc <= MFCC_N_MELS:
            raise ValueError(f"features.n_mfcc must be between 1 and {MFCC_N_MELS}, got {c.n_mfcc}")
        self.window = _hann(n_fft).astype(np.float32)
        self.freq = np.fft.rfftfreq(n_fft, 1.0 / sr)  # == librosa.fft_frequencies
        self.need_mfcc = bool(
            {"mfcc_stats", "mfcc_seq", "spectral", "rhythm"} & set(c.sets)
        )  # onsets need the dB mel
        # (n_fft//2+1, n_mels) so that a (..., frames, bins) power spectrum times it is the mel spectrum
        self.mel128 = BandedMatrix(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=MFCC_N_MELS).T)
        self.mel_small = BandedMatrix(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=c.n_mels).T)
        # orthonormal DCT-II on the mel axis, first n_mfcc rows: (128, n_mfcc)
        self.dct = scipy.fft.dct(np.eye(MFCC_N_MELS), type=2, norm="ortho", axis=0)[: c.n_mfcc].T.astype(
            np.float32
        )
        self.chroma = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0, n_chroma=N_CHROMA).T.astype(
            np.float32
        )
        self.moments = np.stack([np.ones_like(self.freq), self.freq, self.freq**2], axis=1).astype(np.float32)
        # only the spectral set has contrast bands; they need a Nyquist frequency above the top band
        # (params.validate refuses such a rate at load), while the other sets work at any rate
        self._contrast_bands = self._contrast_band_slices() if "spectral" in c.sets else []
        # tempo: librosa.feature.tempo defaults (8 s autocorrelation window, log-normal prior at 120 BPM)
        self.tempo_win = int(np.floor(8.0 * sr / c.hop_length))
        self.tempo_window = _hann(self.tempo_win).astype(np.float32)
        with np.errstate(divide="ignore"):
            self.bpms = 60.0 * sr / (c.hop_length * np.arange(self.tempo_win, dtype=np.float64))
        self.bpms[0] = np.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            logprior = -0.5 * ((np.log2(self.bpms) - np.log2(120.0)) / 1.0) ** 2
        logprior[: int(np.argmax(self.bpms < 320.0))] = -np.inf
        self.logprior = logprior

    # ------------------------------------------------------------------ helpers

    def _contrast_band_slices(self) -> list[tuple[int, int, int]]:
        """(first bin, stop bin, quantile count) per band, as ``librosa.feature.spectral_contrast``."""
        sr, freq = self.cfg.sample_rate, self.freq
        n_bands, fmin, quantile = N_CONTRAST - 1, SPECTRAL_CONTRAST_FMIN_HZ, 0.02
        octa = np.zeros(n_bands + 2)
        octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
        if np.any(octa[:-1] >= 0.5 * sr):
            raise ValueError(
                f"audio.sample_rate={sr} is too low for features.sets 'spectral' (its contrast bands "
                f"exceed the Nyquist frequency); use a rate above {2 * octa[-2]:g} Hz or drop 'spectral'"
            )
        bands = []
        for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
            current = (freq >= f_low) & (freq <= f_high)
            idx = np.flatnonzero(current)
            if k > 0:
                current[idx[0] - 1] = True
            if k == n_bands:
                current[idx[-1] + 1 :] = True
            sel = np.flatnonzero(current)
            lo, hi = int(sel[0]), int(sel[-1]) + 1  # always a contiguous run of bins
            q = max(int(np.rint(quantile * len(sel))), 1)
            if k < n_bands:
                hi -= 1  # librosa drops the band's top bin (it is the next band's first)
            bands.append((lo, hi, q))
        return bands

    def stft_magnitude(self, y: np.ndarray) -> np.ndarray:
        """Magnitude spectrogram ``|STFT|``, ``(B, T, n_fft//2 + 1)`` float32, of clips ``(B, n)``."""
        n_fft, hop = self.cfg.n_fft, self.cfg.hop_length
        pad = n_fft // 2
        yp = np.pad(np.asarray(y, np.float32), ((0, 0), (pad, pad)))
        spec = scipy.fft.rfft(_frames(yp, n_fft, hop) * self.window, axis=-1)  # (B, T, K) complex64
        return np.abs(spec)

    def stft_power(self, y: np.ndarray) -> np.ndarray:
        """Power spectrogram ``|STFT|**2`` (as librosa squares the magnitude), ``(B, T, K)`` float32."""
        return np.square(self.stft_magnitude(y))

    # ------------------------------------------------------------------ main entry

    def __call__(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Features of a batch of clips ``(B, n_samples)``; see the class docstring."""
        y = np.ascontiguousarray(y, dtype=np.float32)
        if y.ndim != 2:
            raise ValueError(f"expected clips as (batch, samples), got shape {y.shape}")
        c = self.cfg
        sets = set(c.sets)
        out: dict[str, np.ndarray] = {}
        mag = self.stft_magnitude(y)  # (B, T, K)
        power = np.square(mag)

        db128 = mfcc = None
        if self.need_mfcc:
            db128 = _power_to_db(power @ self.mel128, axes=(1, 2))  # (B, T, 128)
            mfcc = db128 @ self.dct  # (B, T, n_mfcc)
        if "mfcc_stats" in sets:
            out["mfcc_stats"] = self._mfcc_stats(mfcc)
        if "spectral" in sets:
            out["spectral"] = self._spectral(y, mag, power, db128)
        if "rhythm" in sets:
            out["rhythm"] = self._rhythm(db128)
        if "logmel" in sets:
            logmel = _power_to_db(power @ self.mel_small, axes=(1, 2))  # (B, T, n_mels)
            out["logmel"] = _centre_crop(logmel.transpose(0, 2, 1), c.logmel_frames).astype(np.float16)
        if "mfcc_seq" in sets:
            out["mfcc_seq"] = np.ascontiguousarray(
                _centre_crop(mfcc.transpose(0, 2, 1), c.logmel_frames), dtype=np.float32
            )
        return out

    def _mfcc_stats(self, mfcc: np.ndarray) -> np.ndarray:
        """mean/std/min/max over time of the MFCCs and their deltas -> (B, n_mfcc * 8)."""
        delta = _delta(mfcc)
        blocks = []
        for m in (mfcc, delta):
            st = np.stack([m.mean(axis=1), m.std(axis=1), m.min(axis=1), m.max(axis=1)], axis=-1)  # (B, n, 4)
            blocks.append(st.reshape(len(m), -1))
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def _spectral(self, y: np.ndarray, mag: np.ndarray, power: np.ndarray, db128: np.ndarray) -> np.ndarray:
        b, t, k = mag.shape
        mom = mag @ self.moments  # (B, T, 3): sum S, sum f S, sum f^2 S
        s0 = np.where(
            mom[..., 0] < _TINY32, 1.0, mom[..., 0]
        )  # librosa.util.normalize leaves ~0 frames as they are
        centroid = mom[..., 1] / s0
        var = mom[..., 2] / s0 - 2 * centroid * mom[..., 1] / s0 + centroid**2 * (mom[..., 0] / s0)
        bandwidth = np.sqrt(np.maximum(var, 0.0))
        rolloff = self._rolloff(mag)
        # flatness: geometric over arithmetic mean of the floored power; sums as BLAS products
        pt = np.maximum(power, np.float32(_AMIN))
        ones = np.ones(k, np.float32)
        amean = (pt @ ones) / k
        gmean = np.exp((np.log(pt, out=pt) @ ones) / k)
        flatness = gmean / amean
        zcr, rms = self._zcr_rms(y)
        contrast = self._contrast(mag)  # (B, 7, T)
        chroma = power @ self.chroma  # (B, T, 12)
        cmax = chroma.max(axis=-1, keepdims=True)
        chroma = chroma / np.where(cmax < _TINY32, 1.0, cmax)
        tempo = self._tempo(db128)

        # every frame-wise series side by side, summarized in two reductions: (B, T, 6 + 7 + 12)
        series = np.concatenate(
            [
                np.stack([centroid, bandwidth, rolloff, flatness, zcr, rms], axis=-1),
                contrast.transpose(0, 2, 1),
                chroma,
            ],
            axis=-1,
        )
        stats = np.stack([series.mean(axis=1), series.std(axis=1)], axis=-1).reshape(
            b, -1
        )  # mean, std interleaved
        return np.concatenate([stats, tempo[:, None]], axis=1).astype(np.float32)

    def _rolloff(self, mag: np.ndarray, roll_percent: float = 0.85) -> np.ndarray:
        """``spectral_rolloff``: first bin where the cumulative magnitude reaches 85 % of the frame total.

        A full cumulative sum over 1025 bins is the slow part, so it is done in two levels:
        cumulative sums of 32-bin blocks find the block where the threshold is crossed, and
        only that block is summed bin by bin.
        """
        k = mag.shape[-1]
        blk = 32
        if (k - 1) % blk or k < 2 * blk:
            cs = np.cumsum(mag, axis=-1)
            return self.freq[np.argmax(cs >= roll_percent * cs[..., -1:], axis=-1)]
        nb = (k - 1) // blk
        blocks = mag[..., : nb * blk].reshape(*mag.shape[:-1], nb, blk)  # (B, T, nb, blk), a view
        bc = np.cumsum(blocks.sum(axis=-1), axis=-1)  # (B, T, nb)
        total = bc[..., -1] + mag[..., -1]
        thr = roll_percent * total
        reached = bc >= thr[..., None]
        b = np.argmax(reached, axis=-1)  # first block whose cumulative sum reaches the threshold
        prev = np.where(b > 0, np.take_along_axis(bc, np.maximum(b - 1, 0)[..., None], -1)[..., 0], 0.0)
        inner = np.take_along_axis(blocks, b[..., None, None], axis=-2)[..., 0, :]  # (B, T, blk)
        within = np.argmax(prev[..., None] + np.cumsum(inner, axis=-1) >= thr[..., None], axis=-1)
        idx = np.where(reached[..., -1], b * blk + within, k - 1)  # only the last bin gets there
        return self.freq[idx]

    def _zcr_rms(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``zero_crossing_rate`` (edge padding) and ``rms`` (zero padding) per frame.

        Frames overlap (``n_fft / hop`` of them cover each sample), so per-hop block sums are
        computed once and each frame adds its ``n_fft / hop`` blocks; plain cumulative sums
        are the fallback when the hop does not divide ``n_fft``.
        """
        n_fft, hop = self.cfg.n_fft, self.cfg.hop_length
        b, pad = len(y), n_fft // 2
        n_frames = 1 + (y.shape[1] + 2 * pad - n_fft) // hop
        starts = np.arange(n_frames) * hop
        ye = np.pad(y, ((0, 0), (pad, pad)), mode="edge")
        ye[np.abs(ye) <= 1e-10] = 0.0  # librosa's threshold: tiny values count as zero (positive)
        sb = np.signbit(ye)
        cross = np.zeros(ye.shape, bool)
        cross[:, 1:] = sb[:, 1:] != sb[:, :-1]
        yz = np.pad(y, ((0, 0), (pad, pad)))
        sq = yz * yz
        if n_fft % hop == 0:
            r = n_fft // hop
            nblk = n_frames - 1 + r
            cb = cross[:, : nblk * hop].reshape(b, nblk, hop).sum(axis=-1, dtype=np.int64)
            qb = sq[:, : nblk * hop].reshape(b, nblk, hop).sum(axis=-1, dtype=np.float64)
            cc = np.concatenate([np.zeros((b, 1), np.int64), np.cumsum(cb, axis=1)], axis=1)
            cq = np.concatenate([np.zeros((b, 1)), np.cumsum(qb, axis=1)], axis=1)
            t = np.arange(n_frames)
            counts = cc[:, t + r] - cc[:, t] - cross[:, starts]  # a frame's first sample has no predecessor
            energy = cq[:, t + r] - cq[:, t]
        else:
            cc = np.concatenate([np.zeros((b, 1), np.int64), np.cumsum(cross, axis=1)], axis=1)
            cq = np.concatenate([np.zeros((b, 1)), np.cumsum(sq, axis=1, dtype=np.float64)], axis=1)
            counts = cc[:, starts + n_fft] - cc[:, starts + 1]
            energy = cq[:, starts + n_fft] - cq[:, starts]
        zcr = counts / n_fft
        rms = np.sqrt(np.maximum(energy, 0.0) / n_fft)
        return zcr, rms

    def _contrast(self, mag: np.ndarray) -> np.ndarray:
        """``librosa.feature.spectral_contrast`` (dB peak minus dB valley) -> (B, 7, T)."""
        b, t, _ = mag.shape
        peak = np.empty((b, N_CONTRAST, t))
        valley = np.empty((b, N_CONTRAST, t))
        for k, (lo, hi, q) in enumerate(self._contrast_bands):
            band = mag[..., lo:hi]
            n = hi - lo
            if q == 1:  # the narrow low bands: the extremes are all that is needed
                valley[:, k] = band.min(axis=-1)
                peak[:, k] = band.max(axis=-1)
                continue
            # a full (SIMD) sort is several times faster than np.partition here
            part = np.sort(band, axis=-1)
            valley[:, k] = part[..., :q].mean(axis=-1)
            peak[:, k] = part[..., n - q :].mean(axis=-1)
        return _power_to_db(peak, axes=(1, 2)) - _power_to_db(valley, axes=(1, 2))

    def _tempo(self, db128: np.ndarray) -> np.ndarray:
        """``librosa.feature.tempo`` from the onset envelope of the dB mel spectrogram -> (B,)."""
        b, t, _ = db128.shape
        hop, n_fft = self.cfg.hop_length, self.cfg.n_fft
        # onset_strength: positive first difference over time, mean over bands, shifted by lag + n_fft/(2 hop)
        diff = np.maximum(0.0, db128[:, 1:] - db128[:, :-1]).mean(axis=-1)  # (B, T-1)
        lag_pad = 1 + n_fft // (2 * hop)
        onset = np.pad(diff, ((0, 0), (lag_pad, 0)))[:, :t]
        # tempogram: hann-windowed autocorrelation of centred onset frames, each frame normalized by its
        # maximum, which for an autocorrelation is the lag-0 value (the frame's energy). Only the mean
        # over frames is used, and the inverse FFT is linear, so the normalized power spectra are
        # averaged first and transformed back once per clip instead of once per frame.
        w = self.tempo_win
        padded = np.pad(onset, ((0, 0), (w // 2, w // 2)), mode="linear_ramp", end_values=0)
        frames = sliding_window_view(padded, w, axis=-1)[:, :t] * self.tempo_window  # (B, T, w)
        energy = np.einsum("btn,btn->bt", frames, frames)
        weight = 1.0 / np.where(energy < np.finfo(frames.dtype).tiny, 1.0, energy)  # silent frames stay 0
        n_pad = scipy.fft.next_fast_len(2 * w - 1, real=True)
        spec = np.abs(scipy.fft.rfft(frames, n=n_pad, axis=-1)) ** 2  # (B, T, n_pad//2+1)
        mean_spec = np.einsum("btk,bt->bk", spec, weight.astype(spec.dtype)) / t
        tg = scipy.fft.irfft(mean_spec, n=n_pad, axis=-1)[:, :w]  # (B, w)
        best = np.argmax(np.log1p(1e6 * tg) + self.logprior, axis=-1)
        return self.bpms[best]

    def _rhythm(self, db128: np.ndarray) -> np.ndarray:
        """Onset-envelope statistics and the onset pattern (see the module table) -> (B, 20).

        The envelopes are ``librosa.onset.onset_strength`` (whole spectrum) and
        ``onset_strength_multi`` (``N_ONSET_BANDS`` groups of mel bands): positive first
        difference of the dB mel spectrogram over time, mean over bands, shifted right by
        ``1 + n_fft // (2 hop)`` frames. The pattern is the autocorrelation of the mean-removed
        envelope divided by the number of overlapping frames at each lag (unbiased) and by its
        lag-0 value, so it is 1 at lag 0 and compares across clips of any loudness.
        """
        b, t, nb = db128.shape
        hop, n_fft, sr = self.cfg.hop_length, self.cfg.n_fft, self.cfg.sample_rate
        lag_pad = 1 + n_fft // (2 * hop)
        diff = np.maximum(0.0, db128[:, 1:] - db128[:, :-1])  # (B, T-1, 128)
        groups = diff.reshape(b, t - 1, N_ONSET_BANDS, nb // N_ONSET_BANDS).mean(axis=-1)  # (B, T-1, G)
        env = np.concatenate([diff.mean(axis=-1, keepdims=True), groups], axis=-1)  # (B, T-1, 1 + G)
        env = np.pad(env, ((0, 0), (lag_pad, 0), (0, 0)))[:, :t]  # (B, T, 1 + G), librosa's alignment
        onset = env[..., 0]
        stats = np.stack([env.mean(axis=1), env.std(axis=1)], axis=-1)  # (B, 1 + G, 2)
        # onset rate: local maxima above the clip's mean + one std, per second of envelope
        thr = (onset.mean(axis=1) + onset.std(axis=1))[:, None]
        mid = onset[:, 1:-1]
        peaks = (mid > onset[:, :-2]) & (mid >= onset[:, 2:]) & (mid > thr)
        rate = peaks.sum(axis=1) / (t * hop / sr)
        # onset pattern: unbiased, lag-0-normalized autocorrelation, max per tempo band
        x = onset - onset.mean(axis=1, keepdims=True)
        n = scipy.fft.next_fast_len(2 * t - 1, real=True)
        ac = scipy.fft.irfft(np.abs(scipy.fft.rfft(x, n=n, axis=1)) ** 2, n=n, axis=1)[:, :t]
        ac = ac / (t - np.arange(t))  # unbiased: each lag averages over the frames that overlap
        ac0 = ac[:, :1]
        ac = np.where(ac0 > _TINY32, ac / np.where(ac0 > _TINY32, ac0, 1.0), 0.0)  # a flat envelope: 0
        with np.errstate(divide="ignore"):
            lag_bpm = 60.0 * sr / (hop * np.arange(t, dtype=np.float64))  # lag 0: inf
        bands = []
        for lo, hi in zip(RHYTHM_BPM_EDGES[:-1], RHYTHM_BPM_EDGES[1:]):
            sel = (lag_bpm >= lo) & (lag_bpm < hi)
            bands.append(ac[:, sel].max(axis=1) if sel.any() else np.zeros(b))
        pattern = np.stack(bands, axis=1)  # (B, 8), slow to fast
        clarity = pattern.max(axis=1, keepdims=True)
        return np.concatenate(
            [stats[:, 0], rate[:, None], stats[:, 1:].reshape(b, -1), pattern, clarity], axis=1
        ).astype(np.float32)
