"""Production differences of the synthetic demo corpus: how a song was recorded and mastered.

Real collections mix songs recorded in rooms and studios of every kind, on equipment of every
age, mastered by different hands; much of what a timbre feature sees is that, not the genre.
:class:`Production` is one song's chain, drawn by :func:`draw_production` independently of
its labels, and :func:`apply_production` runs it on the mixed song:

* **reverb**: a room (exponentially decaying noise, RT60 0.3-2.5 s) mixed in at a wet level;
* **EQ**: a spectral tilt (dB per octave around 1 kHz: dark or bright masters), and in some
  songs a low-pass (a dull, band-limited recording) or a high-pass (a thin one);
* **compression**: a feed-forward RMS compressor (ratio, threshold relative to the song's RMS);
* **noise**: a hiss or rumble floor (white to brown) at a signal-to-noise ratio.

``strength`` (``data.demo.production``, 0-1) scales every effect from none (0: the chain is
skipped and the song is exactly what the arrangement and mix made) to the widest spread (1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

#: At ``strength`` 1: the widest EQ tilt (dB per octave, either sign), the largest wet level,
#: the probability of a low-pass and of a high-pass, the lowest signal-to-noise ratio (dB) and
#: the largest compression ratio. Lower strengths scale each towards no effect.
MAX_TILT_DB_PER_OCTAVE = 2.0
MAX_REVERB_WET = 0.6
MAX_FILTER_P = 0.4
MIN_SNR_DB = 15.0
MAX_RATIO = 8.0
#: a noise floor this far below the song is inaudible and treated as none
NO_NOISE_SNR_DB = 70.0


@dataclass(frozen=True)
class Production:
    """One song's recording and mastering chain (see the module doc); ``seed`` draws its noises."""

    tilt_db_per_octave: float
    lowpass_hz: float | None
    highpass_hz: float | None
    reverb_wet: float
    reverb_rt60_s: float
    compress_ratio: float
    compress_threshold_db: float
    noise_snr_db: float | None
    noise_slope: float
    seed: int


def draw_production(rng: np.random.Generator, strength: float) -> Production | None:
    """One song's chain at ``strength`` (0-1); ``None`` at 0 (no processing).

    The same generator state gives the same underlying draws at every strength (each effect
    is the draw scaled by ``strength``), so a stronger setting moves each song's production
    further in the same direction instead of re-drawing it: curves over strength compare like
    with like.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"data.demo.production must be between 0 and 1, got {strength!r}")
    u = rng.random(11)
    seed = int(rng.integers(2**31))
    if strength == 0.0:
        return None
    snr = NO_NOISE_SNR_DB - strength * u[6] * (NO_NOISE_SNR_DB - MIN_SNR_DB)
    return Production(
        tilt_db_per_octave=float(strength * MAX_TILT_DB_PER_OCTAVE * (2 * u[0] - 1)),
        lowpass_hz=float(2500.0 + 6000.0 * u[2]) if u[1] < strength * MAX_FILTER_P else None,
        highpass_hz=float(100.0 + 300.0 * u[4]) if u[3] < strength * MAX_FILTER_P else None,
        reverb_wet=float(strength * MAX_REVERB_WET * u[5]),
        reverb_rt60_s=float(0.3 + 2.2 * u[7]),
        compress_ratio=float(1.0 + strength * (MAX_RATIO - 1.0) * u[8]),
        compress_threshold_db=float(-12.0 + 12.0 * u[9]),
        noise_snr_db=float(snr) if snr < NO_NOISE_SNR_DB else None,
        noise_slope=float(-2.0 * u[10]),
        seed=seed,
    )


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) + 1e-12


def _reverb(y: np.ndarray, sr: int, wet: float, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Dry/wet mix with a synthetic room: 10-30 ms pre-delay, decaying noise whose highs fade faster."""
    n_ir = int(rt60 * sr)
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60)
    ir = signal.sosfilt(signal.butter(1, min(6000.0, 0.45 * sr), fs=sr, output="sos"), ir)
    ir = np.concatenate([np.zeros(int(rng.uniform(0.01, 0.03) * sr)), ir])
    tail = signal.fftconvolve(y, ir)[: len(y)]
    tail *= _rms(y) / _rms(tail)
    return (1.0 - wet) * y + wet * tail


def _eq(y: np.ndarray, sr: int, p: Production) -> np.ndarray:
    """Zero-phase EQ in the frequency domain: the tilt and the optional 4th-order low/high-pass."""
    spec = np.fft.rfft(y)
    f = np.fft.rfftfreq(len(y), 1.0 / sr)
    octaves = np.log2(np.maximum(f, 30.0) / 1000.0)
    gain = 10 ** (p.tilt_db_per_octave * octaves / 20)
    if p.lowpass_hz is not None:
        gain /= np.sqrt(1.0 + (f / p.lowpass_hz) ** 8)
    if p.highpass_hz is not None:
        gain /= np.sqrt(1.0 + (p.highpass_hz / np.maximum(f, 1e-3)) ** 8)
    return np.fft.irfft(spec * gain, n=len(y))


def _compress(y: np.ndarray, sr: int, ratio: float, threshold_db: float) -> np.ndarray:
    """Feed-forward compressor on a 30 ms RMS envelope, gain smoothed over 10 ms."""
    if ratio <= 1.0:
        return y
    env = np.sqrt(uniform_filter1d(np.square(y), size=max(1, int(0.03 * sr))) + 1e-12)
    thr = _rms(y) * 10 ** (threshold_db / 20)
    gain = np.where(env > thr, (env / thr) ** (1.0 / ratio - 1.0), 1.0)
    return y * uniform_filter1d(gain, size=max(1, int(0.01 * sr)))


def _noise(n: int, sr: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls ``slope`` * 10 dB per decade (0 white, -1 pink, -2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), 20.0)
    x = np.fft.irfft(spec * f ** (slope / 2), n=n)
    return x / _rms(x)


def apply_production(y: np.ndarray, sr: int, p: Production) -> np.ndarray:
    """Run the chain on a mixed song: reverb, EQ, compression, then the noise floor."""
    rng = np.random.default_rng([p.seed, 0x70726F64])  # "prod"
    out = np.asarray(y, dtype=np.float64)
    if p.reverb_wet > 0:
        out = _reverb(out, sr, p.reverb_wet, p.reverb_rt60_s, rng)
    out = _eq(out, sr, p)
    out = _compress(out, sr, p.compress_ratio, p.compress_threshold_db)
    if p.noise_snr_db is not None:
        out = out + _noise(len(out), sr, p.noise_slope, rng) * _rms(out) * 10 ** (-p.noise_snr_db / 20)
    return out
