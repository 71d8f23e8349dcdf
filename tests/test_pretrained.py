"""The ``pretrained`` feature set on tiny randomly initialised models saved to disk (no network).

The models are built here with ``save_pretrained`` and loaded back through the same code
path a user's downloaded CLAP / wav2vec2 folder takes.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from stages import featurize as featurize_stage
from stages import segment as segment_stage
from tests.test_segment import SR, demo_songs, make_raw, write_params

from musiclust.contracts.features import load_scalers, load_vectors
from musiclust.features.pretrained import (
    PretrainedModelError,
    column_names,
    fingerprint,
    load_embedder,
    resolve_model,
)
from musiclust.log import run_main
from musiclust.params import ParamsError, PretrainedParams, load_params

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

HIDDEN = 16
CLAP_DIM = 8


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    """A 2-layer wav2vec2 with width 16 and its feature extractor (16 kHz), random weights."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    cfg = Wav2Vec2Config(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16, 16),
        conv_kernel=(10, 3),
        conv_stride=(5, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("models") / "tiny_wav2vec2"
    Wav2Vec2Model(cfg).save_pretrained(d)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    """A tiny CLAP (HTSAT audio tower, 16 mel bands, 1 s window at 48 kHz), random weights."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    audio = dict(
        window_size=4,
        num_mel_bins=16,
        spec_size=64,
        patch_size=4,
        patch_stride=(4, 4),
        depths=(1, 1),
        num_attention_heads=(1, 2),
        hidden_size=16,
        patch_embeds_hidden_size=8,
        projection_dim=CLAP_DIM,
        num_hidden_layers=2,
    )
    text = dict(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        projection_dim=CLAP_DIM,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("models") / "tiny_clap"
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=CLAP_DIM)).save_pretrained(d)
    ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=48000,
        hop_length=480,
        max_length_s=1,
        fft_window_size=256,
        truncation="rand_trunc",
    ).save_pretrained(d)
    return d


def _clips(n: int, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = rng.uniform(100, 2000, size=(n, 1))
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal((n, t.size))).astype(np.float32)


def _params(model, **kw) -> PretrainedParams:
    return PretrainedParams(model=str(model), **kw)


# --------------------------------------------------------------------------- embedder


@pytest.mark.parametrize("layer", ["last", "mean", 0, 1])
def test_hidden_states_embedding_shape_and_layers(wav2vec2_dir, layer):
    emb = load_embedder(_params(wav2vec2_dir, layer=layer))
    assert emb.kind == "hidden_states" and emb.sampling_rate == 16000
    assert emb.dim == HIDDEN and emb.columns == column_names(HIDDEN) == [
        f"pretrained_{i:03d}" for i in range(16)
    ]
    x = emb.embed(_clips(3), SR)
    assert x.shape == (3, HIDDEN) and x.dtype == np.float32 and np.isfinite(x).all()
    # the chosen layer really is the mean over time of that hidden state
    y = emb._prepare(_clips(3), SR)
    assert y.shape[1] == int(1.5 * 16000)  # resampled 22050 -> 16000
    inputs = emb.feature_extractor(list(y), sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        hs = emb.model(**inputs, output_hidden_states=True).hidden_states
    want = {"last": hs[-1], "mean": torch.stack(hs[1:]).mean(0), 0: hs[0], 1: hs[1]}[layer].mean(1).numpy()
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6)


def test_embedding_is_deterministic_and_independent_of_the_batch(wav2vec2_dir, clap_dir):
    clips = _clips(5)
    for d in (wav2vec2_dir, clap_dir):
        emb = load_embedder(_params(d))
        a = emb.embed(clips, SR)
        b = load_embedder(_params(d)).embed(clips, SR)  # a fresh load: same bytes
        assert a.tobytes() == b.tobytes()
        # the same clip in another batch (other neighbours, other size) gives the same embedding
        alone = np.concatenate([emb.embed(clips[i : i + 1], SR) for i in range(5)])
        mixed = emb.embed(np.concatenate([clips[3:], _clips(2, seed=7), clips[:3]]), SR)
        np.testing.assert_allclose(alone, a, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(mixed[4:], a[:3], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(mixed[:2], a[3:], rtol=1e-4, atol=1e-5)
        # and different audio gives a different embedding (the model is not constant)
        assert np.abs(a[0] - a[1]).max() > 1e-4


def test_clap_embedding(clap_dir, wav2vec2_dir):
    emb = load_embedder(_params(clap_dir, layer=3))  # layer is ignored for CLAP
    assert emb.kind == "clap" and emb.sampling_rate == 48000 and emb.dim == CLAP_DIM
    x = emb.embed(_clips(2, seconds=3.0), SR)  # longer than the 1 s window: cropped centrally
    assert x.shape == (2, CLAP_DIM)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)  # the normalized projection
    assert emb.describe()["layer"] is None
    with pytest.raises(PretrainedModelError, match="kind is clap but"):
        load_embedder(_params(wav2vec2_dir, kind="clap"))


def test_layer_out_of_range(wav2vec2_dir):
    with pytest.raises(PretrainedModelError, match=r"features\.pretrained\.layer 5 is out of range"):
        load_embedder(_params(wav2vec2_dir, layer=5))


def test_silent_clip_is_finite(wav2vec2_dir, clap_dir):
    for d in (wav2vec2_dir, clap_dir):
        x = load_embedder(_params(d)).embed(np.zeros((2, SR), np.float32), SR)
        assert np.isfinite(x).all()


def test_fingerprint_changes_with_the_weights(wav2vec2_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(wav2vec2_dir, copy)
    fp = fingerprint(copy)
    assert set(fp) == {"config.json", "model.safetensors", "preprocessor_config.json"}
    assert fp == fingerprint(wav2vec2_dir)  # relative names only: the folder's location does not matter
    with (copy / "model.safetensors").open("r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x01\x02\x03")
    assert fingerprint(copy)["model.safetensors"]["sha256"] != fp["model.safetensors"]["sha256"]


# --------------------------------------------------------------------------- failing fast


def test_absent_directory_names_the_key(tmp_path):
    with pytest.raises(
        PretrainedModelError, match=r"features\.pretrained\.model: model directory .* does not exist"
    ):
        resolve_model(_params(tmp_path / "no_such_model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PretrainedModelError, match=r"features\.pretrained\.model: .*\(no config\.json\)"):
        resolve_model(_params(tmp_path / "empty"))


def test_hub_id_offline_names_the_key_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # an empty cache: nothing is cached
    monkeypatch.chdir(tmp_path)  # so that "org/name" is not a folder by accident
    with pytest.raises(PretrainedModelError) as info:
        resolve_model(_params("laion/clap-htsat-unfused"))
    msg = str(info.value)
    assert "features.pretrained.model" in msg and "allow_download is false" in msg
    assert "huggingface-cli download laion/clap-htsat-unfused" in msg
    monkeypatch.setenv("MUSICLUST_OFFLINE", "1")
    with pytest.raises(PretrainedModelError, match="offline mode is on") as info:
        resolve_model(_params("m-a-p/MERT-v1-95M", allow_download=True))
    assert "features.pretrained.model" in str(info.value)


def test_hub_id_in_the_local_cache_is_used_offline(wav2vec2_dir, tmp_path, monkeypatch):
    """A hub id already in the HF cache needs no download (a cache snapshot is a local folder)."""
    import shutil

    snap = tmp_path / "hub" / "models--org--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(wav2vec2_dir, snap)
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    src = resolve_model(_params("org/tiny"))
    assert src.origin == "cache" and src.path == snap


def test_remote_code_is_refused_unless_allowed(wav2vec2_dir, tmp_path):
    import shutil

    d = tmp_path / "mert_like"
    shutil.copytree(wav2vec2_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_mert.MERTModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PretrainedModelError, match=r"features\.pretrained\.trust_remote_code is false"):
        load_embedder(_params(d))


def test_missing_transformers_names_the_pip_command(wav2vec2_dir, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(PretrainedModelError, match=r"pip install torch 'transformers"):
        resolve_model(_params(wav2vec2_dir))  # before anything is loaded
    with pytest.raises(PretrainedModelError, match=r"pip install torch 'transformers"):
        load_embedder(_params(wav2vec2_dir))


def test_set_selected_without_a_model_names_the_key(repo_root, tmp_path):
    params = write_params(
        repo_root, tmp_path / "params.yaml", features={"sets": ["mfcc_stats", "pretrained"]}
    )
    with pytest.raises(ParamsError, match=r"features\.pretrained\.model is not set"):
        load_params(params)
    with pytest.raises(ParamsError, match=r"features\.pretrained\.layer"):
        PretrainedParams(model="x", layer="first")
    typo = write_params(repo_root, tmp_path / "p2.yaml", features={"pretrained": {"modle": "x"}})
    with pytest.raises(ParamsError, match=r"unknown key\(s\) in features\.pretrained: modle"):
        load_params(typo)


def test_stage_error_is_one_line(tmp_path, repo_root, capsys):
    params = write_params(
        repo_root,
        tmp_path / "params.yaml",
        features={"sets": ["pretrained"], "pretrained": {"model": str(tmp_path / "absent")}},
    )
    (tmp_path / "segments").mkdir()
    pd.DataFrame({"segment_id": [], "split": [], "shard": [], "row": []}).to_parquet(
        tmp_path / "segments" / "segments.parquet"
    )
    args = ["--segments", str(tmp_path / "segments"), "--out", str(tmp_path / "f"), "--params", str(params)]
    with pytest.raises(SystemExit) as info:
        run_main(featurize_stage.main, args)
    assert info.value.code == 2
    assert "error: features.pretrained.model: model directory" in capsys.readouterr().err


# --------------------------------------------------------------------------- the stage


def test_featurize_stage_with_the_pretrained_set(tmp_path, repo_root, wav2vec2_dir):
    raw = make_raw(tmp_path / "raw", demo_songs(n_per_cell=2, seconds=6.5))
    pre = {"model": str(wav2vec2_dir), "layer": "mean", "batch_size": 3}
    params = write_params(
        repo_root,
        tmp_path / "params.yaml",
        features={"sets": ["mfcc_stats", "pretrained"], "workers": 2, "pretrained": pre},
    )
    seg_dir = tmp_path / "segments"
    segment_stage.main(["--raw", str(raw), "--out", str(seg_dir), "--params", str(params)])
    seg = pd.read_parquet(seg_dir / "segments.parquet")
    outs = []
    for run in ("a", "b"):
        feat = tmp_path / f"features_{run}"
        assert (
            featurize_stage.main(["--segments", str(seg_dir), "--out", str(feat), "--params", str(params)])
            == 0
        )
        outs.append(feat)
    feat = outs[0]
    df = pd.read_parquet(feat / "pretrained.parquet")
    assert list(df.columns) == ["segment_id", *column_names(HIDDEN)]
    assert df["segment_id"].tolist() == seg["segment_id"].tolist()
    assert all(df[c].dtype == np.float32 for c in df.columns[1:])
    # two runs: byte-identical files
    for name in ("pretrained.parquet", "mfcc_stats.parquet", "scalers.json", "report.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    # scaler fit on the train split; the set loads beside the others, as train.features would
    train = (seg["split"] == "train").to_numpy()
    sc = load_scalers(feat)["pretrained"]
    np.testing.assert_allclose(
        sc.mean, df.iloc[:, 1:].to_numpy(np.float64)[train].mean(0), rtol=1e-5, atol=1e-6
    )
    ids, x, names = load_vectors(feat, ["mfcc_stats", "pretrained"])
    assert x.shape == (len(seg), 160 + HIDDEN) and names[-1] == "pretrained_015"
    # the stage's batches of 3 give what one embedder call per clip gives
    from musiclust.contracts.shards import ShardReader, from_pcm16

    audio = from_pcm16(ShardReader(seg_dir, "audio").rows(seg["shard"][:4], seg["row"][:4]))
    emb = load_embedder(replace(load_params(params).features.pretrained))
    direct = np.concatenate([emb.embed(audio[i : i + 1], SR) for i in range(4)])
    np.testing.assert_allclose(df.iloc[:4, 1:].to_numpy(), direct, rtol=1e-4, atol=1e-5)
    report = json.loads((feat / "report.json").read_text())
    assert report["sets"] == ["mfcc_stats", "pretrained"] and report["columns"]["pretrained"] == HIDDEN
    pre_rep = report["pretrained"]
    assert pre_rep["model"] == str(wav2vec2_dir) and pre_rep["kind"] == "hidden_states"
    assert pre_rep["layer"] == "mean" and pre_rep["dim"] == HIDDEN and pre_rep["sampling_rate"] == 16000
    assert set(pre_rep["files"]) == {"config.json", "model.safetensors", "preprocessor_config.json"}


def test_featurize_stage_with_only_the_pretrained_set(tmp_path, repo_root, clap_dir):
    raw = make_raw(tmp_path / "raw", demo_songs(n_per_cell=1, seconds=3.5))
    params = write_params(
        repo_root,
        tmp_path / "params.yaml",
        features={"sets": ["pretrained"], "pretrained": {"model": str(clap_dir)}},
    )
    seg_dir, feat = tmp_path / "segments", tmp_path / "features"
    segment_stage.main(["--raw", str(raw), "--out", str(seg_dir), "--params", str(params)])
    assert (
        featurize_stage.main(["--segments", str(seg_dir), "--out", str(feat), "--params", str(params)]) == 0
    )
    n = len(pd.read_parquet(seg_dir / "segments.parquet"))
    df = pd.read_parquet(feat / "pretrained.parquet")
    assert df.shape == (n, 1 + CLAP_DIM) and np.isfinite(df.iloc[:, 1:].to_numpy()).all()
    assert sorted(p.name for p in feat.iterdir()) == ["pretrained.parquet", "report.json", "scalers.json"]


def test_default_report_has_no_pretrained_entry(tmp_path, repo_root):
    """The set is off by default: the default outputs do not mention it (they stay as before)."""
    p = load_params(repo_root / "params.yaml")
    assert "pretrained" not in p.features.sets and p.features.pretrained.model is None
    assert "pretrained" not in p.train.features


def test_assign_checks_pretrained_columns_against_the_pipelines_scalers(repo_root):
    """``musiclust assign`` takes the pretrained set's columns from scalers.json (the width is the model's)."""
    from musiclust.assign import check_compatibility
    from musiclust.features.extract import FeatureConfig, feature_columns

    p = load_params(repo_root / "params.yaml")
    p = replace(p, features=replace(p.features, pretrained=PretrainedParams(model="weights/m")))
    cfg = FeatureConfig.from_params(p.audio.sample_rate, replace(p.features, sets=("mfcc_stats",)))
    mfcc = feature_columns(cfg)["mfcc_stats"]
    ckpt = {
        "model_key": "vae",
        "inputs": {
            "x_kind": "vector",
            "feature_sets": ["mfcc_stats", "pretrained"],
            "columns": mfcc + column_names(HIDDEN),
        },
    }
    seg_report = {"audio": {"sample_rate": p.audio.sample_rate}}

    def scalers(width: int) -> dict:
        return {
            "mfcc_stats": {"columns": mfcc, "mean": [0.0] * len(mfcc), "scale": [1.0] * len(mfcc)},
            "pretrained": {"columns": column_names(width), "mean": [0.0] * width, "scale": [1.0] * width},
        }

    assert check_compatibility(ckpt, p, seg_report, scalers(HIDDEN)) == []
    problems = check_compatibility(ckpt, p, seg_report, scalers(32))
    assert any("feature columns differ" in m for m in problems)
