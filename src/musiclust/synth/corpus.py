"""The built-in synthetic demo corpus: sung Bangla/English songs in several genres.

Every song is composed and rendered by this subpackage from a seed, without any downloaded
data, so the whole pipeline can run offline and its results can be checked against known
labels. The corpus is *synthetic*: it exists to exercise and sanity-check the pipeline,
not to stand in for real music.

What carries each label (and nothing else should):

* **genre** is carried by the music: tempo range, drum pattern and drum sounds, the
  harmony instrument (bright piano/pad for pop, distorted power chords for rock,
  Karplus-Strong plucked strings with hand drums and a drone for folk, detuned supersaw
  with sidechain pumping, a 16th-note arpeggio and sub bass for electronic), bass style,
  major/minor preference and chord progressions; lyrics mix in genre-flavoured words.
* **language** is carried by the sung line (:func:`musiclust.synth.voice.sing`): English
  is stress-timed with CVC syllables, clusters, aspirated stops, diphthongs and reduced
  vowels; Bangla is syllable-timed, CV-dominant, with pure vowels, nasalised vowels,
  dental/retroflex and four-way (plain/aspirated/voiced/murmured) stops; and by the
  lyrics text (Latin vs Bengali script).

Within a cell songs vary in key, mode, tempo, progression, instrument mix, singer
(male/female range), loudness and duration. Durations, loudness, presence of lyrics,
artist names and ids are drawn independently of the labels, so none of them leaks one.

How hard genre is to recover is set by three knobs (``data.demo``, each 0-1; at 0 every song
is squarely in its genre and rendered exactly as without the knob):

* ``overlap``: each part of a song (tempo range, drums, harmony instrument with its mode and
  progressions, bass; :data:`musiclust.synth.arrange.PARTS`) is, with this probability,
  played by a genre drawn uniformly from all genres instead of the song's own, so genres
  share tempi and instruments (at 1 the music says nothing of the genre);
* ``between_fraction``: this fraction of the songs (spread evenly over the cells) sits
  between its genre and a second one: one to three of its four parts come from the second
  genre. It keeps one genre label, its nominal genre: a listener might file it under either;
* ``production``: every song gets its own recording and mastering chain (reverb, EQ tilt and
  band limits, compression, a noise floor; :mod:`musiclust.synth.production`), whose spread
  grows with the knob, so timbre differs within a genre as much as between some genres.

All three are drawn from a generator of their own, independently of the labels (a song's
borrowed parts come from any genre alike, the between songs are spread evenly over the cells,
the production chain does not look at the cell), so they blur genre without marking it. The
lyrics keep their nominal genre's flavour words, and the sung line and lyrics carry the
language as before.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from musiclust.fileio import safe_id
from musiclust.params import DemoParams
from musiclust.synth.arrange import (
    GENRES,
    PARTS,
    Bar,
    SongContext,
    Style,
    arrange,
    check_labels,
    melody,
    parse_chord,
)
from musiclust.synth.instruments import add_at
from musiclust.synth.lyrics import Lyrics, Word, line_rhythm, make_lyrics, strip_section_markers
from musiclust.synth.production import Production, apply_production, draw_production
from musiclust.synth.voice import SungSyllable, Voice, sing

log = logging.getLogger(__name__)

#: Fraction of demo songs published without a lyrics text (so masking downstream is exercised).
NO_LYRICS_FRACTION = 0.1


# ============================================================================ one song


@dataclass(frozen=True)
class SongSpec:
    """What gets rendered for one song (the rest is drawn from the song's own generator).

    ``genre`` is the label; ``style`` says which genre plays each part (``None``: all of them
    ``genre``), ``between`` the second genre of a song between two (else ``None``) and
    ``production`` its recording chain (``None``: none).
    """

    song_id: str
    language: str
    genre: str
    duration_s: float
    has_lyrics: bool
    artist: str
    loudness_db: float
    style: Style | None = None
    between: str | None = None
    production: Production | None = None


def render_song(
    spec: SongSpec, sr: int, rng: np.random.Generator, stems: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray, Lyrics]:
    """Compose and render one song; returns the mono float32 signal and its (full) lyrics.

    If ``stems`` is a dict, it receives each bus (drums, bass, harmony, vocal) at its level
    in the mix before the limiter, for listening tests and plots.
    """
    style = spec.style or Style.of(spec.genre)
    tempo = float(rng.uniform(*GENRES[style.tempo].tempo))
    harmony = GENRES[style.harmony]
    minor = bool(rng.random() < harmony.minor_p)
    tonic = int(rng.integers(0, 12))
    progs = harmony.minor_progressions if minor else harmony.major_progressions
    prog = [parse_chord(c, minor) for c in progs[int(rng.integers(len(progs)))]]
    n = int(round(spec.duration_s * sr))
    bar_s = 4 * 60.0 / tempo
    n_bars = int(np.ceil(spec.duration_s / bar_s)) + 1
    lyrics = make_lyrics(rng, spec.language, spec.genre)
    sections, vocal_lines = _timeline(lyrics, n_bars, rng)
    bar_len = int(round(bar_s * sr))
    bars = [Bar(b * bar_len, prog[b % len(prog)], sections[b]) for b in range(n_bars)]
    grid = GENRES[style.drums]  # the drums set the step grid
    ctx = SongContext(sr, n, rng, tempo, tonic, minor, grid.steps, bars, grid.humanize_ms)

    buses = arrange(ctx, style)
    vocal, sung = _vocal_track(ctx, vocal_lines, spec.language)
    mix = _mix(buses, vocal, sung, spec.loudness_db, sr, rng, stems, spec.production)
    # the published lyrics are the whole song's, of which the audio is an excerpt from the start
    return mix.astype(np.float32), lyrics


def _timeline(
    lyrics: Lyrics, n_bars: int, rng: np.random.Generator
) -> tuple[list[str], list[tuple[int, list[Word], str]]]:
    """Section name of every bar, and the sung lines as ``(first bar, words, section)``.

    An intro, then lyric sections (2 bars per line) with a break bar between, until the end.
    """
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
    return sections[:n_bars], vocal_lines


def _vocal_track(
    ctx: SongContext, vocal_lines: list[tuple[int, list[Word], str]], language: str
) -> tuple[np.ndarray, np.ndarray]:
    """The sung part of the song (``ctx.n`` samples) and where it sings (a boolean mask)."""
    rng, sr, n, bars, tempo = ctx.rng, ctx.sr, ctx.n, ctx.bars, ctx.tempo
    n_bars = len(bars)
    # the singer: male or female range, independent of language and genre
    female = bool(rng.random() < 0.5)
    voice = Voice(
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
        rhythm = line_rhythm(line, language, rng)
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
                chorus_tune[key] = melody(len(rhythm), ctx, chords, onsets, centre + 3, rng)
            tune = chorus_tune[key]
        else:
            tune = melody(len(rhythm), ctx, chords, onsets, centre, rng)
        beat = 60.0 / tempo
        sylls = [
            SungSyllable(
                ph, (on - min(onsets)) * beat, max(0.08, dur * beat - 0.02), float(m), 1.0 if st else 0.8
            )
            for (ph, on, dur, st), m in zip(rhythm, tune)
        ]
        phrase = sing(sylls, sr, rng, voice, bank)
        start = bars[first_bar].start + int(min(onsets) * beat * sr)
        add_at(vocal, phrase, start)
        sung[max(0, start) : start + len(phrase)] = True
    return vocal, sung


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) + 1e-9  # not np.dot: BLAS threads spin on a busy machine


def _mix(
    buses: dict[str, np.ndarray],
    vocal: np.ndarray,
    sung: np.ndarray,
    loudness_db: float,
    sr: int,
    rng: np.random.Generator,
    stems: dict[str, np.ndarray] | None,
    production: Production | None = None,
) -> np.ndarray:
    """Balance the buses and the voice, run the production chain, fade, set the song's loudness
    and soft-limit the peaks (``stems`` are the balanced buses, before production)."""
    n = len(vocal)
    # bus levels (dB relative to drums) vary per song, so no fixed balance marks a cell
    gains = {"drums": 0.0, "bass": -4.0, "harmony": -3.0}
    scaled = {}
    for name, sig in buses.items():
        scaled[name] = sig / _rms(sig) * 10 ** ((gains[name] + rng.uniform(-2.5, 2.5)) / 20)
    mix = sum(scaled.values())
    # the voice sits 3-6 dB above the band while it sings (levels measured where it sings, so
    # songs with more or fewer sung bars are balanced alike)
    vocal_db = rng.uniform(3.0, 6.0)
    if sung.any():
        scaled["vocal"] = vocal / _rms(vocal[sung]) * _rms(mix[sung]) * 10 ** (vocal_db / 20)
        mix = mix + scaled["vocal"]
    if production is not None:
        mix = apply_production(mix, sr, production)
    # fade in/out, loudness, a soft limiter so peaks never clip
    fade = min(n // 4, int(1.5 * sr))
    mix[:256] *= np.linspace(0, 1, 256)
    mix[-fade:] *= np.linspace(1, 0, fade) ** 2
    gain = 10 ** (loudness_db / 20) / _rms(mix)
    mix *= gain
    if stems is not None:
        stems.update({k: v * gain for k, v in scaled.items()})
    peak = 0.95
    over = np.abs(mix) > 0.7 * peak
    mix[over] = np.sign(mix[over]) * (
        0.7 * peak + 0.3 * peak * np.tanh((np.abs(mix[over]) - 0.7 * peak) / (0.3 * peak))
    )
    return mix


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
    artists are drawn independently of the cell, and so are each song's style, between-genres
    partner and production chain (:func:`blur_genres`).
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
    blurred = blur_genres(params, labels, seed)
    specs = []
    for i, (lang, genre) in enumerate(labels):
        style, between, production = blurred[i]
        specs.append(
            SongSpec(
                song_id=safe_id(f"demo_{i:0{width}d}"),
                language=lang,
                genre=genre,
                duration_s=float(durations[i]),
                has_lyrics=i not in no_lyrics,
                artist=artists[int(rng.integers(len(artists)))],
                loudness_db=float(loudness[i]),
                style=style,
                between=between,
                production=production,
            )
        )
    return specs


def blur_genres(
    params: DemoParams, labels: list[tuple[str, str]], seed: int
) -> list[tuple[Style, str | None, Production | None]]:
    """Each song's style, between-genres partner and production (module doc: the three knobs).

    Drawn from a generator of their own, so the labels, durations, loudness, lyrics and artists
    of a corpus do not change with the knobs, and at 0 every song is its plain genre. The
    same random numbers are drawn whatever the knobs are (a knob only sets the thresholds and
    scales), so raising a knob changes more of the same songs' parts rather than other songs.
    The between songs are the ``round(between_fraction * n_songs)`` first in an order that
    takes the cells in turn (a random order within each cell), so they spread evenly over the
    cells; a between song's second genre is drawn uniformly from the other genres.
    """
    genres = params.genres
    n = len(labels)
    n_between = int(round(params.between_fraction * n))
    if n_between and len(genres) < 2:
        raise ValueError(
            f"data.demo.between_fraction is {params.between_fraction:g} but data.demo.genres has one "
            "genre: a song between genres needs a second one (set between_fraction: 0 or add a genre)"
        )
    rng = np.random.default_rng([seed, 0x626C7572])  # "blur"
    priority = np.empty(n)
    for cell in sorted(set(labels)):
        rows = [i for i, lab in enumerate(labels) if lab == cell]
        priority[rows] = (rng.permutation(len(rows)) + rng.random(len(rows))) / len(rows)
    between_rows = set(np.argsort(priority, kind="stable")[:n_between].tolist())
    out = []
    for i, (_, genre) in enumerate(labels):
        parts = dict.fromkeys(PARTS, genre)
        others = [g for g in genres if g != genre]
        second = others[int(rng.random() * len(others))] if others else None
        borrowed = rng.permutation(len(PARTS))[: 1 + int(rng.integers(len(PARTS) - 1))]
        swap_u, swap_g = rng.random(len(PARTS)), rng.integers(len(genres), size=len(PARTS))
        production = draw_production(rng, params.production)
        between = second if i in between_rows else None
        if between is not None:
            for j in borrowed:
                parts[PARTS[j]] = between
        for j, part in enumerate(PARTS):
            if swap_u[j] < params.overlap:
                parts[part] = genres[int(swap_g[j])]
        out.append((Style(**parts), between, production))
    return out


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
        "demo corpus: %d songs, %.1f min of audio, %d without lyrics, %d between genres, %d of %d parts "
        "played by another genre, %d with a production chain, in %.1f s with %d worker(s) -> %s",
        len(df),
        df["duration_s"].sum() / 60,
        int((~df["has_lyrics"]).sum()),
        sum(s.between is not None for s in specs),
        sum(g != s.genre for s in specs for g in (s.style or Style.of(s.genre)).genres()),
        len(PARTS) * len(specs),
        sum(s.production is not None for s in specs),
        time.perf_counter() - t0,
        workers,
        out_dir / "audio",
    )
    return df
