"""Production differences of the synthetic demo corpus: how a song was recorded and mastered.

Real collections mix songs recorded in rooms and studios of every kind, on equipment of every
age, mastered by different hands; much of what a timbre feature sees is that, not the genre.
:class:`Production` is one song's chain, drawn by :func:`draw_production` independently of
its labels, and :func:`apply_production` runs it on the mixed song:

* **reverb**: a room (exponentially decaying noise, RT60 0.3-2.5 s) mixed in at a wet level;
* **noise**: a hiss or rumble floor (white to brown) at a signal-to-noise ratio;
* **EQ**: a spectral tilt (dB per octave around 1 kHz: dark or bright masters), and in some
  songs a low-pass (a dull, band-limited recording) or a high-pass (a thin one);
* **compression**: a feed-forward RMS compressor (ratio, threshold relative to the song's RMS).

``strength`` (``data.demo.production``, 0-1) scales every effect from none (0: the chain is
skipped and the song is exactly what the arrangement and mix made) to the widest spread (1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, signal
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


def _power(spec: np.ndarray, n_fft: int) -> float:
    """Mean square of the length-``n_fft`` signal whose ``rfft`` is ``spec`` (Parseval)."""
    w = np.full(len(spec), 2.0)
    w[0] = 1.0
    if n_fft % 2 == 0:
        w[-1] = 1.0
    return float(np.sum(w * (spec.real**2 + spec.imag**2))) / n_fft**2


def _room(sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Impulse response of a synthetic room: 10-30 ms pre-delay, then decaying noise whose highs fade faster."""
    n_ir = int(rt60 * sr)
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60)
    ir = signal.sosfilt(signal.butter(1, min(6000.0, 0.45 * sr), fs=sr, output="sos"), ir)
    return np.concatenate([np.zeros(int(rng.uniform(0.01, 0.03) * sr)), ir])


def _eq_gain(f: np.ndarray, p: Production) -> np.ndarray:
    """The EQ's magnitude response: the tilt and the optional 4th-order low/high-pass."""
    gain = 10 ** (p.tilt_db_per_octave * np.log2(np.maximum(f, 30.0) / 1000.0) / 20)
    if p.lowpass_hz is not None:
        gain /= np.sqrt(1.0 + (f / p.lowpass_hz) ** 8)
    if p.highpass_hz is not None:
        gain /= np.sqrt(1.0 + (p.highpass_hz / np.maximum(f, 1e-3)) ** 8)
    return gain


def _compress(y: np.ndarray, sr: int, ratio: float, threshold_db: float) -> np.ndarray:
    """Feed-forward compressor on a 30 ms RMS envelope, gain smoothed over 10 ms."""
    if ratio <= 1.0:
        return y
    env = np.sqrt(uniform_filter1d(np.square(y), size=max(1, int(0.03 * sr))) + 1e-12)
    thr = _rms(y) * 10 ** (threshold_db / 20)
    gain = np.where(env > thr, (env / thr) ** (1.0 / ratio - 1.0), 1.0)
    return y * uniform_filter1d(gain, size=max(1, int(0.01 * sr)))


def apply_production(y: np.ndarray, sr: int, p: Production) -> np.ndarray:
    """Run the chain on a mixed song: the room, the noise floor, the EQ, then the compressor.

    The room, the noise and the EQ are applied in one frequency-domain pass on a zero-padded
    FFT (a fast length that also leaves room for the reverb tail, so nothing wraps around):
    a song's length in samples may have a large prime factor, and separate FFTs of it made
    the demo's rendering several times slower. The reverb tail is scaled to the song's level
    before the wet/dry mix; the noise is set against the song (with its room) before the EQ,
    which colours it as it colours the music (noise recorded with the music, then mastered).
    """
    rng = np.random.default_rng([p.seed, 0x70726F64])  # "prod"
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    ir = _room(sr, p.reverb_rt60_s, rng) if p.reverb_wet > 0 else None
    n_fft = fft.next_fast_len(n + (len(ir) if ir is not None else sr // 10), real=True)
    spec = fft.rfft(y, n_fft)
    f = fft.rfftfreq(n_fft, 1.0 / sr)
    if ir is not None:
        tail = spec * fft.rfft(ir, n_fft)
        tail *= np.sqrt(_power(spec, n_fft) / max(_power(tail, n_fft), 1e-30))
        spec = (1.0 - p.reverb_wet) * spec + p.reverb_wet * tail
    if p.noise_snr_db is not None:
        # white Gaussian noise drawn in the frequency domain, shaped to the slope, set to the SNR
        noise = rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))
        noise *= np.maximum(f, 20.0) ** (p.noise_slope / 2)
        level = _power(spec, n_fft) * n_fft / n  # the song's mean square over its own n samples
        noise *= np.sqrt(level / _power(noise, n_fft) * 10 ** (-p.noise_snr_db / 10))
        spec = spec + noise
    out = fft.irfft(spec * _eq_gain(f, p), n_fft)[:n]
    return _compress(out, sr, p.compress_ratio, p.compress_threshold_db)
