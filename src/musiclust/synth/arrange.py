"""Harmony and genre arrangements of the synthetic demo corpus.

A :class:`GenreRecipe` per genre (tempo range, mode preference, progressions, step grid)
and its three part players (drums, harmony, bass). :func:`arrange` plays a song's parts over
its bars (:class:`SongContext`), each part by the genre its :class:`Style` names: a song
squarely in its genre has every part from that genre, a song that borrows (``data.demo.overlap``)
or sits between two genres (``data.demo.between_fraction``) does not. :func:`melody` writes a
sung line's tune in the song's key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from musiclust.synth import instruments

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
    drums: Callable[[SongContext], np.ndarray]
    harmony: Callable[[SongContext], np.ndarray]
    bass: Callable[[SongContext], np.ndarray]
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
    #: what one part leaves for another (folk strings and folk bass share their plucking seed)
    shared: dict[str, object] = field(default_factory=dict)

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
                    instruments.add_at(bus, g * variants[int(self.rng.integers(len(variants)))], pos)


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
                instruments.add_at(bus, vel * render(m, length), pos)


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
            instruments.add_at(bus, render(m, length), bar.start + ctx.step_samples(k))


_ALL = ("intro", "verse", "chorus", "break", "outro")
_SUNG = ("verse", "chorus")

# Each genre is played by three parts, called in the order drums, harmony, bass on one song
# generator (musiclust.synth.arrange.arrange), so a song whose parts all come from its own genre
# draws exactly the random numbers the single per-genre arrangement drew before the parts were split.


def _drums_pop(ctx: SongContext) -> np.ndarray:
    """Pop drums: kick with a syncopated 'and', clap+snare backbeat, 8th hats (busier in the chorus)."""
    sr, rng = ctx.sr, ctx.rng
    drums = np.zeros(ctx.n)
    k = [instruments.kick(sr, rng, tune=1.1, decay=0.25)]
    sn, cl = instruments.snare(sr, rng, tone=210, decay=0.11, snappy=0.7), instruments.clap(sr, rng)
    s = [0.6 * sn]
    instruments.add_at(s[0], 0.4 * cl, 0)
    h = [0.35 * instruments.hat(sr, rng) for _ in range(3)]
    ctx.play(drums, rng.choice(["X.....x.X.......", "X.....X...x.....", "X.......X.x....."]), k)
    ctx.play(drums, "....X.......X...", s)
    ctx.play(drums, "x.x.x.x.x.x.x.x.", h, sections=("intro", "verse", "break", "outro"))
    ctx.play(drums, "x.xxx.x.x.xxx.x.", h, sections=("chorus",))
    return drums


def _harmony_pop(ctx: SongContext) -> np.ndarray:
    """Pop harmony: bright piano chords, a soft synth pad under the chorus or the whole song."""
    sr, rng = ctx.sr, ctx.rng
    harm = np.zeros(ctx.n)
    bright = rng.uniform(0.8, 1.0)
    piano = _note_cache(lambda m, n: instruments.piano(sr, float(instruments.midi_to_hz(m)), n, bright))
    pattern = rng.choice(["X..x..x.X..x..x.", "X...x...X...x...", "x.x.x.x.x.x.x.x."])
    _chords_by_pattern(ctx, harm, _fit(pattern, ctx.steps), piano, floor=rng.choice([55, 60]))
    if rng.random() < 0.7:
        padn = _note_cache(
            lambda m, n: instruments.pad(sr, float(instruments.midi_to_hz(m)), n, cutoff=3000.0)
        )
        _chords_by_pattern(
            ctx,
            harm,
            "X" + "." * (ctx.steps - 1),
            lambda m, n: 0.25 * padn(m, n),
            floor=60,
            sections=("chorus",) if rng.random() < 0.5 else None,
        )
    return harm


def _bass_pop(ctx: SongContext) -> np.ndarray:
    """Pop bass: electric finger bass on the one and the syncopated 'and' of three."""
    sr = ctx.sr
    bass_bus = np.zeros(ctx.n)
    bn = _note_cache(lambda m, n: instruments.bass(sr, float(instruments.midi_to_hz(m)), n, "finger"))
    _bass_line(ctx, bass_bus, _fit("X.......X.x.....", ctx.steps), bn)
    return bass_bus


def _drums_rock(ctx: SongContext) -> np.ndarray:
    """Rock drums: kick/snare backbeat with ride 8ths and crashes on the chorus."""
    sr, rng = ctx.sr, ctx.rng
    drums = np.zeros(ctx.n)
    k = [instruments.kick(sr, rng, tune=0.95, decay=0.2, click=0.6)]
    s = [instruments.snare(sr, rng, tone=180, decay=0.2, snappy=0.6) for _ in range(2)]
    h = [0.4 * instruments.hat(sr, rng, open_=o) for o in (False, False, True)]
    ctx.play(drums, rng.choice(["X.....x.X.x.....", "X.x.....X.x.....", "X.......X.X....."]), k)
    ctx.play(drums, "....X.......X..o", s)
    ctx.play(drums, "x.x.x.x.x.x.x.x.", h)
    crash_s = [0.5 * instruments.crash(sr, rng)]
    ctx.play(drums, "X" + "." * (ctx.steps - 1), crash_s, sections=("chorus", "break"), every=2)
    return drums


def _harmony_rock(ctx: SongContext) -> np.ndarray:
    """Rock harmony: palm-muted then open distorted power chords."""
    sr, rng = ctx.sr, ctx.rng
    harm = np.zeros(ctx.n)
    drive = rng.uniform(5.0, 9.0)
    pc = _note_cache(
        lambda m, n, mute: instruments.power_chord(sr, float(instruments.midi_to_hz(m)), n, mute, drive)
    )
    floor = int(rng.choice([40, 43]))
    # muted 8ths in verse and intro, open hits elsewhere (a 16-step grid; _fit moves them onto another)
    muted, pushed, open_ = (
        _fit(p, ctx.steps) for p in ("x.x.x.x.x.x.x.x.", "X.....X.X.....X.", "X.......X.......")
    )
    for bar in ctx.bars:
        root = ctx.midi(bar.chord[0], floor)
        mute = bar.section in ("verse", "intro")
        pattern = muted if mute else pushed if rng.random() < 0.5 else open_
        hits = [k for k, c in enumerate(pattern) if c != "."]
        for j, st in enumerate(hits):
            nxt = hits[j + 1] if j + 1 < len(hits) else ctx.steps
            length = ctx.step_samples(nxt) - ctx.step_samples(st)
            instruments.add_at(harm, pc(root, length, mute), bar.start + ctx.step_samples(st))
    return harm


def _bass_rock(ctx: SongContext) -> np.ndarray:
    """Rock bass: a low, driving 8th-note saw bass."""
    sr = ctx.sr
    bass_bus = np.zeros(ctx.n)
    bn = _note_cache(lambda m, n: instruments.bass(sr, float(instruments.midi_to_hz(m)), n, "saw"))
    _bass_line(ctx, bass_bus, _fit("x.x.x.x.x.x.x.x.", ctx.steps), bn, floor=28)
    return bass_bus


def _drums_folk(ctx: SongContext) -> np.ndarray:
    """Folk drums: tabla/dhol-like hand drums in a lilting triplet feel, a shaker in some choruses."""
    sr, rng = ctx.sr, ctx.rng
    drums = np.zeros(ctx.n)
    p = rng.uniform(0.9, 1.15)
    low = [instruments.hand_drum(sr, rng, "low", p)]
    high = [0.6 * instruments.hand_drum(sr, rng, "high", p * 1.02) for _ in range(2)]
    slap = [0.5 * instruments.hand_drum(sr, rng, "slap", p)]
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
        ctx.play(drums, "x.ox.ox.ox.o", [0.25 * instruments.shaker(sr, rng)], sections=("chorus",))
    return drums


def _string_seed(ctx: SongContext) -> int:
    """The song's string seed: folk strings and folk bass are plucked alike (drawn once per song)."""
    if "string_seed" not in ctx.shared:
        ctx.shared["string_seed"] = int(ctx.rng.integers(2**31))
    return int(ctx.shared["string_seed"])  # type: ignore[call-overload]


def _harmony_folk(ctx: SongContext) -> np.ndarray:
    """Folk harmony: plucked-string arpeggios, and a reed drone in most songs."""
    sr, rng = ctx.sr, ctx.rng
    harm = np.zeros(ctx.n)
    bright = rng.uniform(0.4, 0.8)
    string_seed = _string_seed(ctx)  # each song's strings are plucked differently
    pl = _note_cache(
        lambda m, n: instruments.pluck(
            sr, float(instruments.midi_to_hz(m)), n, np.random.default_rng([string_seed, m]), bright
        )
    )
    arp = rng.choice(["X.xx.xX.xx.x", "X.x.x.X.x.x.", "Xxx.xxXxx.xx"])
    _chords_by_pattern(
        ctx,
        harm,
        _fit(arp, ctx.steps),
        lambda m, n: 0.8 * pl(m, max(n, int(0.6 * sr))),
        floor=int(rng.choice([52, 55])),
        arpeggio=True,
        with_octave=True,
    )
    if rng.random() < 0.6:  # drone on tonic and fifth for the whole song, as a harmonium or tanpura would
        instruments.add_at(
            harm, 0.12 * instruments.organ_drone(sr, float(instruments.midi_to_hz(ctx.midi(0, 48))), ctx.n), 0
        )
    return harm


def _bass_folk(ctx: SongContext) -> np.ndarray:
    """Folk bass: a plucked low string alternating root and fifth."""
    sr = ctx.sr
    bass_bus = np.zeros(ctx.n)
    string_seed = _string_seed(ctx)
    bp = _note_cache(
        lambda m, n: instruments.pluck(
            sr, float(instruments.midi_to_hz(m)), n, np.random.default_rng([string_seed, m, 1]), 0.3, 0.993
        )
    )
    _bass_line(ctx, bass_bus, _fit("X.....x.....", ctx.steps), lambda m, n: bp(m, n), floor=36, fifths=True)
    return bass_bus


def _drums_electronic(ctx: SongContext) -> np.ndarray:
    """Electronic drums: four-on-the-floor kick, clap backbeat, off-beat open hats, 16th hats."""
    sr, rng = ctx.sr, ctx.rng
    drums = np.zeros(ctx.n)
    k = [instruments.kick(sr, rng, tune=1.0, decay=0.35, click=0.2)]
    ctx.play(drums, "X...X...X...X...", k)
    ctx.play(
        drums, "....X.......X...", [0.8 * instruments.clap(sr, rng)], sections=("verse", "chorus", "outro")
    )
    ctx.play(drums, "..x...x...x...x.", [0.35 * instruments.hat(sr, rng, open_=True)])
    ctx.play(drums, "xoxoxoxoxoxoxoxo", [0.22 * instruments.hat(sr, rng)], sections=("chorus", "break"))
    return drums


def _harmony_electronic(ctx: SongContext) -> np.ndarray:
    """Electronic harmony: a sidechain-pumped supersaw and, in most songs, a 16th-note arpeggio."""
    sr, rng = ctx.sr, ctx.rng
    harm = np.zeros(ctx.n)
    pad_cut = rng.uniform(2500, 4500)
    saw = _note_cache(
        lambda m, n: instruments.pad(
            sr, float(instruments.midi_to_hz(m)), n, cutoff=pad_cut, voices=5, detune=0.012
        )
    )
    _chords_by_pattern(ctx, harm, "X" + "." * (ctx.steps - 1), lambda m, n: 0.5 * saw(m, n), floor=57)
    # sidechain: the pad ducks under every kick, the pumping that marks the genre
    beat = ctx.beat * sr
    ph = (np.arange(ctx.n) % beat) / beat
    harm *= 0.25 + 0.75 * np.minimum(1.0, ph / 0.45)
    if rng.random() < 0.75:
        cut = rng.uniform(1500, 3500)
        arp = _note_cache(
            lambda m, n: instruments.lowpass(
                instruments._naive_saw(float(instruments.midi_to_hz(m)), n, sr)
                * np.exp(-np.arange(n) / (0.08 * sr)),
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
    return harm


def _bass_electronic(ctx: SongContext) -> np.ndarray:
    """Electronic bass: an 808-style sub on the off-beats."""
    sr = ctx.sr
    bass_bus = np.zeros(ctx.n)
    bn = _note_cache(lambda m, n: instruments.bass(sr, float(instruments.midi_to_hz(m)), n, "sub"))
    _bass_line(ctx, bass_bus, _fit("..X...X...X...X.", ctx.steps), bn, floor=33)
    return bass_bus


def _fit(pattern: str, steps: int) -> str:
    """A pattern written for its genre's grid, on a grid of ``steps`` (the drums' genre sets the grid).

    Patterns of the song's own grid pass unchanged; on another grid each hit moves to the nearest
    step (hits that land on the same step keep the first), so a borrowed part keeps its rhythm.
    """
    if len(pattern) == steps:
        return pattern
    out = ["."] * steps
    for k, ch in enumerate(pattern):
        if ch != ".":
            j = min(steps - 1, int(round(k * steps / len(pattern))))
            if out[j] == ".":
                out[j] = ch
    return "".join(out)


#: The parts a song is made of, each played by one genre's recipe: the tempo range (and so
#: the feel), the drums (which also set the step grid: straight 16ths or a triplet feel), the
#: harmony instrument with its mode preference and chord progressions, and the bass.
PARTS = ("tempo", "drums", "harmony", "bass")


@dataclass(frozen=True)
class Style:
    """Which genre's recipe plays each part of a song (:data:`PARTS`)."""

    tempo: str
    drums: str
    harmony: str
    bass: str

    @classmethod
    def of(cls, genre: str) -> Style:
        """Every part played by ``genre``: a song squarely in its genre."""
        return cls(genre, genre, genre, genre)

    def genres(self) -> tuple[str, ...]:
        """The genre of each part, in :data:`PARTS` order."""
        return tuple(getattr(self, p) for p in PARTS)


def arrange(ctx: SongContext, style: Style) -> dict[str, np.ndarray]:
    """Play the drums, harmony and bass buses, each by the recipe ``style`` names for it.

    The drums' genre sets the song's step grid and timing looseness (``ctx.steps`` and
    ``ctx.humanize_ms``); a harmony or bass part from a genre on another grid has its
    patterns moved onto that grid (:func:`_fit`).
    """
    grid = GENRES[style.drums]
    ctx = dataclasses.replace(ctx, steps=grid.steps, humanize_ms=grid.humanize_ms)
    return {part: getattr(GENRES[getattr(style, part)], part)(ctx) for part in ("drums", "harmony", "bass")}


#: Genre name -> recipe. Add a recipe here to make a new genre available to ``data.demo.genres``.
GENRES: dict[str, GenreRecipe] = {
    "pop": GenreRecipe(
        "pop",
        (94, 118),
        0.25,
        16,
        (("I", "V", "vi", "IV"), ("vi", "IV", "I", "V"), ("I", "vi", "IV", "V"), ("I", "IV", "vi", "V")),
        (("i", "VI", "III", "VII"), ("i", "iv", "VI", "V")),
        _drums_pop,
        _harmony_pop,
        _bass_pop,
        humanize_ms=4.0,
    ),
    "rock": GenreRecipe(
        "rock",
        (112, 148),
        0.5,
        16,
        (("I", "bVII", "IV", "I"), ("I", "IV", "V", "IV"), ("I", "V", "IV", "IV")),
        (("i", "VI", "VII", "i"), ("i", "III", "VII", "IV"), ("i", "iv", "VII", "VI")),
        _drums_rock,
        _harmony_rock,
        _bass_rock,
        humanize_ms=8.0,
    ),
    "folk": GenreRecipe(
        "folk",
        (72, 100),
        0.4,
        12,
        (("I", "IV", "I", "V"), ("I", "V", "IV", "I"), ("I", "I", "IV", "V")),
        (("i", "VII", "VI", "VII"), ("i", "iv", "i", "VII"), ("i", "VII", "i", "v")),
        _drums_folk,
        _harmony_folk,
        _bass_folk,
        humanize_ms=12.0,
    ),
    "electronic": GenreRecipe(
        "electronic",
        (120, 132),
        0.65,
        16,
        (("vi", "IV", "I", "V"), ("I", "V", "vi", "IV")),
        (("i", "VI", "III", "VII"), ("i", "VII", "VI", "VII"), ("i", "iv", "VI", "VII")),
        _drums_electronic,
        _harmony_electronic,
        _bass_electronic,
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
            "(add a GenreRecipe to musiclust.synth.arrange.GENRES for a new one)"
        )
    bad_l = [lang for lang in languages if lang not in LANGUAGES]
    if bad_l:
        raise ValueError(f"data.demo.languages: {bad_l} not supported; choose from {list(LANGUAGES)}")
    for name, vals in (("genres", genres), ("languages", languages)):
        if not vals or len(set(vals)) != len(vals):
            raise ValueError(f"data.demo.{name} must be a non-empty list without repeats, got {list(vals)}")


def melody(
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
