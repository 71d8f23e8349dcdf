"""Features: agreement with librosa, known answers on synthetic signals, the featurize stage."""

from __future__ import annotations

import librosa
import numpy as np
import pandas as pd
import pytest
import yaml
from stages import featurize as featurize_stage
from stages import segment as segment_stage
from tests.test_segment import SR, demo_songs, make_raw, tone, write_params

from musiclust.contracts.features import load_scalers, load_tensors, load_vectors
from musiclust.contracts.shards import ShardReader, from_pcm16
from musiclust.features.extract import (
    RHYTHM_BPM_EDGES,
    BandedMatrix,
    FeatureConfig,
    Featurizer,
    feature_columns,
)
from musiclust.features.pipeline import featurize_files

ALL_SETS = ("mfcc_stats", "spectral", "rhythm", "logmel", "mfcc_seq")


def music_like(seconds: float, seed: int) -> np.ndarray:
    """Chord tones with decaying notes at 2 Hz plus a little noise: something for every feature."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (196.0, 246.9, 293.7) * (1 + seed))
    y = y * (0.4 + 0.6 * np.exp(-6 * ((t * 2) % 1.0))) + 0.02 * rng.standard_normal(t.size)
    return (y / np.max(np.abs(y)) * 0.5).astype(np.float32)


def _stats(m: np.ndarray) -> np.ndarray:
    return np.stack([m.mean(1), m.std(1), m.min(1), m.max(1)], axis=-1).reshape(-1)


def librosa_reference(y: np.ndarray, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """Each feature computed the plain way, with librosa's own functions, one clip at a time."""
    kw = {"n_fft": cfg.n_fft, "hop_length": cfg.hop_length}
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=cfg.n_mfcc, **kw)
    spec = []
    for f in (
        librosa.feature.spectral_centroid(y=y, sr=SR, **kw),
        librosa.feature.spectral_bandwidth(y=y, sr=SR, **kw),
        librosa.feature.spectral_rolloff(y=y, sr=SR, **kw),
        librosa.feature.spectral_flatness(y=y, **kw),
        librosa.feature.zero_crossing_rate(y, frame_length=cfg.n_fft, hop_length=cfg.hop_length),
        librosa.feature.rms(y=y, frame_length=cfg.n_fft, hop_length=cfg.hop_length),
    ):
        spec += [f[0].mean(), f[0].std()]
    for block in (
        librosa.feature.spectral_contrast(y=y, sr=SR, **kw),
        librosa.feature.chroma_stft(y=y, sr=SR, tuning=0.0, **kw),
    ):
        for row in block:
            spec += [row.mean(), row.std()]
    spec.append(librosa.feature.tempo(y=y, sr=SR, hop_length=cfg.hop_length)[0])
    logmel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_mels=cfg.n_mels, **kw))
    start = (logmel.shape[1] - cfg.logmel_frames) // 2
    return {
        "mfcc_stats": np.concatenate([_stats(mfcc), _stats(librosa.feature.delta(mfcc))]),
        "spectral": np.array(spec),
        "logmel": logmel[:, start : start + cfg.logmel_frames],
        "mfcc_seq": mfcc[:, start : start + cfg.logmel_frames],
    }


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    # two tones need a noise floor: without one, spectral valleys are FFT round-off and their
    # dB values (spectral contrast) differ between any two FFT implementations
    noise = 1e-3 * np.random.default_rng(2).standard_normal(3 * SR).astype(np.float32)
    return np.stack(
        [music_like(3.0, 0), music_like(3.0, 1), tone(3.0, 1000.0) + tone(3.0, 3000.0, 0.1) + noise]
    )


def test_matches_librosa(clips):
    cfg = FeatureConfig(sets=ALL_SETS, n_mels=64, logmel_frames=96)
    ours = Featurizer(cfg)(clips)
    cols = feature_columns(cfg)
    for i, y in enumerate(clips):
        ref = librosa_reference(y, cfg)
        np.testing.assert_allclose(ours["mfcc_stats"][i], ref["mfcc_stats"], rtol=1e-3, atol=5e-3)
        # spectral: frequencies in Hz agree to well under a bin; the rest to 1e-3
        for j, name in enumerate(cols["spectral"]):
            tol = 1.0 if name.split("_")[0] in ("centroid", "bandwidth", "rolloff") else 1e-3
            assert ours["spectral"][i, j] == pytest.approx(ref["spectral"][j], rel=1e-3, abs=tol), name
        np.testing.assert_allclose(ours["logmel"][i].astype(np.float32), ref["logmel"], atol=0.05)  # float16
        np.testing.assert_allclose(ours["mfcc_seq"][i], ref["mfcc_seq"], rtol=1e-3, atol=5e-3)


def test_silent_and_near_silent_clips_are_finite():
    cfg = FeatureConfig(sets=ALL_SETS)
    y = np.zeros((3, 3 * SR), np.float32)
    y[1, ::100] = 1e-12  # below librosa's zero-crossing threshold
    y[2] = 1 / 32768 * np.sign(np.sin(np.arange(3 * SR)))  # one LSB of int16 noise
    out = Featurizer(cfg)(y)
    for name, arr in out.items():
        assert np.isfinite(arr.astype(np.float32)).all(), name
    cols = feature_columns(cfg)["spectral"]
    silent = dict(zip(cols, out["spectral"][0]))
    assert silent["rms_mean"] == 0 and silent["zcr_mean"] == 0 and silent["centroid_mean"] == 0
    assert silent["flatness_mean"] == pytest.approx(
        1.0, abs=1e-4
    )  # a flat (all-floor) spectrum, float32 sums
    assert out["logmel"][0].min() == out["logmel"][0].max() == np.float16(-100.0)  # the amin floor


def test_440hz_tone_lands_in_the_right_mel_band():
    cfg = FeatureConfig(sets=("logmel",), n_mels=64, logmel_frames=64)
    out = Featurizer(cfg)(tone(3.0, 440.0)[None])
    band = int(np.argmax(out["logmel"][0].astype(np.float32).mean(axis=1)))
    centres = librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmax=SR / 2)[1:-1]
    assert band == int(np.argmin(np.abs(centres - 440.0)))
    assert centres[band - 1] < 440.0 < centres[band + 1]
    # and an octave up moves it up the scale
    up = Featurizer(cfg)(tone(3.0, 880.0)[None])
    assert int(np.argmax(up["logmel"][0].astype(np.float32).mean(axis=1))) > band


def test_tempo_of_a_click_track():
    # clicks every 0.5 s = 120 BPM; librosa's estimator (and ours) should find it
    y = np.zeros(6 * SR, np.float32)
    for k in range(12):
        y[int(k * 0.5 * SR) : int(k * 0.5 * SR) + 200] = np.hanning(200)
    spec = dict(
        zip(
            feature_columns(FeatureConfig(sets=("spectral",)))["spectral"],
            Featurizer(FeatureConfig(sets=("spectral",)))(y[None])["spectral"][0],
        )
    )
    assert spec["tempo"] == pytest.approx(120.0, rel=0.03)


def test_banded_matrix_equals_dense():
    mel = librosa.filters.mel(sr=SR, n_fft=2048, n_mels=128).T
    x = np.random.default_rng(0).random((5, 7, 1025)).astype(np.float32)
    np.testing.assert_allclose(x @ BandedMatrix(mel), x @ mel, rtol=1e-5, atol=1e-6)


def test_workers_give_identical_results(tmp_path, clips):
    import soundfile as sf

    paths = []
    for i, y in enumerate(np.concatenate([clips] * 6)):  # 18 clips: three batches of 7/7/4
        paths.append(tmp_path / f"c{i}.wav")
        sf.write(paths[-1], y, SR, subtype="FLOAT")
    cfg = FeatureConfig(sets=("mfcc_stats", "logmel"))
    one = featurize_files(paths, cfg, 3 * SR, workers=1)
    two = featurize_files(paths, cfg, 3 * SR, workers=2)
    assert one.n == two.n == 18
    np.testing.assert_array_equal(one.vector("mfcc_stats"), two.vector("mfcc_stats"))
    # the same clip gives the same features wherever it sits in a batch (up to BLAS rounding)
    x = one.vector("mfcc_stats")
    np.testing.assert_allclose(x[:3], x[15:], rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- stage


def test_featurize_stage_outputs(tmp_path, repo_root):
    raw = make_raw(
        tmp_path / "raw",
        demo_songs(n_per_cell=2, seconds=6.5)
        + [
            {
                "song_id": "gap",
                "language": "bn",
                "genre": "pop",
                "y": np.concatenate([tone(3.0), np.zeros(3 * SR, np.float32)]),
            }
        ],
    )
    params = write_params(
        repo_root,
        tmp_path / "params.yaml",
        features={"sets": list(ALL_SETS), "workers": 2, "n_mels": 32, "logmel_frames": 100},
    )
    seg_dir, feat = tmp_path / "segments", tmp_path / "features"
    segment_stage.main(["--raw", str(raw), "--out", str(seg_dir), "--params", str(params)])
    assert (
        featurize_stage.main(["--segments", str(seg_dir), "--out", str(feat), "--params", str(params)]) == 0
    )
    seg = pd.read_parquet(seg_dir / "segments.parquet")
    assert seg["is_silent"].sum() == 1

    cfg = FeatureConfig(sets=ALL_SETS, n_mels=32, logmel_frames=100)
    for name, cols in feature_columns(cfg).items():
        df = pd.read_parquet(feat / f"{name}.parquet")
        assert list(df.columns) == ["segment_id", *cols]
        assert df["segment_id"].tolist() == seg["segment_id"].tolist()  # segments order
        assert all(df[c].dtype == np.float32 for c in cols)
        assert np.isfinite(df[cols].to_numpy()).all()  # the silent clip too
    # scalers are fit on the train split only
    scalers = load_scalers(feat)
    x = pd.read_parquet(feat / "mfcc_stats.parquet").drop(columns="segment_id").to_numpy(np.float64)
    train = (seg["split"] == "train").to_numpy()
    assert 0 < train.sum() < len(seg)
    np.testing.assert_allclose(scalers["mfcc_stats"].mean, x[train].mean(axis=0), rtol=1e-5, atol=1e-4)
    assert not np.allclose(scalers["mfcc_stats"].mean, x.mean(axis=0), rtol=1e-4, atol=1e-4)
    ids, z, names = load_vectors(feat, ["mfcc_stats", "spectral"])
    assert z.shape == (len(seg), 160 + 51) and np.abs(z[train].mean(axis=0)).max() < 1e-3
    # tensor sets: index in segments order, shards round-trip to what the featurizer computes
    index, logmel = load_tensors(feat, "logmel")
    assert index["segment_id"].tolist() == seg["segment_id"].tolist()
    assert logmel.shape == (len(seg), 32, 100) and logmel.dtype == np.float16
    index2, mfcc_seq = load_tensors(feat, "mfcc_seq")
    assert mfcc_seq.shape == (len(seg), 20, 100)
    audio = from_pcm16(ShardReader(seg_dir, "audio").rows(seg["shard"][:2], seg["row"][:2]))
    direct = Featurizer(cfg)(audio)
    np.testing.assert_array_equal(logmel[:2], direct["logmel"])
    report = yaml.safe_load((feat / "report.json").read_text())
    assert report["clips"] == len(seg) and report["nonfinite_replaced"] == 0
    assert report["scalers_fit_on"] == "train"


def test_featurize_stage_on_gtzan_clips(tmp_path, repo_root, shared_data):
    """Real music: features for every clip of two GTZAN excerpts, and librosa agrees on one."""
    from tests.test_segment import test_gtzan_songs_segment

    test_gtzan_songs_segment(tmp_path, repo_root, shared_data)
    params = write_params(repo_root, tmp_path / "params.yaml")
    feat = tmp_path / "features"
    featurize_stage.main(
        ["--segments", str(tmp_path / "segments"), "--out", str(feat), "--params", str(params)]
    )
    seg = pd.read_parquet(tmp_path / "segments" / "segments.parquet")
    ids, x, _ = load_vectors(feat, ["mfcc_stats", "spectral"], standardize=False)
    assert ids.tolist() == seg["segment_id"].tolist() and np.isfinite(x).all()
    y = from_pcm16(ShardReader(tmp_path / "segments", "audio").rows([seg["shard"][0]], [seg["row"][0]]))[0]
    ref = librosa_reference(y, FeatureConfig())
    np.testing.assert_allclose(x[0, :160], ref["mfcc_stats"], rtol=1e-3, atol=5e-3)


def test_featurize_stage_with_no_clips_and_wrong_rate(tmp_path, repo_root):
    raw = make_raw(tmp_path / "raw", [{"song_id": "short", "language": "en", "genre": "pop", "y": tone(1.0)}])
    params = write_params(repo_root, tmp_path / "params.yaml")
    seg_dir, feat = tmp_path / "segments", tmp_path / "features"
    from musiclust.audio.segment import NoUsableClips
    from musiclust.features.pipeline import NoClipsError

    # zero clips stop both stages with the reason (they used to pass them on to fail in train)
    with pytest.raises(NoUsableClips, match=r"segment\.window_s"):
        segment_stage.main(["--raw", str(raw), "--out", str(seg_dir), "--params", str(params)])
    with pytest.raises(NoClipsError, match="no usable clip"):
        featurize_stage.main(["--segments", str(seg_dir), "--out", str(feat), "--params", str(params)])
    other = write_params(repo_root, tmp_path / "p16k.yaml", audio={"sample_rate": 16000})
    with pytest.raises(ValueError, match="re-run the segment stage"):
        featurize_stage.main(["--segments", str(seg_dir), "--out", str(feat), "--params", str(other)])


def _clicks(seconds: float, period_s: float) -> np.ndarray:
    y = np.zeros(int(seconds * SR), np.float32)
    for k in range(int(seconds / period_s)):
        s = int(k * period_s * SR)
        y[s : s + 200] = np.hanning(200)
    return y


def test_rhythm_envelopes_match_librosa(clips):
    cfg = FeatureConfig(sets=("rhythm",))
    ours = dict(zip(feature_columns(cfg)["rhythm"], Featurizer(cfg)(clips[:1])["rhythm"][0]))
    kw = {"sr": SR, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length}
    env = librosa.onset.onset_strength(y=clips[0], **kw)
    multi = librosa.onset.onset_strength_multi(y=clips[0], channels=[0, 32, 64, 96, 128], **kw)
    assert ours["onset_mean"] == pytest.approx(env.mean(), rel=1e-3)
    assert ours["onset_std"] == pytest.approx(env.std(), rel=1e-3)
    for i, band in enumerate(multi):
        assert ours[f"onset_band{i}_mean"] == pytest.approx(band.mean(), rel=1e-3, abs=1e-4)
        assert ours[f"onset_band{i}_std"] == pytest.approx(band.std(), rel=1e-3, abs=1e-4)


def test_rhythm_finds_the_beat_of_a_click_track():
    cfg = FeatureConfig(sets=("rhythm",))
    cols = feature_columns(cfg)["rhythm"]
    out = Featurizer(cfg)(np.stack([_clicks(3.0, 0.5), _clicks(3.0, 0.25)]))  # 120 and 240 BPM
    slow, fast = (dict(zip(cols, row)) for row in out["rhythm"])
    # the autocorrelation is high in the tempo band of the beat (and of its sub-multiples, as an
    # autocorrelation is) and low in a band that holds no multiple of the period (150-190 BPM)
    edges = np.asarray(RHYTHM_BPM_EDGES)
    ac = [c for c in cols if c.startswith("onset_ac_")]
    band = {bpm: ac[int(np.searchsorted(edges, bpm, side="right") - 1)] for bpm in (120.0, 170.0, 240.0)}
    assert slow[band[120.0]] > 0.7 and fast[band[240.0]] > 0.8 and slow["pulse_clarity"] > 0.8
    assert slow[band[170.0]] < 0.2 and fast[band[170.0]] < 0.2
    assert slow["onset_rate"] == pytest.approx(2.0, abs=0.5) and fast["onset_rate"] == pytest.approx(
        4.0, abs=0.7
    )
    # noise has no beat: a low pulse clarity, and silence is all zeros, finite
    rng = np.random.default_rng(0)
    noise, silent = Featurizer(cfg)(
        np.stack([0.1 * rng.standard_normal(3 * SR), np.zeros(3 * SR)]).astype(np.float32)
    )["rhythm"]
    assert dict(zip(cols, noise))["pulse_clarity"] < 0.5
    assert np.isfinite(silent).all() and not silent.any()
