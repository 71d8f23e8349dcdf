"""The synthetic demo corpus: deterministic, balanced, label-free ids, audible genre and language.

Tiny corpora (4-12 s songs at 16 kHz) keep the whole file to a few seconds of CPU.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from tests.conftest import REPO

from musiclust.params import DemoParams, ParamsError, load_params
from musiclust.synth import corpus, lyrics, production, voice
from musiclust.synth.arrange import PARTS, Style
from musiclust.synth.corpus import SONG_COLUMNS, generate_demo_corpus
from musiclust.synth.lyrics import bangla_phones, load_wordlist

SR = 16000
TINY = DemoParams(n_songs=16, min_duration_s=4.0, max_duration_s=6.0)
BENGALI = re.compile(r"[\u0980-\u09FF]")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, generate_demo_corpus(TINY, SR, seed=7, out_dir=out, workers=1)


def _audio(out, df):
    return {r.song_id: sf.read(out / r.audio_path, dtype="int16")[0] for r in df.itertuples()}


def test_table_matches_the_contract(tiny):
    out, df = tiny
    assert list(df.columns) == SONG_COLUMNS
    assert df["song_id"].is_unique and len(df) == TINY.n_songs
    assert (df["source"] == "demo").all() and (df["sample_rate"] == SR).all()
    for r in df.itertuples():
        info = sf.info(str(out / r.audio_path))
        assert r.audio_path == f"audio/{r.song_id}.flac"
        assert (info.format, info.subtype, info.channels, info.samplerate) == ("FLAC", "PCM_16", 1, SR)
        assert info.frames == round(r.duration_s * SR)
        assert TINY.min_duration_s - 1 / SR <= r.duration_s <= TINY.max_duration_s + 1 / SR


def test_same_seed_same_corpus_other_seed_differs(tiny, tmp_path):
    out, df = tiny
    again = generate_demo_corpus(TINY, SR, seed=7, out_dir=tmp_path / "a", workers=2)
    pd.testing.assert_frame_equal(df, again)
    a, b = _audio(out, df), _audio(tmp_path / "a", again)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # the FLAC bytes too, so DVC sees an unchanged data/raw after a re-run
    assert all((out / p).read_bytes() == (tmp_path / "a" / p).read_bytes() for p in df["audio_path"])
    other = generate_demo_corpus(TINY, SR, seed=8, out_dir=tmp_path / "b", workers=1)
    c = _audio(tmp_path / "b", other)
    assert not any(len(a[k]) == len(c[k]) and np.array_equal(a[k], c[k]) for k in a)
    assert list(df["language"] + df["genre"]) != list(other["language"] + other["genre"])


def test_cells_are_balanced_and_shuffled(tiny):
    _, df = tiny
    counts = df.groupby(["language", "genre"]).size()
    assert len(counts) == len(TINY.languages) * len(TINY.genres)
    assert counts.max() - counts.min() <= 1
    # uneven sizes stay balanced too
    specs = corpus.plan_corpus(DemoParams(n_songs=13), seed=0)
    sizes = pd.Series([(s.language, s.genre) for s in specs]).value_counts()
    assert sizes.max() - sizes.min() <= 1 and len(sizes) == 8
    # the id order carries no label: cells do not repeat with a fixed period
    cells = [(s.language, s.genre) for s in corpus.plan_corpus(DemoParams(n_songs=120), seed=0)]
    assert cells[:8] != cells[8:16]


def test_nothing_names_a_label(tiny):
    _, df = tiny
    labels = set(TINY.languages) | set(TINY.genres)
    for r in df.itertuples():
        for field in (r.song_id, r.audio_path):
            assert not any(lab in field.lower() for lab in labels), field
        assert not set(re.findall(r"\w+", r.title.lower())) & labels, r.title
        assert not set(re.findall(r"\w+", r.artist.lower())) & labels, r.artist


def test_lyrics_script_markers_and_flags(tiny):
    out, df = tiny
    assert (df["has_lyrics"] == df["lyrics"].notna()).all()
    assert (~df["has_lyrics"]).sum() == round(corpus.NO_LYRICS_FRACTION * TINY.n_songs)
    for r in df[df["has_lyrics"]].itertuples():
        assert "[" not in r.lyrics and len(r.lyrics.splitlines()) >= 6
        assert bool(BENGALI.search(r.lyrics)) == (r.language == "bn")
        if r.language == "en":
            assert r.lyrics.isascii()
        raw = (out / "lyrics" / f"{r.song_id}.txt").read_text(encoding="utf-8")
        assert "[Chorus]" in raw and "[Verse 1]" in raw
        assert lyrics.strip_section_markers(raw) == r.lyrics
        # the chorus is repeated, as the lyrics of a song are
        blocks = r.lyrics.strip().split("\n\n")
        assert len(blocks) > len(set(blocks))
    for r in df[~df["has_lyrics"]].itertuples():
        assert not (out / "lyrics" / f"{r.song_id}.txt").exists()


def test_lyrics_are_built_from_the_word_lists_by_template(tiny):
    _, df = tiny
    for r in df[df["has_lyrics"]].itertuples():
        vocab = {
            w.text.lower(): w.tag
            for name in (r.language, f"{r.language}_{r.genre}")
            for w in load_wordlist(name)
        }
        for line in r.lyrics.split("\n"):
            if not line:
                continue
            words = line.lower().split()
            assert all(w in vocab for w in words), line
            tags = " ".join(vocab[w] for w in words)
            templates = {
                " ".join(
                    "p"
                    if t.startswith("=") and vocab.get(t[1:].split("|")[0]) == "p"
                    else vocab.get(t[1:].split("|")[0], t)
                    if t.startswith("=")
                    else t
                    for t in tpl.split()
                )
                for tpl in lyrics.LINE_TEMPLATES[r.language]
            }
            assert tags in templates, (line, tags)


def test_loudness_and_duration_do_not_mark_cells():
    specs = corpus.plan_corpus(DemoParams(n_songs=240), seed=1)
    frame = pd.DataFrame([s.__dict__ for s in specs])
    by_lang = frame.groupby("language")[["duration_s", "loudness_db"]].mean()
    assert (by_lang.max() - by_lang.min()).lt([4.0, 1.0]).all()
    by_genre = frame.groupby("genre")[["duration_s", "loudness_db"]].mean()
    assert (by_genre.max() - by_genre.min()).lt([6.0, 1.5]).all()


def test_unknown_genre_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"no recipe for \['polka'\].*known genres"):
        generate_demo_corpus(DemoParams(n_songs=4, genres=("pop", "polka")), SR, 0, tmp_path)
    with pytest.raises(ValueError, match="languages"):
        corpus.plan_corpus(DemoParams(n_songs=4, languages=("en", "fr")), 0)
    with pytest.raises(ValueError, match="min_duration_s"):
        corpus.plan_corpus(DemoParams(n_songs=4, min_duration_s=10, max_duration_s=5), 0)


def test_a_subset_of_genres_works(tmp_path):
    df = generate_demo_corpus(
        DemoParams(n_songs=4, min_duration_s=3, max_duration_s=3.5, genres=("folk", "rock")),
        SR,
        0,
        tmp_path,
        workers=1,
    )
    assert set(df["genre"]) == {"folk", "rock"} and len(df) == 4


# ---------------------------------------------------------------- phonetics


def test_bangla_pronunciation_rules():
    assert bangla_phones("মন") == (("m", "ɔ", "n"),)  # final inherent vowel silent
    assert bangla_phones("রক্ত") == (("ɾ", "ɔ", "k0"), ("t̪", "o"))  # ... but /o/ after a conjunct
    assert bangla_phones("চাঁদ") == (("tʃ", "ã", "d̪"),)  # candrabindu nasalises
    assert bangla_phones("নদী")[0] == ("n", "o")  # vowel harmony before /i/
    assert bangla_phones("ভালোবাসা")[0] == ("bʱ", "a")  # murmured stop
    assert bangla_phones("হৃদয়")[-1][-1] == "j"  # nukta letter, both encodings
    assert bangla_phones("হৃদয\u09bc") == bangla_phones("হৃদয়")


def test_word_lists_load_and_differ_in_phonology():
    en, bn = load_wordlist("en"), load_wordlist("bn")
    assert len(en) >= 100 and len(bn) >= 100
    for g in ("pop", "rock", "folk", "electronic"):
        assert len(load_wordlist(f"en_{g}")) >= 20 and len(load_wordlist(f"bn_{g}")) >= 20

    def stats(words):
        sylls = [s for w in words for s in w.syllables]
        open_ = np.mean([voice.PHONES[s[-1]].kind == "vowel" for s in sylls])
        nasal = np.mean([p in ("ĩ", "ẽ", "æ̃", "ã", "ɔ̃", "õ", "ũ") for s in sylls for p in s])
        return open_, nasal

    (en_open, en_nasal), (bn_open, bn_nasal) = stats(en), stats(bn)
    assert bn_open > en_open + 0.15  # Bangla is CV-dominant, English closes syllables
    assert bn_nasal > 0 and en_nasal == 0


def _band_db(y, lo, hi):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    return 10 * np.log10(spec[(f >= lo) & (f < hi)].sum() + 1e-12)


def test_singer_vowels_have_their_formants():
    rng = np.random.default_rng(0)
    v = voice.Voice(vibrato_semitones=0.0, breathiness=0.0)
    sung = {
        p: voice.sing([voice.SungSyllable((p,), 0.0, 0.6, 45.0)], SR, rng, v)[2000:8000]
        for p in ("i", "ɑ", "u")
    }
    # /ɑ/ is open (high F1), /i/ front (high F2), /u/ back and close (low F1 and F2)
    assert _band_db(sung["ɑ"], 600, 900) > _band_db(sung["i"], 600, 900) + 6
    assert _band_db(sung["i"], 1900, 2700) > _band_db(sung["ɑ"], 1900, 2700) + 6
    assert _band_db(sung["u"], 1900, 2700) < _band_db(sung["i"], 1900, 2700) - 10
    # an /s/ is high-frequency noise, an /m/ is a quiet low murmur
    s = voice.sing([voice.SungSyllable(("s", "ɑ"), 0.0, 0.6, 45.0)], SR, rng, v)[:1200]
    assert _band_db(s, 4000, 8000) > _band_db(s, 100, 1000)


# ---------------------------------------------------------------- audibility


def _cv_accuracy(X, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    return cross_val_score(clf, X, y, cv=StratifiedKFold(4, shuffle=True, random_state=0)).mean()


def _listen(**knobs):
    """48 songs of 8-9 s rendered in memory, with their vocal stems: MFCC statistics of both."""
    import librosa

    def stats(y):
        m = librosa.feature.mfcc(y=np.asarray(y, dtype=np.float32), sr=SR, n_mfcc=20)
        return np.r_[m.mean(axis=1), m.std(axis=1)]

    params = DemoParams(n_songs=48, min_duration_s=8.0, max_duration_s=9.0, **knobs)
    specs = corpus.plan_corpus(params, seed=3)
    mix, vocal = [], []
    for i, spec in enumerate(specs):
        stems: dict[str, np.ndarray] = {}
        y, _ = corpus.render_song(spec, SR, corpus.song_rng(3, i), stems)
        mix.append(stats(y))
        vocal.append(stats(stems["vocal"]))
    labels = pd.DataFrame([(s.language, s.genre) for s in specs], columns=["language", "genre"])
    return labels, np.array(mix), np.array(vocal)


@pytest.fixture(scope="module")
def listening():
    """The knobs at 0: every song squarely in its genre (the demo before the knobs existed)."""
    return _listen(overlap=0.0, between_fraction=0.0, production=0.0)


@pytest.fixture(scope="module")
def listening_default():
    """The default difficulty of params.yaml (DemoParams' defaults are the same)."""
    return _listen()


@pytest.mark.slow  # ~6 s of CPU: 48 songs rendered and analysed
def test_genre_is_audible(listening):
    labels, X, _ = listening
    acc = _cv_accuracy(X, labels["genre"])
    assert acc >= 0.85, f"genre from MFCC statistics: {acc:.2f} (chance 0.25; measured 0.98-1.0 over 4 seeds)"


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["listening", "listening_default"])
def test_language_is_audible_in_the_voice(fixture, request):
    labels, X, V = request.getfixturevalue(fixture)
    # the sung line alone: phonetics (vowels, syllable shapes, stops, nasality, timing) differ
    acc_v = _cv_accuracy(V, labels["language"])
    assert acc_v >= 0.72, f"language from the vocal stem: {acc_v:.2f} (chance 0.5; measured 0.81-0.92)"
    # in the full mix, within a genre (genre means removed), it is weaker but still heard
    Xw = X.copy()
    for g in labels["genre"].unique():
        rows = (labels["genre"] == g).to_numpy()
        Xw[rows] -= Xw[rows].mean(axis=0)
    acc_w = _cv_accuracy(Xw, labels["language"])
    # measured 0.79 with the knobs at 0 and 0.69 at the defaults (production colours the whole mix)
    assert acc_w >= 0.6, f"language from the mix within genre: {acc_w:.2f} (chance 0.5; measured 0.69-0.79)"


@pytest.mark.slow
def test_default_difficulty_blurs_genre_but_keeps_it(listening, listening_default):
    """The default knobs make genre harder to hear than with the knobs at 0, not inaudible."""
    labels, X, _ = listening
    labels_d, X_d, _ = listening_default
    assert labels.equals(labels_d)  # the knobs change no label
    plain, blurred = _cv_accuracy(X, labels["genre"]), _cv_accuracy(X_d, labels["genre"])
    # measured: 1.00 with the knobs at 0, 0.67 at the defaults (overlap 0.2, between 0.25, production 0.5)
    assert blurred <= plain - 0.1, (plain, blurred)
    assert blurred >= 0.5, f"genre at the default difficulty: {blurred:.2f} (chance 0.25)"


# ---------------------------------------------------------------- difficulty knobs

PLAIN = {"overlap": 0.0, "between_fraction": 0.0, "production": 0.0}


def _plan(n_songs=240, seed=1, **knobs):
    return corpus.plan_corpus(DemoParams(n_songs=n_songs, **{**PLAIN, **knobs}), seed=seed)


def test_knobs_at_zero_play_every_part_in_its_genre():
    for s in _plan():
        assert s.style == Style.of(s.genre) and s.between is None and s.production is None


def test_knobs_change_no_label_and_no_label_free_attribute():
    plain = _plan()
    hard = _plan(overlap=0.7, between_fraction=0.5, production=1.0)
    keep = ("song_id", "language", "genre", "duration_s", "has_lyrics", "artist", "loudness_db")
    assert [tuple(getattr(s, k) for k in keep) for s in plain] == [
        tuple(getattr(s, k) for k in keep) for s in hard
    ]


@pytest.mark.parametrize("overlap", [0.3, 1.0])
def test_overlap_makes_genres_share_parts(overlap):
    specs = _plan(n_songs=480, overlap=overlap)
    genres = DemoParams().genres
    rows = [(s.genre, part, g) for s in specs for part, g in zip(PARTS, s.style.genres())]
    frame = pd.DataFrame(rows, columns=["genre", "part", "played_by"])
    # each part is re-drawn with probability `overlap`, uniformly over all genres (its own included)
    borrowed = (frame["played_by"] != frame["genre"]).mean()
    assert borrowed == pytest.approx(overlap * (1 - 1 / len(genres)), abs=0.04)
    # every genre's songs borrow every part from every other genre ...
    for (genre, part), block in frame.groupby(["genre", "part"]):
        assert set(block["played_by"]) == set(genres), (genre, part)
    # ... and at overlap 1 the music says nothing of the genre: the same mix of players for every label
    if overlap == 1.0:
        mix = pd.crosstab(frame["genre"], frame["played_by"], normalize="index")
        assert (mix - 1 / len(genres)).abs().to_numpy().max() < 0.06
    # a higher overlap re-plays a superset of the parts (the same draws, a higher threshold)
    low = _plan(n_songs=480, overlap=overlap / 2)
    for a, b in zip(low, specs):
        for part, g_low, g_high in zip(PARTS, a.style.genres(), b.style.genres()):
            if g_low != a.genre:
                assert g_high == g_low, part


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_between_songs_at_the_requested_fraction_spread_over_cells(fraction):
    specs = _plan(n_songs=120, between_fraction=fraction)
    between = [s for s in specs if s.between is not None]
    assert len(between) == round(fraction * 120)
    for s in between:
        # one genre label (the nominal one); one to three of the four parts from the second genre
        assert s.between != s.genre and s.between in DemoParams().genres
        from_second = sum(g == s.between for g in s.style.genres())
        assert 1 <= from_second <= 3 and from_second + sum(g == s.genre for g in s.style.genres()) == 4
    per_cell = pd.Series([(s.language, s.genre) for s in between]).value_counts()
    per_cell = per_cell.reindex(pd.Series([(s.language, s.genre) for s in specs]).unique(), fill_value=0)
    assert per_cell.max() - per_cell.min() <= 1
    # the songs between genres at a fraction are among those at a larger one
    more = {s.song_id for s in _plan(n_songs=120, between_fraction=min(1.0, 2 * fraction)) if s.between}
    assert {s.song_id for s in between} <= more


def test_between_needs_two_genres():
    with pytest.raises(ValueError, match=r"between_fraction.*second"):
        corpus.plan_corpus(DemoParams(n_songs=8, genres=("folk",), between_fraction=0.5), 0)


def test_production_is_drawn_independently_of_the_labels():
    specs = _plan(n_songs=480, production=1.0)
    assert all(s.production is not None for s in specs)
    frame = pd.DataFrame(
        [
            {
                "genre": s.genre,
                "language": s.language,
                "tilt": s.production.tilt_db_per_octave,
                "wet": s.production.reverb_wet,
                "snr": s.production.noise_snr_db or production.NO_NOISE_SNR_DB,
                "lowpass": s.production.lowpass_hz is not None,
            }
            for s in specs
        ]
    )
    for label in ("genre", "language"):
        means = frame.groupby(label)[["tilt", "wet", "snr", "lowpass"]].mean()
        assert (means.max() - means.min()).lt([0.5, 0.08, 7.0, 0.15]).all(), means
    # the spread grows with the knob: the same draws, scaled
    half = _plan(n_songs=480, production=0.5)
    assert [s.production.tilt_db_per_octave / 2 for s in specs] == pytest.approx(
        [s.production.tilt_db_per_octave for s in half]
    )


def _tone_mix(seconds=3.0):
    rng = np.random.default_rng(0)
    return rng.standard_normal(int(seconds * SR)) * 0.1


def _chain(**kw):
    fields = {
        "tilt_db_per_octave": 0.0,
        "lowpass_hz": None,
        "highpass_hz": None,
        "reverb_wet": 0.0,
        "reverb_rt60_s": 1.0,
        "compress_ratio": 1.0,
        "compress_threshold_db": 0.0,
        "noise_snr_db": None,
        "noise_slope": 0.0,
        "seed": 0,
    }
    return production.Production(**{**fields, **kw})


def test_production_chain_does_what_it_says():
    y = _tone_mix()
    assert np.allclose(production.apply_production(y, SR, _chain()), y, atol=1e-9)
    # a tilt of -2 dB/octave: 4 octaves up (250 Hz -> 4 kHz) loses 8 dB against the untouched signal
    dark = production.apply_production(y, SR, _chain(tilt_db_per_octave=-2.0))
    low_change = _band_db(dark, 200, 300) - _band_db(y, 200, 300)
    high_change = _band_db(dark, 3600, 4400) - _band_db(y, 3600, 4400)
    assert high_change - low_change == pytest.approx(-8.0, abs=0.6)
    dull = production.apply_production(y, SR, _chain(lowpass_hz=2000.0))
    assert _band_db(dull, 5000, 7000) < _band_db(y, 5000, 7000) - 30  # 4th order: -24 dB/octave
    thin = production.apply_production(y, SR, _chain(highpass_hz=400.0))
    assert _band_db(thin, 50, 150) < _band_db(y, 50, 150) - 30
    noisy = production.apply_production(np.zeros_like(y) + y, SR, _chain(noise_snr_db=20.0))
    snr = 10 * np.log10(np.mean(y**2) / np.mean((noisy - y) ** 2))
    assert snr == pytest.approx(20.0, abs=0.1)
    # reverb: a click rings on for about its RT60
    click = np.zeros(2 * SR)
    click[100] = 1.0
    wet = production.apply_production(click, SR, _chain(reverb_wet=0.5, reverb_rt60_s=1.0))
    assert np.abs(wet[int(0.5 * SR) : int(0.6 * SR)]).max() > 1e-3 > np.abs(click[int(0.5 * SR) :]).max()
    # compression narrows the gap between a loud and a quiet passage
    steps = np.r_[0.05 * y, 0.5 * y]
    squashed = production.apply_production(steps, SR, _chain(compress_ratio=6.0, compress_threshold_db=-6.0))
    half = len(y)

    def gap(x):
        return 20 * np.log10(np.std(x[half + 2000 :]) / np.std(x[2000:half]))

    assert gap(squashed) < gap(steps) - 6


@pytest.mark.parametrize("key", ["overlap", "between_fraction", "production"])
def test_knob_outside_zero_to_one_is_refused_naming_the_key(key, tmp_path):
    with pytest.raises(ParamsError, match=rf"data\.demo\.{key} must be between 0 and 1, got 1\.5"):
        DemoParams(**{key: 1.5})
    with pytest.raises(ParamsError, match=rf"data\.demo\.{key} must be between 0 and 1, got -0\.1"):
        DemoParams(**{key: -0.1})
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["data"]["demo"][key] = 2
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ParamsError, match=rf"params\.yaml: data\.demo\.{key} must be between 0 and 1"):
        load_params(path)


def test_knobs_are_deterministic_from_the_seed(tmp_path):
    params = DemoParams(
        n_songs=8, min_duration_s=3.0, max_duration_s=4.0, overlap=0.6, between_fraction=0.5, production=1.0
    )
    a = generate_demo_corpus(params, SR, seed=5, out_dir=tmp_path / "a", workers=1)
    b = generate_demo_corpus(params, SR, seed=5, out_dir=tmp_path / "b", workers=2)
    pd.testing.assert_frame_equal(a, b)
    assert all(
        (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes() for p in a["audio_path"]
    )
    assert [s.style for s in corpus.plan_corpus(params, 5)] != [
        s.style for s in corpus.plan_corpus(params, 6)
    ]
