"""The formant singer of the synthetic demo corpus.

A Klatt-style cascade formant synthesizer (Klatt 1980, "Software for a
cascade/parallel formant synthesizer", JASA 67(3)): a Rosenberg glottal pulse train and an
aspiration noise source go through a nasal pole-zero pair and four formant resonators whose
frequencies follow phone targets; fricatives and stop bursts are band-limited noise added
after the tract. Phone targets are textbook values (Peterson & Barney 1952; Hillenbrand
et al. 1995 for English; published acoustic descriptions of Standard Colloquial Bengali for
Bangla), adult male; a singer's ``formant_scale`` shifts them for other voices.
Deterministic given the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

from musiclust.synth.instruments import add_at, bandpass

#: Noise bands (Hz) of fricatives and stop bursts, by place of articulation.
NOISE_BANDS: dict[str, tuple[float, float]] = {
    "s": (4200.0, 9500.0),
    "sh": (2000.0, 5500.0),
    "f": (1200.0, 9000.0),
    "th": (1500.0, 8000.0),
    "lab": (400.0, 2500.0),
    "den": (2500.0, 7000.0),
    "alv": (3000.0, 8000.0),
    "ret": (1500.0, 3800.0),
    "pal": (2000.0, 5000.0),
    "vel": (1200.0, 3200.0),
}


@dataclass(frozen=True)
class Phone:
    """Acoustic target of one phone (adult male formants in Hz).

    ``kind``: vowel, stop, fric, affr, nasal, liquid, glide, tap or h. For consonants,
    ``formants`` is the place's locus, towards which neighbouring vowels bend.
    ``vot``: seconds of aspiration after a stop's release (long for aspirated stops);
    ``breathy``: murmured (voiced aspirated) release; ``nasal``: nasalised vowel or nasal
    consonant; ``end``: second target of a diphthong.
    """

    kind: str
    formants: tuple[float, float, float]
    voiced: bool = True
    noise: str | None = None
    noise_amp: float = 0.0
    vot: float = 0.0
    breathy: bool = False
    nasal: bool = False
    dur: float = 0.07
    end: tuple[float, float, float] | None = None
    amp: float = 1.0


def _v(
    f1: float, f2: float, f3: float, end: tuple[float, float, float] | None = None, nasal: bool = False
) -> Phone:
    return Phone("vowel", (f1, f2, f3), end=end, nasal=nasal)


_LOC = {
    "lab": (300.0, 900.0, 2200.0),
    "den": (350.0, 1500.0, 2600.0),
    "alv": (350.0, 1750.0, 2650.0),
    "ret": (380.0, 1650.0, 1900.0),
    "pal": (300.0, 2100.0, 2800.0),
    "vel": (320.0, 1900.0, 2400.0),
    "glot": (500.0, 1500.0, 2500.0),
}


def _stop(place: str, voiced: bool, vot: float, breathy: bool = False) -> Phone:
    return Phone(
        "stop", _LOC[place], voiced=voiced, noise=place, noise_amp=0.45, vot=vot, breathy=breathy, dur=0.06
    )


PHONES: dict[str, Phone] = {
    # English vowels (Hillenbrand et al. 1995, male means), diphthongs glide to their second target
    "i": _v(300, 2300, 3000),
    "ɪ": _v(400, 2000, 2600),
    "eɪ": _v(480, 2100, 2700, end=(350, 2300, 2850)),
    "ɛ": _v(580, 1800, 2600),
    "æ": _v(660, 1720, 2450),
    "ɑ": _v(750, 1100, 2450),
    "ɔ": _v(600, 900, 2450),
    "oʊ": _v(500, 900, 2400, end=(380, 850, 2300)),
    "ʊ": _v(450, 1050, 2300),
    "u": _v(320, 900, 2250),
    "ʌ": _v(640, 1200, 2400),
    "ə": _v(500, 1450, 2500),
    "ɝ": _v(480, 1350, 1650),  # r-coloured: the low F3 is the cue
    "aɪ": _v(750, 1250, 2500, end=(420, 2000, 2600)),
    "aʊ": _v(750, 1250, 2450, end=(450, 950, 2300)),
    "ɔɪ": _v(580, 900, 2450, end=(420, 2000, 2600)),
    # Bangla oral vowels /i e æ a ɔ o u/ (central open /a/, no reduction, no diphthong glide)
    "e": _v(420, 2150, 2750),
    "a": _v(780, 1350, 2500),
    "o": _v(430, 850, 2400),
    # Bangla nasalised vowels (candrabindu): nasal pole-zero pair switched on
    "ĩ": _v(300, 2300, 2950, nasal=True),
    "ẽ": _v(420, 2150, 2750, nasal=True),
    "æ̃": _v(620, 1800, 2550, nasal=True),
    "ã": _v(780, 1350, 2500, nasal=True),
    "ɔ̃": _v(600, 950, 2450, nasal=True),
    "õ": _v(430, 850, 2400, nasal=True),
    "ũ": _v(320, 800, 2300, nasal=True),
    # stops: English voiceless stops are aspirated at syllable onset (VOT ~ 60 ms)
    "p": _stop("lab", False, 0.055),
    "b": _stop("lab", True, 0.0),
    "t": _stop("alv", False, 0.06),
    "d": _stop("alv", True, 0.0),
    "k": _stop("vel", False, 0.065),
    "g": _stop("vel", True, 0.0),
    # Bangla stops: four-way contrast, dental vs retroflex, unaspirated voiceless ~ 12 ms VOT
    "p0": _stop("lab", False, 0.012),
    "pʰ": _stop("lab", False, 0.085),
    "bʱ": _stop("lab", True, 0.07, breathy=True),
    "t̪": _stop("den", False, 0.012),
    "t̪ʰ": _stop("den", False, 0.085),
    "d̪": _stop("den", True, 0.0),
    "d̪ʱ": _stop("den", True, 0.07, breathy=True),
    "ʈ": _stop("ret", False, 0.012),
    "ʈʰ": _stop("ret", False, 0.085),
    "ɖ": _stop("ret", True, 0.0),
    "ɖʱ": _stop("ret", True, 0.07, breathy=True),
    "k0": _stop("vel", False, 0.012),
    "kʰ": _stop("vel", False, 0.085),
    "gʱ": _stop("vel", True, 0.07, breathy=True),
    # affricates
    "tʃ": Phone("affr", _LOC["pal"], voiced=False, noise="sh", noise_amp=0.4, dur=0.09),
    "dʒ": Phone("affr", _LOC["pal"], voiced=True, noise="sh", noise_amp=0.25, dur=0.08),
    "tʃʰ": Phone("affr", _LOC["pal"], voiced=False, noise="sh", noise_amp=0.4, vot=0.07, dur=0.09),
    "dʒʱ": Phone(
        "affr", _LOC["pal"], voiced=True, noise="sh", noise_amp=0.25, vot=0.06, breathy=True, dur=0.08
    ),
    # fricatives
    "s": Phone("fric", _LOC["alv"], voiced=False, noise="s", noise_amp=0.5, dur=0.11),
    "z": Phone("fric", _LOC["alv"], voiced=True, noise="s", noise_amp=0.25, dur=0.09),
    "ʃ": Phone("fric", _LOC["pal"], voiced=False, noise="sh", noise_amp=0.55, dur=0.11),
    "ʒ": Phone("fric", _LOC["pal"], voiced=True, noise="sh", noise_amp=0.25, dur=0.08),
    "f": Phone("fric", _LOC["lab"], voiced=False, noise="f", noise_amp=0.16, dur=0.1),
    "v": Phone("fric", _LOC["lab"], voiced=True, noise="f", noise_amp=0.08, dur=0.07),
    "θ": Phone("fric", _LOC["den"], voiced=False, noise="th", noise_amp=0.12, dur=0.1),
    "ð": Phone("fric", _LOC["den"], voiced=True, noise="th", noise_amp=0.06, dur=0.06),
    "h": Phone("h", _LOC["glot"], voiced=False, dur=0.07),
    # sonorants
    "m": Phone("nasal", (280.0, 1000.0, 2300.0), nasal=True, dur=0.08, amp=0.45),
    "n": Phone("nasal", (280.0, 1500.0, 2500.0), nasal=True, dur=0.07, amp=0.45),
    "ŋ": Phone("nasal", (280.0, 2000.0, 2500.0), nasal=True, dur=0.08, amp=0.4),
    "l": Phone("liquid", (360.0, 1050.0, 2800.0), dur=0.07, amp=0.6),
    "r": Phone("liquid", (420.0, 1150.0, 1600.0), dur=0.08, amp=0.65),  # English approximant, F3 dip
    "ɾ": Phone("tap", (400.0, 1600.0, 2600.0), dur=0.03, amp=0.25),  # Bangla tap
    "ɽ": Phone("tap", (400.0, 1550.0, 1900.0), dur=0.035, amp=0.3),  # Bangla retroflex flap
    "w": Phone("glide", (300.0, 700.0, 2250.0), dur=0.06, amp=0.7),
    "j": Phone("glide", (280.0, 2200.0, 2900.0), dur=0.05, amp=0.7),
}


@dataclass(frozen=True)
class Voice:
    """One singer: vocal-tract size, breathiness and vibrato."""

    formant_scale: float = 1.0  # ~1.0 adult male, ~1.15-1.2 adult female
    breathiness: float = 0.05
    vibrato_hz: float = 5.5
    vibrato_semitones: float = 0.35
    open_quotient: float = 0.6


@dataclass(frozen=True)
class SungSyllable:
    """One sung syllable: phones (onset + vowel + coda), when, how long, which pitch."""

    phones: tuple[str, ...]
    start_s: float
    dur_s: float
    midi: float
    accent: float = 1.0


_GLOT_N = 4096


@functools.lru_cache(maxsize=64)
def _glottal_table(open_quotient: float) -> np.ndarray:
    """One period of Rosenberg's glottal flow pulse (opening 65% / closing 35% of the open phase)."""
    p = np.arange(_GLOT_N) / _GLOT_N
    op, cl = 0.65 * open_quotient, 0.35 * open_quotient
    return np.where(
        p < op,
        0.5 * (1 - np.cos(np.pi * p / op)),
        np.where(p < op + cl, np.cos(0.5 * np.pi * (p - op) / cl), 0.0),
    )


def _resonator(freq: np.ndarray, bw: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Klatt resonator coefficients (A, B, C) of y[n] = A x[n] + B y[n-1] + C y[n-2]."""
    c = -np.exp(-2 * np.pi * bw / sr)
    b = 2 * np.exp(-np.pi * bw / sr) * np.cos(2 * np.pi * freq / sr)
    a = 1 - b - c
    return a, b, c


def _layout(sylls: list[SungSyllable]) -> list[tuple[float, float, str, int]]:
    """Timed phone segments ``(t0, t1, symbol, syllable index)`` of a phrase.

    Onset consonants start at the note onset and the vowel fills the note until the coda
    consonants, as singers do; consonants are squeezed when a note is short.
    """
    segs: list[tuple[float, float, str, int]] = []
    for si, syl in enumerate(sylls):
        vi = next(i for i, p in enumerate(syl.phones) if PHONES[p].kind == "vowel")
        onset, coda = syl.phones[:vi], syl.phones[vi + 1 :]
        cons = [PHONES[p].dur + PHONES[p].vot for p in onset + coda]
        budget = max(0.0, syl.dur_s - 0.06)
        squeeze = min(1.0, 0.6 * budget / sum(cons)) if cons else 1.0
        t = syl.start_s
        for p in onset:
            d = (PHONES[p].dur + PHONES[p].vot) * squeeze
            segs.append((t, t + d, p, si))
            t += d
        coda_d = sum(cons[len(onset) :]) * squeeze
        v_end = syl.start_s + syl.dur_s - coda_d
        segs.append((t, v_end, syl.phones[vi], si))
        t = v_end
        for p in coda:
            d = (PHONES[p].dur + PHONES[p].vot) * squeeze
            segs.append((t, t + d, p, si))
            t += d
    return segs


@dataclass
class _Tracks:
    """Frame-level control tracks of one phrase (one row per 10 ms hop) and its noise events."""

    F: np.ndarray  # (nf, 4) formant frequencies, Hz
    Bw: np.ndarray  # (nf, 4) formant bandwidths, Hz
    voicing: np.ndarray  # (nf,) glottal source amplitude
    asp: np.ndarray  # (nf,) aspiration noise amplitude
    nasal: np.ndarray  # (nf,) velum opening, 0..1
    pitch: np.ndarray  # (nf,) MIDI note, NaN outside notes
    vib: np.ndarray  # (nf,) vibrato depth, 0..1
    fric_events: list[tuple[int, int, str, float, bool]]  # (start, end, band, amp, is_burst) in samples


def _frame_targets(
    segs: list[tuple[float, float, str, int]],
    sylls: list[SungSyllable],
    voice: Voice,
    sr: int,
    hop: int,
    nf: int,
) -> _Tracks:
    """Frame-level targets of every timed phone: formants, voicing, aspiration, nasality, pitch."""
    fs = voice.formant_scale
    tr = _Tracks(
        F=np.tile(np.array([500.0, 1500.0, 2500.0, 3500.0]) * fs, (nf, 1)),
        Bw=np.tile(np.array([80.0, 100.0, 150.0, 250.0]), (nf, 1)),
        voicing=np.zeros(nf),
        asp=np.zeros(nf),
        nasal=np.zeros(nf),
        pitch=np.full(nf, np.nan),
        vib=np.zeros(nf),
        fric_events=[],
    )

    def fr(t: float) -> int:
        return min(nf - 1, max(0, int(round(t * sr / hop))))

    for k, (t0, t1, sym, si) in enumerate(segs):
        ph = PHONES[sym]
        syl = sylls[si]
        a, b = fr(t0), max(fr(t1), fr(t0) + 1)
        tr.pitch[a:b] = syl.midi
        if ph.kind == "vowel":
            _vowel_targets(tr, a, b, ph, syl, voice, sr, hop)
            continue
        # the next vowel's formants colour aspiration and the release of a stop
        nxt = next((PHONES[s[2]] for s in segs[k + 1 :] if PHONES[s[2]].kind == "vowel"), ph)
        _consonant_targets(tr, a, b, t0, t1, ph, nxt, syl, fs, sr, fr)
    return tr


def _vowel_targets(
    tr: _Tracks, a: int, b: int, ph: Phone, syl: SungSyllable, voice: Voice, sr: int, hop: int
) -> None:
    """Frames ``a:b`` of a vowel: its formants (gliding for a diphthong), full voicing, vibrato."""
    fs = voice.formant_scale
    f3 = np.array(ph.formants)
    if ph.end is None:
        tr.F[a:b, :3] = f3 * fs
    else:  # diphthong: hold, then glide over the second half
        w = np.clip((np.arange(b - a) / max(1, b - a - 1) - 0.35) / 0.55, 0, 1)[:, None]
        tr.F[a:b, :3] = ((1 - w) * f3 + w * np.array(ph.end)) * fs
    tr.voicing[a:b] = syl.accent
    tr.asp[a:b] = voice.breathiness
    tr.nasal[a:b] = 1.0 if ph.nasal else 0.0
    if syl.dur_s > 0.3:
        # vibrato sets in after the note has settled, as trained singers do
        ramp = np.clip((np.arange(b - a) * hop / sr - 0.15) / 0.2, 0, 1)
        tr.vib[a:b] = ramp


def _consonant_targets(
    tr: _Tracks,
    a: int,
    b: int,
    t0: float,
    t1: float,
    ph: Phone,
    nxt: Phone,
    syl: SungSyllable,
    fs: float,
    sr: int,
    fr: Callable[[float], int],
) -> None:
    """Frames ``a:b`` (``t0..t1`` s) of a consonant: its locus, voicing by kind, noise events."""
    tr.F[a:b, :3] = np.array(ph.formants) * fs
    if ph.kind in ("nasal", "liquid", "glide", "tap"):
        tr.voicing[a:b] = ph.amp * syl.accent
        tr.nasal[a:b] = 1.0 if ph.nasal else 0.0
        tr.Bw[a:b, :3] = [100.0, 150.0, 250.0] if ph.kind == "nasal" else [90.0, 120.0, 180.0]
        if ph.kind == "tap":  # a brief tongue contact: dip in the middle
            mid = (a + b) // 2
            tr.voicing[mid : mid + 1] = 0.05
    elif ph.kind == "h":
        tr.F[a:b, :3] = np.array(nxt.formants) * fs
        tr.asp[a:b] = 0.7
    elif ph.kind == "fric":
        tr.voicing[a:b] = 0.35 if ph.voiced else 0.0
        tr.fric_events.append((int(t0 * sr), int(t1 * sr), ph.noise or "s", ph.noise_amp, False))
    elif ph.kind in ("stop", "affr"):
        total = t1 - t0
        vot = ph.vot * total / max(1e-6, ph.dur + ph.vot)
        rel = t1 - vot  # release instant
        tr.voicing[a : fr(rel)] = 0.12 if ph.voiced else 0.0  # closure (voice bar if voiced)
        if ph.kind == "stop":
            tr.fric_events.append(
                (int(rel * sr), int(rel * sr + 0.012 * sr), ph.noise or "alv", ph.noise_amp, True)
            )
        else:
            tr.fric_events.append(
                (int((rel - 0.05) * sr), int(rel * sr), ph.noise or "sh", ph.noise_amp, False)
            )
        if vot > 0:
            c, d = fr(rel), max(fr(t1), fr(rel) + 1)
            tr.F[c:d, :3] = np.array(nxt.formants) * fs
            tr.asp[c:d] = 0.55
            if ph.breathy:
                tr.voicing[c:d] = 0.6 * syl.accent
                tr.asp[c:d] = 0.45


def _coarticulate(tr: _Tracks, sr: int) -> None:
    """Smooth the step targets: formant transitions of ~30 ms, amplitude ramps of ~15 ms."""
    tr.F = uniform_filter1d(tr.F, size=3, axis=0, mode="nearest")
    tr.Bw = uniform_filter1d(tr.Bw, size=2, axis=0, mode="nearest")
    tr.voicing = uniform_filter1d(tr.voicing, size=2, mode="nearest")
    tr.asp = uniform_filter1d(tr.asp, size=2, mode="nearest")
    tr.nasal = uniform_filter1d(tr.nasal, size=2, mode="nearest")
    tr.F[:, :3] = np.minimum(tr.F[:, :3], 0.42 * sr)
    tr.F[:, 3] = np.minimum(tr.F[:, 3], 0.45 * sr)


def _excitation(
    tr: _Tracks, voice: Voice, sr: int, hop: int, nf: int, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The source signal (glottal pulses plus aspiration, ``n`` samples) and its voicing track per sample."""
    # pitch: hold through unvoiced gaps, glide (portamento) between notes, vibrato
    idx = np.where(~np.isnan(tr.pitch))[0]
    pitch = np.interp(np.arange(nf), idx, tr.pitch[idx])
    pitch = uniform_filter1d(pitch, size=4, mode="nearest")
    # frame tracks -> samples by linear interpolation, all tracks in one pass
    pos = np.arange(n) / hop
    i0 = np.minimum(pos.astype(np.int64), nf - 2)
    frac = (pos - i0)[:, None]
    tracks = np.column_stack([pitch, tr.vib, tr.voicing, tr.asp])
    p_s, vib_s, vo_s, as_s = (tracks[i0] * (1 - frac) + tracks[i0 + 1] * frac).T
    ts = np.arange(n) / sr
    drift = np.interp(ts, np.linspace(0, ts[-1], 8), rng.normal(0, 0.08, 8))  # singer's slow pitch wander
    p_s = (
        p_s
        + drift
        + vib_s * voice.vibrato_semitones * np.sin(2 * np.pi * voice.vibrato_hz * ts + rng.uniform(0, 6.28))
    )
    f0 = 440.0 * np.exp2((p_s - 69.0) / 12.0)

    # Rosenberg glottal pulse (flow), differentiated: the excitation with lip radiation folded in
    phase = np.cumsum(f0) / sr
    flow = _glottal_table(round(voice.open_quotient, 3))[((phase % 1.0) * _GLOT_N).astype(np.int64)]
    glot = np.diff(flow, prepend=0.0)
    glot /= np.std(glot) + 1e-12
    noise = rng.standard_normal(n)
    # aspiration noise is modulated by the glottal opening when voicing (breathy voice)
    exc = (
        vo_s * glot * (1 + 0.04 * rng.standard_normal(1))
        + as_s * noise * np.where(vo_s > 0.05, 0.4 + flow, 1.0) * 0.6
    )
    return exc, vo_s


def _vocal_tract(exc: np.ndarray, tr: _Tracks, sr: int, hop: int, nf: int, n: int) -> np.ndarray:
    """Filter the source through the nasal pole-zero pair and the four formant resonators."""
    # time-varying cascade, one lfilter call per run of frames with (nearly) equal parameters;
    # the five second-order sections are multiplied into one order-10 filter per run because a
    # single lfilter call costs far less than a sosfilt call, and runs are short in transitions
    params = np.column_stack([tr.F, tr.Bw, tr.nasal])
    tol = np.r_[[0.02] * 4, [0.1] * 4, [0.05]]
    rel = np.abs(np.diff(params, axis=0)) / np.maximum(np.abs(params[:-1]), 1.0)
    change = np.any(rel > tol, axis=1)
    starts = np.r_[0, np.where(change)[0] + 1]
    stops = np.r_[starts[1:], nf]
    P = params[starts]
    G = len(P)
    a_, b_, c_ = _resonator(P[:, :4], P[:, 4:8], sr)  # (G, 4)
    # nasal pole at 270 Hz; its zero moves up to ~500 Hz when the velum opens (Klatt's FNZ)
    ap, bp, cp = _resonator(np.full(G, 270.0), np.full(G, 100.0), sr)
    az, bz, cz = _resonator(270.0 + 230.0 * P[:, 8], np.full(G, 100.0), sr)
    num = np.column_stack([np.ones(G), -bz, -cz]) * (ap / az * np.prod(a_, axis=1))[:, None]
    den = np.column_stack([np.ones(G), -bp, -cp])
    for k in range(4):
        q = np.column_stack([np.ones(G), -b_[:, k], -c_[:, k]])
        nxt = np.zeros((G, den.shape[1] + 2))
        for j in range(3):
            nxt[:, j : j + den.shape[1]] += den * q[:, j : j + 1]
        den = nxt
    out = np.empty(n)
    zi = np.zeros(den.shape[1] - 1)
    for g in range(G):
        s0, s1 = starts[g] * hop, stops[g] * hop
        out[s0:s1], zi = signal.lfilter(num[g], den[g], exc[s0:s1], zi=zi)
    return out


def _add_frication(
    out: np.ndarray,
    events: list[tuple[int, int, str, float, bool]],
    noise_bank: dict[str, np.ndarray] | None,
    rng: np.random.Generator,
    sr: int,
) -> None:
    """Add fricative noise and stop bursts to ``out`` in place."""
    # frication and bursts bypass the tract (front cavity), from band-limited noise buffers
    bank = noise_bank if noise_bank is not None else {}
    for s0, s1, band, amp, burst in events:
        if band not in bank:
            lo, hi = NOISE_BANDS[band]
            bank[band] = bandpass(rng.standard_normal(sr), sr, lo, hi, order=2)
            bank[band] /= np.std(bank[band]) + 1e-12
        m = max(1, s1 - s0)
        src = bank[band]
        off = int(rng.integers(0, max(1, len(src) - m)))
        chunk = np.resize(src[off:], m) if off + m > len(src) else src[off : off + m]
        if burst:
            env = np.exp(-np.arange(m) / (0.004 * sr))
        else:
            ramp = max(1, min(m // 3, int(0.02 * sr)))
            env = np.ones(m)
            env[:ramp] = np.linspace(0, 1, ramp)
            env[-ramp:] = np.linspace(1, 0, ramp)
        add_at(out, 0.05 * amp * chunk * env, s0)


def sing(
    sylls: list[SungSyllable],
    sr: int,
    rng: np.random.Generator,
    voice: Voice,
    noise_bank: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Render a sung phrase (a list of syllables, times relative to 0) with the formant singer.

    Returns a signal of RMS ~0.1 over its voiced part, lasting until the last syllable
    ends plus a short release.
    """
    if not sylls:
        return np.zeros(0)
    segs = _layout(sylls)
    end_s = max(s[1] for s in segs) + 0.08
    hop = max(1, int(round(sr * 0.01)))
    nf = int(np.ceil(end_s * sr / hop)) + 1
    n = nf * hop
    tr = _frame_targets(segs, sylls, voice, sr, hop, nf)
    _coarticulate(tr, sr)
    exc, vo_s = _excitation(tr, voice, sr, hop, nf, n, rng)
    out = _vocal_tract(exc, tr, sr, hop, nf, n)
    voiced = vo_s > 0.3
    level = np.std(out[voiced]) if voiced.any() else np.std(out)
    out *= 0.1 / (level + 1e-12)

    _add_frication(out, tr.fric_events, noise_bank, rng, sr)
    return out
