"""Signal building blocks of the synthetic demo corpus: DSP helpers, drums and pitched instruments.

Everything here is plain numpy/scipy and deterministic given the ``numpy.random.Generator``
passed in. Functions return float64 mono signals at ``sr``; levels are relative and the
caller (:mod:`musiclust.synth.arrange`) mixes them.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import signal

# ----------------------------------------------------------------------------- utilities


def midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def add_at(dst: np.ndarray, src: np.ndarray, start: int) -> None:
    """Mix ``src`` into ``dst`` beginning at sample ``start``, clipped at both ends."""
    if start >= len(dst) or start + len(src) <= 0:
        return
    s0 = max(0, -start)
    d0 = max(0, start)
    m = min(len(src) - s0, len(dst) - d0)
    dst[d0 : d0 + m] += src[s0 : s0 + m]


@functools.lru_cache(maxsize=256)
def _butter(sr: int, kind: str, lo: float, hi: float, order: int) -> np.ndarray:
    nyq = 0.5 * sr
    lo = min(lo, 0.45 * sr)
    hi = min(hi, 0.47 * sr)
    if kind == "band":
        lo = min(lo, 0.8 * hi)
        return signal.butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")
    freq = lo
    if not 0 < freq < nyq:
        raise ValueError(f"filter frequency {freq} Hz outside (0, {nyq}) Hz")
    return signal.butter(order, freq, btype=kind, fs=sr, output="sos")


def lowpass(x: np.ndarray, sr: int, fc: float, order: int = 2) -> np.ndarray:
    """Butterworth low-pass (cut-off clamped below Nyquist)."""
    return signal.sosfilt(_butter(sr, "low", float(min(fc, 0.45 * sr)), 0.0, order), x)


def highpass(x: np.ndarray, sr: int, fc: float, order: int = 2) -> np.ndarray:
    """Butterworth high-pass (cut-off clamped below Nyquist)."""
    return signal.sosfilt(_butter(sr, "high", float(min(fc, 0.4 * sr)), 0.0, order), x)


def bandpass(x: np.ndarray, sr: int, lo: float, hi: float, order: int = 2) -> np.ndarray:
    """Butterworth band-pass; the band is clamped below Nyquist for low sample rates."""
    return signal.sosfilt(_butter(sr, "band", float(lo), float(hi), order), x)


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n) / sr


def _naive_saw(freq: float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    # naive (aliasing) saw; every caller low-passes it, which keeps aliasing inaudible enough
    ph = (phase0 + freq * np.arange(n) / sr) % 1.0
    return 2.0 * ph - 1.0


def _fades(y: np.ndarray, sr: int, attack: float = 0.003, release: float = 0.02) -> np.ndarray:
    na = min(len(y), max(1, int(attack * sr)))
    nr = min(len(y), max(1, int(release * sr)))
    y[:na] *= np.linspace(0.0, 1.0, na)
    y[-nr:] *= np.linspace(1.0, 0.0, nr)
    return y


# ----------------------------------------------------------------------------- drums


def kick(
    sr: int, rng: np.random.Generator, tune: float = 1.0, decay: float = 0.3, click: float = 0.3
) -> np.ndarray:
    """Bass drum: a sine whose pitch falls from ~160 to ~48 Hz, plus a short beater click."""
    n = int(sr * decay * 2.5)
    t = _t(n, sr)
    f = 48.0 * tune + 110.0 * tune * np.exp(-t / 0.03)
    y = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / decay)
    nc = int(0.004 * sr)
    y[:nc] += click * highpass(rng.standard_normal(nc), sr, 1500) * np.linspace(1, 0, nc)
    return _fades(y, sr, 0.001, 0.01)


def snare(
    sr: int, rng: np.random.Generator, tone: float = 190.0, decay: float = 0.16, snappy: float = 0.7
) -> np.ndarray:
    """Snare: a damped membrane tone plus band-passed wire noise."""
    n = int(sr * decay * 3)
    t = _t(n, sr)
    body = np.sin(2 * np.pi * tone * t) * np.exp(-t / 0.05) + 0.5 * np.sin(
        2 * np.pi * 1.6 * tone * t
    ) * np.exp(-t / 0.03)
    wires = bandpass(rng.standard_normal(n), sr, 1200, 9000) * np.exp(-t / decay)
    y = (1 - snappy) * body + snappy * 1.6 * wires
    return _fades(y, sr, 0.0005, 0.01)


def hat(sr: int, rng: np.random.Generator, open_: bool = False) -> np.ndarray:
    """Hi-hat: high-passed noise with metallic partials; ``open_`` rings longer."""
    decay = 0.22 if open_ else 0.035
    n = int(sr * decay * 3)
    t = _t(n, sr)
    metal = sum(np.sign(np.sin(2 * np.pi * f * t)) for f in (2050.0, 3070.0, 4150.0, 5430.0)) / 4
    noise = rng.standard_normal(n)
    y = highpass(0.6 * noise + 0.4 * metal, sr, 6500, order=4) * np.exp(-t / decay)
    return _fades(y, sr, 0.0005, 0.005)


def clap(sr: int, rng: np.random.Generator) -> np.ndarray:
    """Hand clap: three quick noise bursts and a short diffuse tail, band 0.9-4 kHz."""
    n = int(sr * 0.35)
    t = _t(n, sr)
    env = np.exp(-t / 0.08)
    for k, d in enumerate((0.0, 0.011, 0.023)):
        env += (1.2 - 0.2 * k) * np.exp(-np.maximum(t - d, 0) / 0.006) * (t >= d)
    y = bandpass(rng.standard_normal(n), sr, 900, 4000) * env
    return _fades(y, sr, 0.0005, 0.01)


def crash(sr: int, rng: np.random.Generator) -> np.ndarray:
    """Crash cymbal: long high-passed noise wash."""
    n = int(sr * 1.6)
    t = _t(n, sr)
    y = highpass(rng.standard_normal(n), sr, 3500, order=2) * np.exp(-t / 0.55)
    return _fades(y, sr, 0.001, 0.05)


def shaker(sr: int, rng: np.random.Generator) -> np.ndarray:
    """Shaker: band-passed noise with a soft attack."""
    n = int(sr * 0.09)
    t = _t(n, sr)
    env = (1 - np.exp(-t / 0.012)) * np.exp(-t / 0.03)
    return bandpass(rng.standard_normal(n), sr, 4000, 10000) * env


def hand_drum(sr: int, rng: np.random.Generator, stroke: str = "low", pitch: float = 1.0) -> np.ndarray:
    """Tabla/dhol-like membrane strokes.

    ``low``: the bass head (bayan/dhol left), a ~95 Hz membrane whose pitch bends up as
    the palm presses; ``high``: the treble head (dayan), a ringing near-harmonic tone
    (tabla heads are loaded so their modes are close to harmonic) with a finger slap;
    ``slap``: a dry closed stroke.
    """
    if stroke == "low":
        n = int(sr * 0.6)
        t = _t(n, sr)
        f = 95.0 * pitch * (1.0 + 0.35 * (1 - np.exp(-t / 0.12)))
        y = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.22)
        y += 0.3 * np.sin(2 * np.pi * np.cumsum(1.5 * f) / sr) * np.exp(-t / 0.08)
    elif stroke == "high":
        n = int(sr * 0.5)
        t = _t(n, sr)
        f0 = 420.0 * pitch
        y = sum(
            a * np.sin(2 * np.pi * k * f0 * t) * np.exp(-t / d)
            for k, a, d in ((1, 1.0, 0.25), (2, 0.6, 0.15), (3, 0.4, 0.1), (4, 0.25, 0.06))
        )
        ns = int(0.01 * sr)
        y[:ns] += 0.8 * bandpass(rng.standard_normal(ns), sr, 1500, 6000) * np.linspace(1, 0, ns)
    elif stroke == "slap":
        n = int(sr * 0.12)
        t = _t(n, sr)
        y = bandpass(rng.standard_normal(n), sr, 600, 3500) * np.exp(-t / 0.025)
        y += 0.5 * np.sin(2 * np.pi * 300 * pitch * t) * np.exp(-t / 0.03)
    else:
        raise ValueError(f"unknown hand-drum stroke {stroke!r} (low, high, slap)")
    return _fades(y, sr, 0.0005, 0.01)


# ----------------------------------------------------------------------------- pitched instruments


def piano(sr: int, freq: float, n: int, bright: float = 1.0) -> np.ndarray:
    """Additive piano-like tone: slightly inharmonic partials, higher ones decaying faster."""
    t = _t(n, sr)
    y = np.zeros(n)
    kmax = int(min(14, 0.45 * sr / freq))
    for k in range(1, kmax + 1):
        fk = k * freq * np.sqrt(1 + 2e-4 * k * k)
        amp = (1.0 / k**1.3) * (bright ** (k - 1) if bright < 1 else 1.0)
        y += amp * np.sin(2 * np.pi * fk * t) * np.exp(-t * (0.9 + 0.5 * k) * (freq / 260.0) ** 0.3)
    nh = int(0.004 * sr)  # hammer
    y[:nh] *= np.linspace(0, 1, nh)
    return _fades(y, sr, 0.002, 0.03)


def pad(
    sr: int, freq: float, n: int, cutoff: float = 2500.0, voices: int = 3, detune: float = 0.008
) -> np.ndarray:
    """Detuned-saw pad (supersaw when ``voices`` is large) with a slow attack and release."""
    y = np.zeros(n)
    for v in range(voices):
        d = 1.0 + detune * (v - (voices - 1) / 2) / max(1, (voices - 1) / 2)
        y += _naive_saw(freq * d, n, sr, phase0=0.37 * v)
    y = lowpass(y / voices, sr, cutoff, order=2)
    t = _t(n, sr)
    env = np.minimum(1.0, t / 0.12) * np.minimum(1.0, (n / sr - t) / 0.15 + 1e-9)
    return y * np.clip(env, 0, 1)


def pluck(
    sr: int, freq: float, n: int, rng: np.random.Generator, bright: float = 0.6, sustain: float = 0.996
) -> np.ndarray:
    """Karplus-Strong plucked string (Karplus & Strong 1983), computed one period at a time.

    Each period is the previous one through the two-point averaging loop filter, so the loop
    runs n / period times with vector work inside, instead of once per sample.
    """
    period = max(2, int(round(sr / freq)))
    burst = rng.uniform(-1, 1, period)
    # a darker excitation (pluck nearer the string's middle or with the thumb) = fewer partials
    burst = signal.lfilter([1 - (1 - bright)], [1, -(1 - bright)], burst)
    n_per = n // period + 2
    y = np.empty(n_per * period)
    y[:period] = burst
    prev_last = burst[-1]
    for k in range(1, n_per):
        blk = y[(k - 1) * period : k * period]
        shifted = np.concatenate(([prev_last], blk[:-1]))
        prev_last = blk[-1]
        y[k * period : (k + 1) * period] = sustain * 0.5 * (blk + shifted)
    y = y[:n] - np.mean(y[:n])
    return _fades(y, sr, 0.001, 0.02)


def power_chord(sr: int, freq: float, n: int, mute: bool, drive: float = 6.0) -> np.ndarray:
    """Distorted electric-guitar power chord: root, fifth and octave saws through tanh and a cabinet low-pass."""
    y = (
        _naive_saw(freq, n, sr)
        + 0.8 * _naive_saw(freq * 1.4983, n, sr, 0.21)
        + 0.6 * _naive_saw(freq * 2.0, n, sr, 0.5)
    )
    y = highpass(y, sr, 90)
    y = np.tanh(drive * y / 2.4)
    y = lowpass(y, sr, 3200, order=4)  # speaker cabinet
    t = _t(n, sr)
    env = np.exp(-t / (0.09 if mute else 1.2))
    return _fades(y * env, sr, 0.002, 0.02)


def bass(sr: int, freq: float, n: int, kind: str = "finger") -> np.ndarray:
    """Bass note: ``finger`` (electric bass), ``sub`` (808-style sine with a pitch drop) or ``saw``."""
    t = _t(n, sr)
    if kind == "finger":
        y = (
            np.sin(2 * np.pi * freq * t)
            + 0.4 * np.sin(4 * np.pi * freq * t)
            + 0.15 * np.sin(6 * np.pi * freq * t)
        )
        y *= np.exp(-t / 0.6)
    elif kind == "sub":
        f = freq * (1 + 0.5 * np.exp(-t / 0.02))
        y = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.9)
    elif kind == "saw":
        y = lowpass(_naive_saw(freq, n, sr), sr, 600, order=2) * np.exp(-t / 0.5)
    else:
        raise ValueError(f"unknown bass kind {kind!r}")
    return _fades(y, sr, 0.004, 0.02)


def organ_drone(sr: int, freq: float, n: int) -> np.ndarray:
    """Harmonium-like reed drone (root and fifth), as behind much Bengali folk singing."""
    t = _t(n, sr)
    y = np.zeros(n)
    for ratio, a in ((1.0, 1.0), (1.5, 0.6), (2.0, 0.5)):
        y += a * lowpass(np.sign(np.sin(2 * np.pi * freq * ratio * t)) * 0.5, sr, 1800)
    env = np.minimum(1.0, t / 0.3)
    return _fades(y * env, sr, 0.01, 0.3)
