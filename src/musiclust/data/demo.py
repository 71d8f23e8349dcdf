"""The built-in synthetic demo corpus: sung Bangla/English songs in several genres.

Every song is composed and rendered by this module from a seed, without any downloaded
data, so the whole pipeline can run offline and its results can be checked against known
labels. The corpus is *synthetic*: it exists to exercise and sanity-check the pipeline,
not to stand in for real music.

What carries each label (and nothing else should):

* **genre** is carried by the music: tempo range, drum pattern and drum sounds, the
  harmony instrument (bright piano/pad for pop, distorted power chords for rock,
  Karplus-Strong plucked strings with hand drums and a drone for folk, detuned supersaw
  with sidechain pumping, a 16th-note arpeggio and sub bass for electronic), bass style,
  major/minor preference and chord progressions; lyrics mix in genre-flavoured words.
* **language** is carried by the sung line (:func:`musiclust.data.synth.sing`): English
  is stress-timed with CVC syllables, clusters, aspirated stops, diphthongs and reduced
  vowels; Bangla is syllable-timed, CV-dominant, with pure vowels, nasalised vowels,
  dental/retroflex and four-way (plain/aspirated/voiced/murmured) stops; and by the
  lyrics text (Latin vs Bengali script).

Within a cell songs vary in key, mode, tempo, progression, instrument mix, singer
(male/female range), loudness and duration. Durations, loudness, presence of lyrics,
artist names and ids are drawn independently of the labels, so none of them leaks one.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from musiclust.data import synth
from musiclust.fileio import safe_id
from musiclust.params import DemoParams

log = logging.getLogger(__name__)

#: Fraction of demo songs published without a lyrics text (so masking downstream is exercised).
NO_LYRICS_FRACTION = 0.1

# ============================================================================ word lists


#: Part-of-speech tags of the word lists (see the header of wordlists/en.txt and bn.txt).
TAGS = frozenset("narvtiedposcx")


@dataclass(frozen=True)
class Word:
    """A lyric word: its part of speech, sung syllables (phone tuples) and which syllables are stressed."""

    text: str
    tag: str
    syllables: tuple[tuple[str, ...], ...]
    stressed: tuple[bool, ...]


def _parse_transcription(text: str) -> tuple[tuple[tuple[str, ...], ...], tuple[bool, ...]]:
    sylls, stress = [], []
    for part in text.split(" . "):
        toks = part.split()
        is_stressed = bool(toks) and toks[0].startswith("'")
        if is_stressed:
            toks[0] = toks[0][1:]
        for t in toks:
            if t not in synth.PHONES:
                raise ValueError(f"unknown phone {t!r} in transcription {text!r}")
        if not any(synth.PHONES[t].kind == "vowel" for t in toks):
            raise ValueError(f"syllable {part!r} of {text!r} has no vowel")
        sylls.append(tuple(toks))
        stress.append(is_stressed)
    return tuple(sylls), tuple(stress)


@functools.lru_cache(maxsize=32)
def load_wordlist(name: str) -> tuple[Word, ...]:
    """Words of the packaged list ``wordlists/<name>.txt`` (``en``, ``bn``, ``en_rock``, ...).

    English lines carry a transcription; Bangla words are transcribed from the script by
    :func:`bangla_phones` unless the line gives one.
    """
    try:
        text = resources.files("musiclust.data").joinpath(f"wordlists/{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"word list wordlists/{name}.txt is missing from the musiclust package; reinstall it (pip install -e .)"
        ) from None
    words = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, tag, trans = (line.split("\t") + ["", ""])[:3]
        try:
            if tag not in TAGS:
                raise ValueError(f"tag {tag!r} of {word!r} is not one of {''.join(sorted(TAGS))}")
            if trans.strip():
                sylls, stress = _parse_transcription(trans.strip())
            else:
                sylls = bangla_phones(word)
                stress = tuple(i == 0 for i in range(len(sylls)))  # Bangla stresses the first syllable
        except ValueError as exc:
            raise ValueError(f"wordlists/{name}.txt line {lineno}: {exc}") from None
        words.append(Word(word, tag, sylls, stress))
    if not words:
        raise ValueError(f"wordlists/{name}.txt has no words")
    return tuple(words)


# ---------------------------------------------------------------------------- Bangla grapheme-to-phoneme

_BN_CONS = {
    "ক": "k0",
    "খ": "kʰ",
    "গ": "g",
    "ঘ": "gʱ",
    "ঙ": "ŋ",
    "চ": "tʃ",
    "ছ": "tʃʰ",
    "জ": "dʒ",
    "ঝ": "dʒʱ",
    "ঞ": "n",
    "ট": "ʈ",
    "ঠ": "ʈʰ",
    "ড": "ɖ",
    "ঢ": "ɖʱ",
    "ণ": "n",
    "ত": "t̪",
    "থ": "t̪ʰ",
    "দ": "d̪",
    "ধ": "d̪ʱ",
    "ন": "n",
    "প": "p0",
    "ফ": "pʰ",
    "ব": "b",
    "ভ": "bʱ",
    "ম": "m",
    "য": "dʒ",
    "র": "ɾ",
    "ল": "l",
    "শ": "ʃ",
    "ষ": "ʃ",
    "স": "ʃ",
    "হ": "h",
    "\u09dc": "ɽ",
    "\u09dd": "ɽ",
    "\u09df": "j",
}
_BN_VOWEL_SIGNS = {
    "া": ("a",),
    "ি": ("i",),
    "ী": ("i",),
    "ু": ("u",),
    "ূ": ("u",),
    "ৃ": ("ɾ", "i"),
    "ে": ("e",),
    "ৈ": ("o", "j"),
    "ো": ("o",),
    "ৌ": ("o", "w"),
}
_BN_VOWELS = {
    "অ": ("ɔ",),
    "আ": ("a",),
    "ই": ("i",),
    "ঈ": ("i",),
    "উ": ("u",),
    "ঊ": ("u",),
    "ঋ": ("ɾ", "i"),
    "এ": ("e",),
    "ঐ": ("o", "j"),
    "ও": ("o",),
    "ঔ": ("o", "w"),
}
_HASANTA, _NUKTA, _CANDRABINDU, _ANUSVARA, _VISARGA, _KHANDA_TA = "্", "়", "ঁ", "ং", "ঃ", "ৎ"
_NASALISED = {"i": "ĩ", "e": "ẽ", "æ": "æ̃", "a": "ã", "ɔ": "ɔ̃", "o": "õ", "u": "ũ"}


def bangla_phones(word: str) -> tuple[tuple[str, ...], ...]:
    """Rule-based pronunciation of a Bengali-script word, as syllables of phone symbols.

    Implements the main rules of Standard Colloquial Bengali: consonants carry the inherent
    vowel /ɔ/ unless a vowel sign or hasanta follows; the word-final inherent vowel is not
    pronounced (except after a conjunct, where it is /o/); /ɔ/ raises to /o/ before a
    syllable with /i/ or /u/ (vowel harmony); candrabindu nasalises the vowel; ya-, ba- and
    ma-phala after a consonant are not pronounced (they geminate it); word-initial এ
    before a consonant + /a/ or final consonant is /æ/. Good enough to sing, not a dictionary.
    """
    word = (
        word.replace("ড" + _NUKTA, "\u09dc").replace("ঢ" + _NUKTA, "\u09dd").replace("য" + _NUKTA, "\u09df")
    )
    phones: list[str] = []
    inherent_at: list[int] = []  # positions of inherent vowels in `phones`
    conj_final = False  # the last consonant was the second member of a conjunct
    chars = list(word)
    i = 0
    while i < len(chars):
        ch = chars[i]
        nxt = chars[i + 1] if i + 1 < len(chars) else ""
        if ch in _BN_CONS:
            prev_is_hasanta = i > 0 and chars[i - 1] == _HASANTA
            if prev_is_hasanta and ch in ("য", "ব", "ম") and phones:
                pass  # phala after a consonant: gemination, not a new sound
            else:
                phones.append(_BN_CONS[ch])
            if nxt == _HASANTA:
                i += 2
                conj_final = True
                continue
            if nxt in _BN_VOWEL_SIGNS:
                phones.extend(_BN_VOWEL_SIGNS[nxt])
                i += 2
                conj_final = False
                continue
            # inherent vowel (decided after the loop whether it is pronounced)
            inherent_at.append(len(phones))
            phones.append("ɔ")
            conj_final = prev_is_hasanta
            i += 1
            continue
        if ch in _BN_VOWELS:
            v = _BN_VOWELS[ch]
            if ch == "এ" and i == 0:
                rest = word[1:]
                if (
                    len(rest) >= 1
                    and rest[0] in _BN_CONS
                    and (len(rest) == 1 or rest[1] in ("া", _HASANTA) or rest[1] in _BN_CONS)
                ):
                    v = ("æ",)
            phones.extend(v)
        elif ch == _KHANDA_TA:
            phones.append("t̪")
        elif ch == _ANUSVARA:
            phones.append("ŋ")
        elif ch == _CANDRABINDU:
            for k in range(len(phones) - 1, -1, -1):
                if phones[k] in _NASALISED:
                    phones[k] = _NASALISED[phones[k]]
                    break
        # visarga, hasanta at word end, ZWJ/ZWNJ and anything else: silent
        i += 1
    # word-final inherent vowel: silent, or /o/ after a conjunct
    if inherent_at and inherent_at[-1] == len(phones) - 1:
        if conj_final:
            phones[-1] = "o"
        elif sum(synth.PHONES[p].kind == "vowel" for p in phones) > 1:  # a one-letter word keeps it
            phones.pop()
            inherent_at.pop()
    # vowel harmony: inherent /ɔ/ -> /o/ before a high vowel in the next syllable
    vowels = [k for k, p in enumerate(phones) if synth.PHONES[p].kind == "vowel"]
    for a, b in zip(vowels, vowels[1:]):
        if a in inherent_at and phones[b] in ("i", "u", "ĩ", "ũ"):
            phones[a] = "o"
    return _syllabify(phones)


def _syllabify(phones: list[str]) -> tuple[tuple[str, ...], ...]:
    """Split phones at vowels: one consonant between vowels starts the next syllable, more split."""
    nuclei = [k for k, p in enumerate(phones) if synth.PHONES[p].kind == "vowel"]
    if not nuclei:
        raise ValueError(f"no vowel in {phones}")
    bounds = [0]
    for a, b in zip(nuclei, nuclei[1:]):
        n_between = b - a - 1
        bounds.append(b if n_between == 0 else b - 1 if n_between == 1 else a + 2)
    bounds.append(len(phones))
    return tuple(tuple(phones[s:e]) for s, e in zip(bounds, bounds[1:]))


# ============================================================================ harmony

_NUMERALS = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def parse_chord(numeral: str, minor_key: bool) -> tuple[int, bool]:
    """Roman numeral -> (root semitones above the tonic, is_minor_chord).

    Upper case is a major triad and lower case minor; a ``b`` prefix flattens the root.
    In a minor key, ``III``, ``VI`` and ``VII`` refer to the natural-minor degrees.
    """
    flat = numeral.startswith("b")
    core = numeral[1:] if flat else numeral
    root = _NUMERALS[core.upper()]
    if minor_key and core.upper() in ("III", "VI", "VII"):
        root -= 1
    return (root - (1 if flat else 0)) % 12, core.islower()


def chord_pcs(root: int, is_minor: bool) -> tuple[int, int, int]:
    """Pitch classes (relative to the tonic) of a triad."""
    return (root, (root + (3 if is_minor else 4)) % 12, (root + 7) % 12)


# ============================================================================ genres


@dataclass(frozen=True)
class GenreRecipe:
    """How one genre is played: the musical properties that carry the genre label."""

    name: str
    tempo: tuple[float, float]
    minor_p: float
    steps: int  # grid steps per 4-beat bar (16: straight 16ths, 12: triplet feel)
    major_progressions: tuple[tuple[str, ...], ...]
    minor_progressions: tuple[tuple[str, ...], ...]
    arrange: Callable[[SongContext], dict[str, np.ndarray]]
    humanize_ms: float = 8.0


@dataclass
class Bar:
    """One 4-beat bar of the song's timeline."""

    start: int  # sample
    chord: tuple[int, bool]
    section: str  # intro, verse, chorus, break, outro


@dataclass
class SongContext:
    """Everything an arranger needs: the timeline, the key and a random generator."""

    sr: int
    n: int
    rng: np.random.Generator
    tempo: float
    tonic: int  # MIDI pitch class 0..11
    minor: bool
    steps: int
    bars: list[Bar]
    humanize_ms: float

    @property
    def beat(self) -> float:
        """Seconds per beat."""
        return 60.0 / self.tempo

    def step_samples(self, step: int) -> int:
        """Offset in samples of grid step ``step`` from the start of a bar."""
        return int(round(step * 4 * self.beat * self.sr / self.steps))

    def midi(self, pc: int, octave_floor: int) -> int:
        """Lowest MIDI note with pitch class tonic+pc at or above ``octave_floor``."""
        return octave_floor + ((self.tonic + pc - octave_floor) % 12)

    def play(
        self,
        bus: np.ndarray,
        pattern: str,
        samples: list[np.ndarray] | np.ndarray,
        sections: tuple[str, ...] | None = None,
        every: int = 1,
    ) -> None:
        """Place a one-shot on a drum grid: ``X`` loud, ``x`` normal, ``o`` ghost, ``.`` rest."""
        vel = {"X": 1.0, "x": 0.72, "o": 0.4}
        variants = samples if isinstance(samples, list) else [samples]
        jit = self.humanize_ms / 1000.0 * self.sr
        for bi, bar in enumerate(self.bars):
            if (sections and bar.section not in sections) or bi % every:
                continue
            for step, ch in enumerate(pattern):
                if ch in vel:
                    pos = bar.start + self.step_samples(step)
                    if jit:
                        pos += int(self.rng.normal(0, jit))
                    g = vel[ch] * self.rng.uniform(0.9, 1.05)
                    synth.add_at(bus, g * variants[int(self.rng.integers(len(variants)))], pos)


def _note_cache(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    cache: dict[tuple, np.ndarray] = {}

    def get(*key: object) -> np.ndarray:
        if key not in cache:
            cache[key] = fn(*key)
        return cache[key]

    return get


def _chords_by_pattern(
    ctx: SongContext,
    bus: np.ndarray,
    pattern: str,
    render: Callable[[int, int], np.ndarray],
    floor: int,
    sections: tuple[str, ...] | None = None,
    arpeggio: bool = False,
    with_octave: bool = False,
) -> None:
    """Play each bar's chord at the pattern's hits (a whole chord, or one tone per hit if ``arpeggio``)."""
    hits = [k for k, c in enumerate(pattern) if c != "."]
    for bar in ctx.bars:
        if sections and bar.section not in sections:
            continue
        root, is_min = bar.chord
        tones = sorted(ctx.midi(pc, floor) for pc in chord_pcs(root, is_min))
        if with_octave:
            tones.append(tones[0] + 12)
        for j, k in enumerate(hits):
            nxt = hits[j + 1] if j + 1 < len(hits) else ctx.steps
            length = ctx.step_samples(nxt) - ctx.step_samples(k) + int(0.05 * ctx.sr)
            pos = bar.start + ctx.step_samples(k)
            vel = 1.0 if pattern[k] == "X" else 0.75 if pattern[k] == "x" else 0.5
            notes = [tones[j % len(tones)]] if arpeggio else tones
            for m in notes:
                synth.add_at(bus, vel * render(m, length), pos)


def _bass_line(
    ctx: SongContext,
    bus: np.ndarray,
    pattern: str,
    render: Callable[[int, int], np.ndarray],
    floor: int = 33,
    sections: tuple[str, ...] | None = None,
    fifths: bool = False,
) -> None:
    hits = [k for k, c in enumerate(pattern) if c != "."]
    for bar in ctx.bars:
        if sections and bar.section not in sections:
            continue
        root = ctx.midi(bar.chord[0], floor)
        for j, k in enumerate(hits):
            nxt = hits[j + 1] if j + 1 < len(hits) else ctx.steps
            length = ctx.step_samples(nxt) - ctx.step_samples(k)
            m = root + 7 if fifths and j % 2 == 1 else root
            synth.add_at(bus, render(m, length), bar.start + ctx.step_samples(k))


_ALL = ("intro", "verse", "chorus", "break", "outro")
_SUNG = ("verse", "chorus")


def _arrange_pop(ctx: SongContext) -> dict[str, np.ndarray]:
    """Pop: kick with a syncopated 'and', clap+snare backbeat, 8th hats, bright piano and pad."""
    sr, rng = ctx.sr, ctx.rng
    drums, harm, bass_bus = np.zeros(ctx.n), np.zeros(ctx.n), np.zeros(ctx.n)
    k = [synth.kick(sr, rng, tune=1.1, decay=0.25)]
    sn, cl = synth.snare(sr, rng, tone=210, decay=0.11, snappy=0.7), synth.clap(sr, rng)
    s = [0.6 * sn]
    synth.add_at(s[0], 0.4 * cl, 0)
    h = [0.35 * synth.hat(sr, rng) for _ in range(3)]
    ctx.play(drums, rng.choice(["X.....x.X.......", "X.....X...x.....", "X.......X.x....."]), k)
    ctx.play(drums, "....X.......X...", s)
    ctx.play(drums, "x.x.x.x.x.x.x.x.", h, sections=("intro", "verse", "break", "outro"))
    ctx.play(drums, "x.xxx.x.x.xxx.x.", h, sections=("chorus",))
    bright = rng.uniform(0.8, 1.0)
    piano = _note_cache(lambda m, n: synth.piano(sr, float(synth.midi_to_hz(m)), n, bright))
    pattern = rng.choice(["X..x..x.X..x..x.", "X...x...X...x...", "x.x.x.x.x.x.x.x."])
    _chords_by_pattern(ctx, harm, pattern, piano, floor=rng.choice([55, 60]))
    if rng.random() < 0.7:  # a soft synth pad under the chorus (or the whole song)
        padn = _note_cache(lambda m, n: synth.pad(sr, float(synth.midi_to_hz(m)), n, cutoff=3000.0))
        _chords_by_pattern(
            ctx,
            harm,
            "X" + "." * (ctx.steps - 1),
            lambda m, n: 0.25 * padn(m, n),
            floor=60,
            sections=("chorus",) if rng.random() < 0.5 else None,
        )
    bn = _note_cache(lambda m, n: synth.bass(sr, float(synth.midi_to_hz(m)), n, "finger"))
    _bass_line(ctx, bass_bus, "X.......X.x.....", bn)
    return {"drums": drums, "harmony": harm, "bass": bass_bus}


def _arrange_rock(ctx: SongContext) -> dict[str, np.ndarray]:
    """Rock: kick/snare backbeat with ride 8ths and crashes, palm-muted then open distorted power chords."""
    sr, rng = ctx.sr, ctx.rng
    drums, harm, bass_bus = np.zeros(ctx.n), np.zeros(ctx.n), np.zeros(ctx.n)
    k = [synth.kick(sr, rng, tune=0.95, decay=0.2, click=0.6)]
    s = [synth.snare(sr, rng, tone=180, decay=0.2, snappy=0.6) for _ in range(2)]
    h = [0.4 * synth.hat(sr, rng, open_=o) for o in (False, False, True)]
    ctx.play(drums, rng.choice(["X.....x.X.x.....", "X.x.....X.x.....", "X.......X.X....."]), k)
    ctx.play(drums, "....X.......X..o", s)
    ctx.play(drums, "x.x.x.x.x.x.x.x.", h)
    crash_s = [0.5 * synth.crash(sr, rng)]
    ctx.play(drums, "X" + "." * (ctx.steps - 1), crash_s, sections=("chorus", "break"), every=2)
    drive = rng.uniform(5.0, 9.0)
    pc = _note_cache(lambda m, n, mute: synth.power_chord(sr, float(synth.midi_to_hz(m)), n, mute, drive))
    floor = int(rng.choice([40, 43]))
    for bar in ctx.bars:
        root = ctx.midi(bar.chord[0], floor)
        mute = bar.section in ("verse", "intro")
        hits = range(0, ctx.steps, 2) if mute else (0, 6, 8, 14) if rng.random() < 0.5 else (0, 8)
        hits = list(hits)
        for j, st in enumerate(hits):
            nxt = hits[j + 1] if j + 1 < len(hits) else ctx.steps
            length = ctx.step_samples(nxt) - ctx.step_samples(st)
            synth.add_at(harm, pc(root, length, mute), bar.start + ctx.step_samples(st))
    bn = _note_cache(lambda m, n: synth.bass(sr, float(synth.midi_to_hz(m)), n, "saw"))
    _bass_line(ctx, bass_bus, "x.x.x.x.x.x.x.x.", bn, floor=28)
    return {"drums": drums, "harmony": harm, "bass": bass_bus}


def _arrange_folk(ctx: SongContext) -> dict[str, np.ndarray]:
    """Folk: tabla/dhol-like hand drums in a lilting triplet feel, plucked-string arpeggios, a reed drone."""
    sr, rng = ctx.sr, ctx.rng
    drums, harm, bass_bus = np.zeros(ctx.n), np.zeros(ctx.n), np.zeros(ctx.n)
    p = rng.uniform(0.9, 1.15)
    low = [synth.hand_drum(sr, rng, "low", p)]
    high = [0.6 * synth.hand_drum(sr, rng, "high", p * 1.02) for _ in range(2)]
    slap = [0.5 * synth.hand_drum(sr, rng, "slap", p)]
    # 12 steps per bar: two bars of 6/8 (dadra-like "dha dhin na | dha tin na")
    ctx.play(drums, rng.choice(["X.....x.....", "X....ox.....", "X..o..x..o.."]), low, sections=_ALL)
    ctx.play(
        drums,
        rng.choice(["..x.x...x.x.", "..xx.x..xx.x", ".x.x.x.x.x.x"]),
        high,
        sections=("verse", "chorus", "break"),
    )
    ctx.play(drums, "...o.....o..", slap, sections=("chorus",))
    if rng.random() < 0.5:
        ctx.play(drums, "x.ox.ox.ox.o", [0.25 * synth.shaker(sr, rng)], sections=("chorus",))
    bright = rng.uniform(0.4, 0.8)
    string_seed = int(rng.integers(2**31))  # each song's strings are plucked differently
    pl = _note_cache(
        lambda m, n: synth.pluck(
            sr, float(synth.midi_to_hz(m)), n, np.random.default_rng([string_seed, m]), bright
        )
    )
    arp = rng.choice(["X.xx.xX.xx.x", "X.x.x.X.x.x.", "Xxx.xxXxx.xx"])
    _chords_by_pattern(
        ctx,
        harm,
        arp,
        lambda m, n: 0.8 * pl(m, max(n, int(0.6 * sr))),
        floor=int(rng.choice([52, 55])),
        arpeggio=True,
        with_octave=True,
    )
    if rng.random() < 0.6:  # drone on tonic and fifth for the whole song, as a harmonium or tanpura would
        synth.add_at(harm, 0.12 * synth.organ_drone(sr, float(synth.midi_to_hz(ctx.midi(0, 48))), ctx.n), 0)
    bp = _note_cache(
        lambda m, n: synth.pluck(
            sr, float(synth.midi_to_hz(m)), n, np.random.default_rng([string_seed, m, 1]), 0.3, 0.993
        )
    )
    _bass_line(ctx, bass_bus, "X.....x.....", lambda m, n: bp(m, n), floor=36, fifths=True)
    return {"drums": drums, "harmony": harm, "bass": bass_bus}


def _arrange_electronic(ctx: SongContext) -> dict[str, np.ndarray]:
    """Electronic: four-on-the-floor, off-beat open hats, sidechain-pumped supersaw, 16th arpeggio, sub bass."""
    sr, rng = ctx.sr, ctx.rng
    drums, harm, bass_bus = np.zeros(ctx.n), np.zeros(ctx.n), np.zeros(ctx.n)
    k = [synth.kick(sr, rng, tune=1.0, decay=0.35, click=0.2)]
    ctx.play(drums, "X...X...X...X...", k)
    ctx.play(drums, "....X.......X...", [0.8 * synth.clap(sr, rng)], sections=("verse", "chorus", "outro"))
    ctx.play(drums, "..x...x...x...x.", [0.35 * synth.hat(sr, rng, open_=True)])
    ctx.play(drums, "xoxoxoxoxoxoxoxo", [0.22 * synth.hat(sr, rng)], sections=("chorus", "break"))
    pad_cut = rng.uniform(2500, 4500)
    saw = _note_cache(
        lambda m, n: synth.pad(sr, float(synth.midi_to_hz(m)), n, cutoff=pad_cut, voices=5, detune=0.012)
    )
    _chords_by_pattern(ctx, harm, "X" + "." * (ctx.steps - 1), lambda m, n: 0.5 * saw(m, n), floor=57)
    # sidechain: the pad ducks under every kick, the pumping that marks the genre
    beat = ctx.beat * sr
    ph = (np.arange(ctx.n) % beat) / beat
    harm *= 0.25 + 0.75 * np.minimum(1.0, ph / 0.45)
    if rng.random() < 0.75:
        cut = rng.uniform(1500, 3500)
        arp = _note_cache(
            lambda m, n: synth.lowpass(
                synth._naive_saw(float(synth.midi_to_hz(m)), n, sr) * np.exp(-np.arange(n) / (0.08 * sr)),
                sr,
                cut,
            )
        )
        _chords_by_pattern(
            ctx,
            harm,
            "x" * ctx.steps,
            lambda m, n: 0.3 * arp(m, n),
            floor=69,
            arpeggio=True,
            with_octave=True,
            sections=("chorus", "break", "verse") if rng.random() < 0.5 else ("chorus", "break"),
        )
    bn = _note_cache(lambda m, n: synth.bass(sr, float(synth.midi_to_hz(m)), n, "sub"))
    _bass_line(ctx, bass_bus, "..X...X...X...X.", bn, floor=33)
    return {"drums": drums, "harmony": harm, "bass": bass_bus}


#: Genre name -> recipe. Add a recipe here to make a new genre available to ``data.demo.genres``.
GENRES: dict[str, GenreRecipe] = {
    "pop": GenreRecipe(
        "pop",
        (94, 118),
        0.25,
        16,
        (("I", "V", "vi", "IV"), ("vi", "IV", "I", "V"), ("I", "vi", "IV", "V"), ("I", "IV", "vi", "V")),
        (("i", "VI", "III", "VII"), ("i", "iv", "VI", "V")),
        _arrange_pop,
        humanize_ms=4.0,
    ),
    "rock": GenreRecipe(
        "rock",
        (112, 148),
        0.5,
        16,
        (("I", "bVII", "IV", "I"), ("I", "IV", "V", "IV"), ("I", "V", "IV", "IV")),
        (("i", "VI", "VII", "i"), ("i", "III", "VII", "IV"), ("i", "iv", "VII", "VI")),
        _arrange_rock,
        humanize_ms=8.0,
    ),
    "folk": GenreRecipe(
        "folk",
        (72, 100),
        0.4,
        12,
        (("I", "IV", "I", "V"), ("I", "V", "IV", "I"), ("I", "I", "IV", "V")),
        (("i", "VII", "VI", "VII"), ("i", "iv", "i", "VII"), ("i", "VII", "i", "v")),
        _arrange_folk,
        humanize_ms=12.0,
    ),
    "electronic": GenreRecipe(
        "electronic",
        (120, 132),
        0.65,
        16,
        (("vi", "IV", "I", "V"), ("I", "V", "vi", "IV")),
        (("i", "VI", "III", "VII"), ("i", "VII", "VI", "VII"), ("i", "iv", "VI", "VII")),
        _arrange_electronic,
        humanize_ms=0.0,
    ),
}

LANGUAGES = ("en", "bn")


def check_labels(genres: tuple[str, ...] | list[str], languages: tuple[str, ...] | list[str]) -> None:
    """Raise ``ValueError`` naming any genre or language the demo corpus cannot render."""
    bad_g = [g for g in genres if g not in GENRES]
    if bad_g:
        raise ValueError(
            f"data.demo.genres: no recipe for {bad_g}; known genres are {sorted(GENRES)} "
            "(add a GenreRecipe to musiclust.data.demo.GENRES for a new one)"
        )
    bad_l = [lang for lang in languages if lang not in LANGUAGES]
    if bad_l:
        raise ValueError(f"data.demo.languages: {bad_l} not supported; choose from {list(LANGUAGES)}")
    for name, vals in (("genres", genres), ("languages", languages)):
        if not vals or len(set(vals)) != len(vals):
            raise ValueError(f"data.demo.{name} must be a non-empty list without repeats, got {list(vals)}")


# ============================================================================ lyrics and melody


@dataclass
class Lyrics:
    """Sections of sung lines; each line is a list of words."""

    sections: list[tuple[str, list[list[Word]]]]

    def text(self) -> str:
        """Lyrics as published: section markers (``[Verse 1]``, ``[Chorus]``) and lines."""
        blocks = []
        for name, lines in self.sections:
            body = "\n".join(_line_text(line) for line in lines)
            blocks.append(f"[{name}]\n{body}")
        return "\n\n".join(blocks) + "\n"


def _line_text(line: list[Word]) -> str:
    s = " ".join(w.text for w in line)
    return s[:1].upper() + s[1:]


def strip_section_markers(text: str) -> str:
    """Drop ``[Chorus]``-style marker lines, as the pipeline's lyrics reader does."""
    kept = [ln for ln in text.splitlines() if not re.fullmatch(r"\s*\[[^\]]*\]\s*", ln)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip() + "\n"


#: Line patterns: a tag draws a word of that part of speech, ``=a|b`` one of the given words.
LINE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "p t d n",
        "d a n r",
        "t o r",
        "p v r",
        "d n s d n",
        "a n c a n",
        "v s d a n",
        "p t d a n",
        "r d n v",
        "d a n c d n",
    ),
    "bn": (
        "=আমি|আমরা d n t",
        "d a n r",
        "=তুমি r i",
        "d n e",
        "a n c a n",
        "=আমি|আমরা r v",
        "n r i",
        "d a n e",
        "r d n e",
        "=তুমি =আমার a n",
    ),
}


def _make_line(
    rng: np.random.Generator,
    language: str,
    general: tuple[Word, ...],
    flavour: tuple[Word, ...],
    max_syll: int,
) -> list[Word]:
    """One lyric line from a grammatical template; content words come from the genre's list 40% of the time."""
    by_text = {w.text: w for w in general}
    best: list[Word] = []
    for _ in range(12):
        template = LINE_TEMPLATES[language][int(rng.integers(len(LINE_TEMPLATES[language])))]
        line: list[Word] = []
        for slot in template.split():
            if slot.startswith("="):
                choices = slot[1:].split("|")
                line.append(by_text[choices[int(rng.integers(len(choices)))]])
                continue
            pool = [w for w in flavour if w.tag == slot] if rng.random() < 0.4 else []
            pool = pool or [w for w in general if w.tag == slot and w not in line]
            line.append(pool[int(rng.integers(len(pool)))])
        n_syll = sum(len(w.syllables) for w in line)
        if n_syll <= max_syll:
            return line
        if not best or n_syll < sum(len(w.syllables) for w in best):
            best = line
    return best


def make_lyrics(rng: np.random.Generator, language: str, genre: str, n_verses: int = 3) -> Lyrics:
    """A whole song's lyrics: verses of two or three lines, each followed by the same chorus.

    Short sections let a 30-60 s excerpt reach the chorus, as a radio edit would.
    """
    general = load_wordlist(language)
    try:
        flavour = load_wordlist(f"{language}_{genre}")
    except FileNotFoundError:
        flavour = general
    max_syll = 9 if language == "en" else 10
    chorus = [_make_line(rng, language, general, flavour, max_syll) for _ in range(2)]
    sections: list[tuple[str, list[list[Word]]]] = []
    for v in range(n_verses):
        sections.append(
            (
                f"Verse {v + 1}",
                [
                    _make_line(rng, language, general, flavour, max_syll)
                    for _ in range(int(rng.integers(2, 4)))
                ],
            )
        )
        sections.append(("Chorus", chorus))
    return Lyrics(sections)


def _line_rhythm(
    line: list[Word], language: str, rng: np.random.Generator
) -> list[tuple[tuple[str, ...], float, float, bool]]:
    """(phones, onset beat, duration in beats, stressed) for each syllable of a line.

    English is stress-timed: each stressed syllable starts a one-beat foot and the
    unstressed syllables after it share the foot. Bangla is syllable-timed: every syllable
    gets the same half beat. Both hold the last syllable.
    """
    sylls = [(s, st) for w in line for s, st in zip(w.syllables, w.stressed)]
    out = []
    if language == "en":
        # pickup: unstressed syllables before the first stress go just before beat 1
        first = next((i for i, (_, st) in enumerate(sylls) if st), 0)
        t = -0.5 * first
        i = 0
        while i < len(sylls):
            j = i + 1
            while j < len(sylls) and not sylls[j][1]:
                j += 1
            foot = sylls[i:j] if i >= first else sylls[i : i + 1]
            if i < first:
                out.append((foot[0][0], t, 0.5, False))
                t += 0.5
                i += 1
                continue
            n_un = len(foot) - 1
            un = min(0.25, 0.5 / max(1, n_un)) if n_un else 0.0
            head = 1.0 - un * n_un
            out.append((foot[0][0], t, head, True))
            tt = t + head
            for s, _ in foot[1:]:
                out.append((s, tt, un, False))
                tt += un
            t += 1.0
            i = j
    else:
        unit = 0.5
        for k, (s, st) in enumerate(sylls):
            out.append((s, k * unit, unit, st))
    last = out[-1]
    out[-1] = (last[0], last[1], last[2] + float(rng.choice([1.0, 1.5, 2.0])), last[3])
    return out


def _melody(
    n: int,
    ctx: SongContext,
    chords: list[tuple[int, bool]],
    onsets: list[float],
    centre: int,
    rng: np.random.Generator,
) -> list[int]:
    """A stepwise tune in the key: chord tones on strong beats, ending on a stable tone."""
    scale = _MINOR if ctx.minor else _MAJOR
    # scale tones around the singer's centre
    tones = [m for m in range(centre - 9, centre + 10) if (m - ctx.tonic) % 12 in scale]
    idx = int(np.argmin([abs(m - centre) for m in tones]))
    out = []
    for k in range(n):
        idx = int(np.clip(idx + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(tones) - 1))
        bar_i = min(len(chords) - 1, int(onsets[k] // 4))
        ct = chord_pcs(*chords[bar_i])
        if abs(onsets[k] - round(onsets[k])) < 1e-6 or k == n - 1:
            # snap to the nearest chord tone on a beat, and always at the end of the line
            cands = [j for j, m in enumerate(tones) if (m - ctx.tonic) % 12 in ct]
            idx = min(cands, key=lambda j: abs(j - idx))
        out.append(tones[idx])
    return out


# ============================================================================ one song


@dataclass(frozen=True)
class SongSpec:
    """What gets rendered for one song (everything drawn from the song's own generator)."""

    song_id: str
    language: str
    genre: str
    duration_s: float
    has_lyrics: bool
    artist: str
    loudness_db: float


def render_song(
    spec: SongSpec, sr: int, rng: np.random.Generator, stems: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray, Lyrics]:
    """Compose and render one song; returns the mono float32 signal and its (full) lyrics.

    If ``stems`` is a dict, it receives each bus (drums, bass, harmony, vocal) at its level
    in the mix before the limiter, for listening tests and plots.
    """
    recipe = GENRES[spec.genre]
    tempo = float(rng.uniform(*recipe.tempo))
    minor = bool(rng.random() < recipe.minor_p)
    tonic = int(rng.integers(0, 12))
    progs = recipe.minor_progressions if minor else recipe.major_progressions
    prog = [parse_chord(c, minor) for c in progs[int(rng.integers(len(progs)))]]
    n = int(round(spec.duration_s * sr))
    bar_s = 4 * 60.0 / tempo
    n_bars = int(np.ceil(spec.duration_s / bar_s)) + 1
    lyrics = make_lyrics(rng, spec.language, spec.genre)

    # timeline: intro, then lyric sections (2 bars per line) with a break bar between, until the end
    sections: list[str] = []
    vocal_lines: list[tuple[int, list[Word], str]] = []  # (first bar, words, section)
    sections += ["intro"] * min(int(rng.integers(1, 3)), n_bars // 6)  # short excerpts start singing at once
    for name, lines in lyrics.sections:
        if len(sections) >= n_bars - 1:
            break
        sec = "chorus" if name == "Chorus" else "verse"
        for line in lines:
            vocal_lines.append((len(sections), line, sec))
            sections += [sec, sec]
        sections.append("break")
    sections += ["outro"] * max(0, n_bars - len(sections))
    sections = sections[:n_bars]
    bar_len = int(round(bar_s * sr))
    bars = [Bar(b * bar_len, prog[b % len(prog)], sections[b]) for b in range(n_bars)]
    ctx = SongContext(sr, n, rng, tempo, tonic, minor, recipe.steps, bars, recipe.humanize_ms)

    buses = recipe.arrange(ctx)

    # the singer: male or female range, independent of language and genre
    female = bool(rng.random() < 0.5)
    voice = synth.Voice(
        formant_scale=rng.uniform(1.12, 1.22) if female else rng.uniform(0.95, 1.05),
        breathiness=rng.uniform(0.02, 0.1),
        vibrato_hz=rng.uniform(4.8, 6.2),
        vibrato_semitones=rng.uniform(0.2, 0.5),
        open_quotient=rng.uniform(0.5, 0.7),
    )
    centre = int(rng.integers(64, 70) if female else rng.integers(52, 58))
    vocal = np.zeros(n)
    sung = np.zeros(n, dtype=bool)
    bank: dict[str, np.ndarray] = {}
    chorus_tune: dict[int, list[int]] = {}
    chorus_k = 0
    for first_bar, line, sec in vocal_lines:
        if first_bar >= n_bars:
            break
        rhythm = _line_rhythm(line, spec.language, rng)
        span = max(on + dur for _, on, dur, _ in rhythm) - min(on for _, on, _, _ in rhythm)
        if span > 7.5:  # a long line is sung faster rather than running into the next one
            k = 7.5 / span
            rhythm = [(ph, on * k, dur * k, st) for ph, on, dur, st in rhythm]
        onsets = [r[1] for r in rhythm]
        chords = [bars[min(n_bars - 1, first_bar + b)].chord for b in range(3)]
        if sec == "chorus":  # the chorus comes back with the same tune
            key = chorus_k % 4
            chorus_k += 1
            if key not in chorus_tune or len(chorus_tune[key]) != len(rhythm):
                chorus_tune[key] = _melody(len(rhythm), ctx, chords, onsets, centre + 3, rng)
            tune = chorus_tune[key]
        else:
            tune = _melody(len(rhythm), ctx, chords, onsets, centre, rng)
        beat = 60.0 / tempo
        sylls = [
            synth.SungSyllable(
                ph, (on - min(onsets)) * beat, max(0.08, dur * beat - 0.02), float(m), 1.0 if st else 0.8
            )
            for (ph, on, dur, st), m in zip(rhythm, tune)
        ]
        phrase = synth.sing(sylls, sr, rng, voice, bank)
        start = bars[first_bar].start + int(min(onsets) * beat * sr)
        synth.add_at(vocal, phrase, start)
        sung[max(0, start) : start + len(phrase)] = True

    # mix: bus levels (dB relative to drums) vary per song, so no fixed balance marks a cell
    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x)))) + 1e-9  # not np.dot: BLAS threads spin on a busy machine

    gains = {"drums": 0.0, "bass": -4.0, "harmony": -3.0}
    scaled = {}
    for name, sig in buses.items():
        scaled[name] = sig / rms(sig) * 10 ** ((gains[name] + rng.uniform(-2.5, 2.5)) / 20)
    mix = sum(scaled.values())
    # the voice sits 3-6 dB above the band while it sings (levels measured where it sings, so
    # songs with more or fewer sung bars are balanced alike)
    vocal_db = rng.uniform(3.0, 6.0)
    if sung.any():
        scaled["vocal"] = vocal / rms(vocal[sung]) * rms(mix[sung]) * 10 ** (vocal_db / 20)
        mix = mix + scaled["vocal"]
    # fade in/out, loudness, a soft limiter so peaks never clip
    fade = min(n // 4, int(1.5 * sr))
    mix[:256] *= np.linspace(0, 1, 256)
    mix[-fade:] *= np.linspace(1, 0, fade) ** 2
    gain = 10 ** (spec.loudness_db / 20) / rms(mix)
    mix *= gain
    if stems is not None:
        stems.update({k: v * gain for k, v in scaled.items()})
    peak = 0.95
    over = np.abs(mix) > 0.7 * peak
    mix[over] = np.sign(mix[over]) * (
        0.7 * peak + 0.3 * peak * np.tanh((np.abs(mix[over]) - 0.7 * peak) / (0.3 * peak))
    )

    # the published lyrics are the whole song's, of which the audio is an excerpt from the start
    return mix.astype(np.float32), lyrics


# ============================================================================ the corpus

_FIRST = (
    "Rafi",
    "Maya",
    "Tom",
    "Anika",
    "Leo",
    "Nila",
    "Sam",
    "Tara",
    "Arif",
    "Zoe",
    "Ishan",
    "Mira",
    "Dev",
    "Lina",
    "Omar",
    "Ruby",
    "Kabir",
    "Ella",
    "Sami",
    "Priya",
    "Jonah",
    "Rumi",
    "Ada",
    "Tanvir",
)
_LAST = (
    "Hart",
    "Sen",
    "Cole",
    "Das",
    "Reed",
    "Roy",
    "Vale",
    "Khan",
    "Frost",
    "Bose",
    "Lane",
    "Gupta",
    "Shaw",
    "Ahmed",
    "Moss",
    "Chowdhury",
    "Quinn",
    "Islam",
    "Wells",
    "Paul",
)
_BAND_A = (
    "Paper",
    "Velvet",
    "Quiet",
    "Electric",
    "Monsoon",
    "Northern",
    "Hollow",
    "Amber",
    "Midnight",
    "Glass",
)
_BAND_B = (
    "Kites",
    "Rivers",
    "Lanterns",
    "Engines",
    "Sparrows",
    "Tides",
    "Echoes",
    "Foxes",
    "Signals",
    "Ferries",
)


def _artists(rng: np.random.Generator, k: int) -> list[str]:
    names: set[str] = set()
    while len(names) < k:
        if rng.random() < 0.6:
            names.add(f"{_FIRST[rng.integers(len(_FIRST))]} {_LAST[rng.integers(len(_LAST))]}")
        else:
            names.add(f"The {_BAND_A[rng.integers(len(_BAND_A))]} {_BAND_B[rng.integers(len(_BAND_B))]}")
    return sorted(names)


def plan_corpus(params: DemoParams, seed: int) -> list[SongSpec]:
    """Decide every song's labels and label-independent attributes (no audio yet).

    Cells (language x genre) are balanced (sizes differ by at most one) and shuffled, so
    the id order says nothing about the labels; durations, loudness, the lyrics gap and
    artists are drawn independently of the cell.
    """
    check_labels(params.genres, params.languages)
    if params.n_songs < 1:
        raise ValueError(f"data.demo.n_songs must be >= 1, got {params.n_songs}")
    if not 0 < params.min_duration_s <= params.max_duration_s:
        raise ValueError(
            f"data.demo: need 0 < min_duration_s <= max_duration_s, got "
            f"{params.min_duration_s}, {params.max_duration_s}"
        )
    rng = np.random.default_rng([seed, 0x64656D6F])  # "demo"
    n_l, n_g = len(params.languages), len(params.genres)
    # a diagonal walk through the language x genre grid: any n_l * n_g consecutive songs fill
    # every cell once, and a corpus smaller than the grid still mixes languages and genres
    cells = [(params.languages[i % n_l], params.genres[(i // n_l + i % n_l) % n_g]) for i in range(n_l * n_g)]
    labels = [cells[i % len(cells)] for i in range(params.n_songs)]
    order = rng.permutation(params.n_songs)
    labels = [labels[i] for i in order]
    durations = rng.uniform(params.min_duration_s, params.max_duration_s, params.n_songs)
    loudness = rng.uniform(-22.0, -15.0, params.n_songs)
    no_lyrics = set(
        rng.choice(
            params.n_songs, size=int(round(NO_LYRICS_FRACTION * params.n_songs)), replace=False
        ).tolist()
    )
    artists = _artists(rng, max(2, min(len(_FIRST) * len(_LAST), params.n_songs // 4)))
    width = max(4, len(str(params.n_songs - 1)))
    specs = []
    for i, (lang, genre) in enumerate(labels):
        specs.append(
            SongSpec(
                song_id=safe_id(f"demo_{i:0{width}d}"),
                language=lang,
                genre=genre,
                duration_s=float(durations[i]),
                has_lyrics=i not in no_lyrics,
                artist=artists[int(rng.integers(len(artists)))],
                loudness_db=float(loudness[i]),
            )
        )
    return specs


def _title(lyrics: Lyrics, rng: np.random.Generator) -> str:
    """A song is named after its hook: a chorus line, or the phrase ending in its last noun."""
    chorus = next((lines for name, lines in lyrics.sections if name == "Chorus"), lyrics.sections[0][1])
    words = chorus[int(rng.integers(len(chorus)))]
    if len(words) > 3:
        nouns = [i for i, w in enumerate(words) if w.tag == "n"]
        end = nouns[-1] if nouns else len(words) - 1
        words = words[max(0, end - int(rng.integers(1, 3))) : end + 1]
        while len(words) > 1 and words[0].tag in "csxr":
            words = words[1:]
    text = " ".join(w.text for w in words)
    return " ".join(t[:1].upper() + t[1:] for t in text.split()) if text.isascii() else text


def _write_flac(path: Path, y: np.ndarray, sr: int) -> None:
    """Write 16-bit mono FLAC via a temporary file and rename, so no half file is ever left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".flac", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, y, sr, subtype="PCM_16", format="FLAC")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def song_rng(seed: int, index: int) -> np.random.Generator:
    """The generator song ``index`` of the corpus with ``seed`` is rendered from (one per song)."""
    return np.random.default_rng([seed, index, 0x736F6E67])  # "song"


def _render_and_write(job: tuple[SongSpec, int, int, int, str]) -> dict[str, object]:
    """Render song ``index`` and write its audio (and lyrics file); returns its table row."""
    spec, index, sample_rate, seed, out_dir_s = job
    out_dir = Path(out_dir_s)
    rng = song_rng(seed, index)
    y, lyrics = render_song(spec, sample_rate, rng)
    audio_rel = f"audio/{spec.song_id}.flac"
    _write_flac(out_dir / audio_rel, y, sample_rate)
    lyr_path = out_dir / "lyrics" / f"{spec.song_id}.txt"
    if spec.has_lyrics:
        lyr_path.parent.mkdir(parents=True, exist_ok=True)
        lyr_path.write_text(lyrics.text(), encoding="utf-8")
    else:
        lyr_path.unlink(missing_ok=True)
    return {
        "song_id": spec.song_id,
        "title": _title(lyrics, rng),
        "artist": spec.artist,
        "language": spec.language,
        "genre": spec.genre,
        "audio_path": audio_rel,
        "duration_s": len(y) / sample_rate,
        "sample_rate": int(sample_rate),
        "lyrics": strip_section_markers(lyrics.text()) if spec.has_lyrics else None,
        "has_lyrics": spec.has_lyrics,
        "source": "demo",
    }


SONG_COLUMNS = [
    "song_id",
    "title",
    "artist",
    "language",
    "genre",
    "audio_path",
    "duration_s",
    "sample_rate",
    "lyrics",
    "has_lyrics",
    "source",
]


def generate_demo_corpus(
    params: DemoParams, sample_rate: int, seed: int, out_dir: Path, workers: int | None = None
) -> pd.DataFrame:
    """Synthesize the demo corpus into ``out_dir/audio/<song_id>.flac`` and return its songs table.

    Deterministic: the same ``params``, ``sample_rate`` and ``seed`` give identical audio
    and table, whatever ``workers`` is, because each song is rendered from its own
    generator ``(seed, index)`` (a song also stays the same when more songs are added).
    The table has the columns of ``data/raw/songs.parquet`` (docs/pipeline.md): ``lyrics``
    has section markers stripped and is ``None`` for the ~10% of songs published without
    lyrics; the full lyrics with ``[Verse 1]``/``[Chorus]`` markers are also written to
    ``out_dir/lyrics/<song_id>.txt``. ``workers`` processes render in parallel (default:
    up to 2, the CPUs of the reference machine; 1 renders in this process).
    """
    if sample_rate < 8000:
        raise ValueError(f"audio.sample_rate {sample_rate} Hz is too low for the demo singer; use >= 8000")
    out_dir = Path(out_dir)
    specs = plan_corpus(params, seed)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(specs) >= 8 else 1
    jobs = [(spec, i, sample_rate, seed, str(out_dir)) for i, spec in enumerate(specs)]
    t0 = time.perf_counter()
    bar = functools.partial(tqdm, total=len(jobs), desc="demo songs", unit="song", disable=None)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(bar(pool.map(_render_and_write, jobs, chunksize=2)))
    else:
        rows = [_render_and_write(job) for job in bar(jobs)]
    df = pd.DataFrame(rows, columns=SONG_COLUMNS)
    log.info(
        "demo corpus: %d songs, %.1f min of audio, %d without lyrics, in %.1f s with %d worker(s) -> %s",
        len(df),
        df["duration_s"].sum() / 60,
        int((~df["has_lyrics"]).sum()),
        time.perf_counter() - t0,
        workers,
        out_dir / "audio",
    )
    return df
