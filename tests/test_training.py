"""Training library: data assembly against the contracts, the loop, encoding, outputs.

``make_dataset`` writes a small synthetic featurize/embed_lyrics output set (the contract in
docs/pipeline.md) that the stage test and the timing benchmark also use.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from musiclust.contracts.features import Scaler
from musiclust.contracts.models import HISTORY_COLUMNS
from musiclust.models import build_model, load_model
from musiclust.params import TrainParams
from musiclust.training.data import load_clip_data
from musiclust.training.diagnostics import ACTIVE_THRESHOLD, latent_usage
from musiclust.training.encode import encode_clips
from musiclust.training.loop import TrainingError, fit, kl_weight_at, resolve_device
from musiclust.training.run import train_model

GENRES = ("pop", "rock", "folk", "electronic")
LANGS = ("en", "bn")


def make_dataset(
    root: Path,
    n_songs: int = 12,
    clips_per_song: int = 4,
    n_features: int = 12,
    logmel_shape: tuple[int, int] = (16, 32),
    mfcc_seq_shape: tuple[int, int] = (8, 32),
    text_dim: int = 8,
    seed: int = 0,
    no_lyrics_every: int = 3,
) -> dict[str, Path]:
    """Write segments/, features/ (mfcc_stats + scalers + logmel and mfcc_seq shards) and lyrics.parquet.

    Features carry the genre (a class mean) plus noise, so training has structure to find;
    every ``no_lyrics_every``-th song has no lyrics (zeros, has_lyrics false).
    """
    rng = np.random.default_rng(seed)
    seg_dir, feat_dir = root / "segments", root / "features"
    (feat_dir / "logmel").mkdir(parents=True, exist_ok=True)
    (feat_dir / "mfcc_seq").mkdir(parents=True, exist_ok=True)
    seg_dir.mkdir(parents=True, exist_ok=True)
    n_train, n_val = round(n_songs * 0.6), max(1, round(n_songs * 0.2))
    splits = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * (n_songs - n_train - n_val))
    splits = splits[rng.permutation(n_songs)]  # songs of every genre in every split
    rows, lyr = [], []
    centres = rng.normal(0, 3, size=(len(GENRES), n_features))
    tcentres = rng.normal(0, 1, size=(len(LANGS), text_dim))
    feats, mels, seqs = [], [], []
    for s in range(n_songs):
        song_id = f"song_{s:03d}"
        g, lang = s % len(GENRES), (s // len(GENRES)) % len(LANGS)
        has = s % no_lyrics_every != 0
        emb = (tcentres[lang] + 0.1 * rng.normal(size=text_dim)) if has else np.zeros(text_dim)
        lyr.append(
            {
                "song_id": song_id,
                "has_lyrics": has,
                "encoder": "synthetic",
                **{f"emb_{i:03d}": np.float32(v) for i, v in enumerate(emb)},
            }
        )
        for c in range(clips_per_song):
            rows.append(
                {
                    "segment_id": f"{song_id}__{c:04d}",
                    "song_id": song_id,
                    "clip_index": c,
                    "start_s": 3.0 * c,
                    "end_s": 3.0 * (c + 1),
                    "split": splits[s],
                    "is_silent": bool(s == 1 and c == 0),
                    "shard": 0,
                    "row": len(rows),
                    "title": song_id,
                    "artist": "x",
                    "language": LANGS[lang],
                    "genre": GENRES[g],
                    "has_lyrics": has,
                }
            )
            feats.append(centres[g] * 5 + 10 + rng.normal(size=n_features))
            m = rng.normal(-40, 3, size=logmel_shape)
            m[(g * logmel_shape[0]) // len(GENRES) : ((g + 1) * logmel_shape[0]) // len(GENRES)] += 20
            mels.append(m)
            q = rng.normal(0, 5, size=mfcc_seq_shape)
            q[g % mfcc_seq_shape[0]] += 30  # the genre raises one coefficient in every frame
            seqs.append(q)
    seg = pd.DataFrame(rows)
    seg.to_parquet(seg_dir / "segments.parquet", index=False)
    cols = [f"mfcc_{i:02d}_mean" for i in range(n_features)]
    x = np.asarray(feats, np.float32)
    pd.concat([seg[["segment_id"]], pd.DataFrame(x, columns=cols)], axis=1).to_parquet(
        feat_dir / "mfcc_stats.parquet", index=False
    )
    scaler = Scaler.fit(cols, x[(seg["split"] == "train").to_numpy()])
    (feat_dir / "scalers.json").write_text(json.dumps({"mfcc_stats": scaler.to_dict()}))
    np.save(feat_dir / "logmel" / "shard-00000.npy", np.asarray(mels, np.float16))
    np.save(feat_dir / "mfcc_seq" / "shard-00000.npy", np.asarray(seqs, np.float32))
    for name in ("logmel", "mfcc_seq"):
        pd.DataFrame({"segment_id": seg["segment_id"], "shard": 0, "row": np.arange(len(seg))}).to_parquet(
            feat_dir / name / "index.parquet", index=False
        )
    pd.DataFrame(lyr).to_parquet(root / "lyrics.parquet", index=False)
    return {"segments": seg_dir, "features": feat_dir, "lyrics": root / "lyrics.parquet"}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models train fastest on one thread; the shared test machine is busy."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


FAST = TrainParams(
    max_steps=8,
    eval_every=2,
    patience=2,
    kl_warmup_steps=4,
    batch_size=16,
    device="cpu",
    threads=1,
    seed_workers=1,
)


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "data")


def _load(dataset, **kw):
    seg = pd.read_parquet(dataset["segments"] / "segments.parquet")
    return seg, load_clip_data(seg, dataset["features"], **kw)


def test_clip_data_aligns_by_segment_id_and_counts_skips(dataset):
    # shuffle the feature rows and drop one: alignment is by id, the missing clip is counted
    p = dataset["features"] / "mfcc_stats.parquet"
    df = pd.read_parquet(p).sample(frac=1.0, random_state=0)
    dropped = df["segment_id"].iloc[0]
    df.iloc[1, 1] = np.nan  # a non-finite feature row
    nan_id = df["segment_id"].iloc[1]
    df.iloc[1:].to_parquet(p, index=False)
    seg, data = _load(dataset, x_kind="vector", feature_sets=["mfcc_stats"])
    assert data.n_in == len(seg) == len(data.clips) + 2
    assert data.skipped == {"no_features": 1, "non_finite_features": 1}
    assert dropped not in set(data.clips["segment_id"]) and nan_id not in set(data.clips["segment_id"])
    # a kept clip's row is the standardized feature row of the same segment_id
    sid = data.clips["segment_id"].iloc[5]
    raw = df.set_index("segment_id").loc[sid].to_numpy(np.float32)
    sc = json.loads((dataset["features"] / "scalers.json").read_text())["mfcc_stats"]
    np.testing.assert_allclose(
        data.arrays["x"][5], (raw - sc["mean"]) / np.array(sc["scale"]), rtol=1e-4, atol=1e-4
    )


def test_clip_data_text_and_condition(dataset):
    lyrics = pd.read_parquet(dataset["lyrics"])
    lyrics = lyrics[lyrics["song_id"] != "song_002"]  # a song missing from the lyrics table
    seg, data = _load(dataset, x_kind="vector", needs=("text", "cond"), lyrics=lyrics, condition="language")
    has = data.arrays["has_text"].astype(bool)
    songs = data.clips["song_id"]
    assert not has[(songs == "song_000").to_numpy()].any()  # has_lyrics false
    assert not has[(songs == "song_002").to_numpy()].any()  # no row
    assert has[(songs == "song_001").to_numpy()].all()
    assert (data.arrays["text"][~has] == 0).all()
    assert data.dims["condition_values"] == ["bn", "en"]
    onehot = data.arrays["cond"]
    assert (onehot.sum(1) == 1).all()
    assert (np.array(["bn", "en"])[onehot.argmax(1)] == seg["language"].to_numpy()).all()
    with pytest.raises(ValueError, match="condition column 'mood'"):
        _load(dataset, x_kind="vector", needs=("cond",), condition="mood")


def test_kl_annealing_schedule():
    assert [kl_weight_at(e, 4) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert kl_weight_at(0, 0) == 1.0


def test_fit_lowers_val_loss_and_restores_best(dataset):
    _, data = _load(dataset, x_kind="vector", feature_sets=["mfcc_stats"])
    torch.manual_seed(0)
    model = build_model("vae", {"latent_dim": 2, "hidden": [16]}, data.dims)
    cfg = TrainParams(
        max_steps=120, eval_every=4, patience=30, kl_warmup_steps=4, batch_size=8, lr=3e-3, device="cpu"
    )
    res = fit(
        model,
        data.select(data.split_mask("train")),
        data.select(data.split_mask("val")),
        cfg,
        seed=0,
        label="vae",
        device=torch.device("cpu"),
    )
    assert res.steps == 120 and len(res.history) == 30
    assert [h["step"] for h in res.history] == list(range(4, 121, 4))
    assert res.best_val_loss < 0.8 * res.first_val_loss
    assert res.best_val_loss == min(h["val_total"] for h in res.history)
    # the restored weights are the best validation pass's
    from musiclust.training.loop import evaluate, to_tensors

    val = to_tensors(data.select(data.split_mask("val")), torch.device("cpu"))
    assert evaluate(model, val)["total"] == pytest.approx(res.best_val_loss, rel=1e-5)


def test_early_stopping_stops(dataset):
    _, data = _load(dataset, x_kind="vector", feature_sets=["mfcc_stats"])
    torch.manual_seed(0)
    model = build_model("autoencoder", {"latent_dim": 2, "hidden": [16]}, data.dims)
    # lr 0 -> val loss never improves after the first pass -> stop after `patience` bad passes
    cfg = TrainParams(max_steps=200, eval_every=2, patience=3, kl_warmup_steps=0, lr=0.0, device="cpu")
    res = fit(
        model,
        data.select(data.split_mask("train")),
        data.select(data.split_mask("val")),
        cfg,
        seed=0,
        label="autoencoder",
        device=torch.device("cpu"),
    )
    assert res.stopped_early and res.steps == 8 and len(res.history) == 4 and res.best_step == 2


def test_training_cost_is_counted_in_steps_not_passes(tmp_path):
    """The same budget on a collection ten times bigger takes the same optimizer steps and
    validation passes; the small one is simply passed over several times."""
    cfg = TrainParams(max_steps=12, eval_every=3, patience=100, kl_warmup_steps=0, batch_size=8, device="cpu")
    for n_songs in (12, 120):
        _, data = _load(make_dataset(tmp_path / str(n_songs), n_songs=n_songs), x_kind="vector")
        torch.manual_seed(0)
        model = build_model("vae", {"latent_dim": 2, "hidden": [8]}, data.dims)
        train, val = data.select(data.split_mask("train")), data.select(data.split_mask("val"))
        res = fit(model, train, val, cfg, seed=0, label="vae", device=torch.device("cpu"))
        assert res.steps == 12 and [h["step"] for h in res.history] == [3, 6, 9, 12], n_songs


def test_batch_stream_is_seeded_shuffled_passes():
    """Batches come pass after pass, each pass a seeded permutation of every training row."""
    from musiclust.training.loop import _batch_stream

    train = {"x": np.zeros((10, 2), np.float32)}
    stream = _batch_stream(train, 10, 4, torch.Generator().manual_seed(3))
    got = [next(stream) for _ in range(6)]
    assert [len(b) for b in got] == [4, 4, 2, 4, 4, 2]
    assert sorted(np.concatenate(got[:3])) == list(range(10)) == sorted(np.concatenate(got[3:]))
    assert not np.array_equal(np.concatenate(got[:3]), np.concatenate(got[3:]))  # reshuffled
    again = _batch_stream(train, 10, 4, torch.Generator().manual_seed(3))
    assert all(np.array_equal(b, next(again)) for b in got)


def test_validation_schedule_does_not_change_the_batches(dataset):
    """Validating every 2 or every 4 steps trains on the same batches: the validation losses at
    the steps both runs share are equal (which batch comes at a step depends on the seed only)."""
    _, data = _load(dataset, x_kind="vector")
    train, val = data.select(data.split_mask("train")), data.select(data.split_mask("val"))
    at = {}
    for every in (2, 4):
        torch.manual_seed(0)
        model = build_model("vae", {"latent_dim": 2, "hidden": [8]}, data.dims)
        cfg = TrainParams(
            max_steps=8, eval_every=every, patience=100, lr_patience=100, kl_warmup_steps=4,
            batch_size=8, device="cpu",
        )  # fmt: skip
        res = fit(model, train, val, cfg, seed=0, label="vae", device=torch.device("cpu"))
        at[every] = {h["step"]: h["val_total"] for h in res.history}
    assert sorted(at[2]) == [2, 4, 6, 8] and sorted(at[4]) == [4, 8]
    assert at[4] == {s: at[2][s] for s in (4, 8)}


def test_validation_is_capped_to_a_fixed_subset_of_whole_songs(dataset):
    from musiclust.training.loop import evaluate, validation_subset

    x = np.arange(100, dtype=np.float32)[:, None]
    sub = validation_subset({"x": x}, 30)
    assert len(sub["x"]) == 30 and (np.diff(sub["x"][:, 0]) > 0).all()  # rows keep their order
    assert np.array_equal(validation_subset({"x": x}, 30)["x"], sub["x"])  # the same rows every time
    assert validation_subset({"x": x}, 0)["x"] is x and validation_subset({"x": x}, 100)["x"] is x
    song = np.repeat(np.arange(20), 5).astype(np.float32)  # a song-level model's arrays: whole songs
    by_song = validation_subset({"x": x, "song": song}, 32)
    per_song = np.bincount(by_song["song"].astype(int), minlength=20)
    assert set(per_song) == {0, 5} and len(by_song["x"]) == 30
    # fit scores its validation passes on the capped subset only
    _, data = _load(dataset, x_kind="vector")
    train, val = data.select(data.split_mask("train")), data.select(data.split_mask("val"))
    assert len(val["x"]) > 3
    torch.manual_seed(0)
    model = build_model("vae", {"latent_dim": 2, "hidden": [8]}, data.dims)
    cfg = dataclasses.replace(FAST, val_clips=3)
    res = fit(model, train, val, cfg, seed=0, label="vae", device=torch.device("cpu"))
    assert evaluate(model, validation_subset(val, 3))["total"] == pytest.approx(res.best_val_loss, rel=1e-5)
    assert evaluate(model, val)["total"] != pytest.approx(res.best_val_loss, rel=1e-5)


def test_nan_loss_names_model_step_seed(dataset):
    _, data = _load(dataset, x_kind="vector", feature_sets=["mfcc_stats"])
    model = build_model("vae", {"latent_dim": 2, "hidden": [16]}, data.dims)
    train = data.select(data.split_mask("train"))
    train["x"][3, 0] = np.inf
    with pytest.raises(TrainingError, match=r"vae: loss is (nan|inf) at step [01] .*seed 7"):
        fit(model, train, None, FAST, seed=7, label="vae", device=torch.device("cpu"))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def _train(key, cfg, dataset, out, seeds=(0, 1), train_cfg=FAST):
    return train_model(
        key, cfg, train_cfg, list(seeds), dataset["segments"], dataset["features"], dataset["lyrics"], out
    )


def test_train_model_outputs_and_reencoding(dataset, tmp_path):
    out = tmp_path / "models" / "cvae_language"
    result = _train("cvae_language", {"latent_dim": 3, "hidden": [16]}, dataset, out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == result.metrics
    assert {"seed_0_best_val_loss", "seed_1_steps", "best_val_loss_mean", "best_step_mean"} <= set(metrics)
    assert not [k for k in metrics if "second" in k]  # timings are not results
    assert set(result.timings["per_seed"]) == {"0", "1"} and result.timings["seconds_total"] > 0
    info = json.loads((out / "info.json").read_text())
    assert info["conditioned_on"] == ["language"] and info["seeds"] == [0, 1] and info["applicable"]
    usage = info["per_seed"]["1"]["latent_usage"]
    assert usage["clips"] == info["clips"]["val"] and 0 <= usage["active_units"] <= 3
    assert len(usage["kl_per_dim"]) == len(usage["latent_var"]) == 3 and min(usage["kl_per_dim"]) >= 0
    assert usage["active_units"] == sum(v > ACTIVE_THRESHOLD for v in usage["latent_var"])
    lat = pd.read_parquet(out / "latents.parquet")
    assert len(lat) == 2 * 48 and set(lat["seed"]) == {0, 1}
    # re-encoding the same clips with the saved checkpoint reproduces the stored latents
    model, ckpt = load_model(out / "seed_1.pt")
    seg = pd.read_parquet(dataset["segments"] / "segments.parquet")
    again, _ = encode_clips(model, ckpt, seg, dataset["features"])
    stored = lat[lat["seed"] == 1].reset_index(drop=True)
    np.testing.assert_allclose(
        again[["z_00", "z_01", "z_02"]].to_numpy(),
        stored[["z_00", "z_01", "z_02"]].to_numpy(),
        rtol=1e-5,
        atol=1e-5,
    )
    # the best val loss in the checkpoint is the minimum of that seed's history
    hist = pd.read_csv(out / "history.csv")
    assert ckpt["best_val_loss"] == pytest.approx(hist[hist["seed"] == 1]["val_total"].min())


@pytest.mark.parametrize(
    ("key", "cfg"),
    [
        ("vade", {"latent_dim": 2, "hidden": [8], "n_components": 2, "pretrain_steps": 2}),
        ("conv_vae", {"latent_dim": 2, "channels": [4], "pool": [2, 2], "target": "sorted"}),
        ("song_vae", {"latent_dim": 2, "hidden": [8], "clips_per_song": 2}),
    ],
)
def test_same_inputs_give_byte_identical_outputs(key, cfg, dataset, tmp_path):
    """Two runs of the same code, params and inputs write the same bytes (DVC run-cache safe)."""
    fast = dataclasses.replace(FAST, max_steps=4, threads=2)
    a, b = tmp_path / "a", tmp_path / "b"
    _train(key, cfg, dataset, a, seeds=[0], train_cfg=fast)
    _train(key, cfg, dataset, b, seeds=[0], train_cfg=fast)
    names = sorted(p.name for p in a.iterdir())
    expected = {"latents.parquet", "metrics.json", "history.csv", "info.json"}
    assert expected | {"seed_0.pt", "recon.npz"} <= set(names)
    assert names == sorted(p.name for p in b.iterdir())
    differ = [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]
    assert not differ, f"{key}: re-run changed {differ}"
    # np.savez would stamp the current time into recon.npz: a re-run in another second differs
    with zipfile.ZipFile(a / "recon.npz") as zf:
        assert {m.date_time for m in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_seeds_trained_in_processes_write_the_same_bytes_as_one_after_another(dataset, tmp_path):
    """train.seed_workers only changes how long it takes: every file is byte-identical."""
    cfg = {"latent_dim": 2, "hidden": [8], "n_components": 2, "pretrain_steps": 2}
    a, b = tmp_path / "a", tmp_path / "b"
    _train("vade", cfg, dataset, a, seeds=[0, 1, 2], train_cfg=dataclasses.replace(FAST, max_steps=4))
    res = _train(
        "vade",
        cfg,
        dataset,
        b,
        seeds=[0, 1, 2],
        train_cfg=dataclasses.replace(FAST, max_steps=4, seed_workers=2),
    )
    # two at a time: the stage's own process (which has the clips loaded already) and one child
    where = res.timings["seed_process"]
    assert where["0"] == "stage" and "child" in where.values() and set(where.values()) <= {"stage", "child"}
    names = sorted(p.name for p in a.iterdir())
    assert {"seed_0.pt", "seed_1.pt", "seed_2.pt", "pretrain_seed_2.pt", "latents.parquet"} <= set(names)
    assert names == sorted(p.name for p in b.iterdir())
    differ = [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]
    assert not differ, f"seed processes changed {differ}"


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_seed_processes_exit_when_the_stage_is_killed(dataset, tmp_path):
    """Killing the stage (a stopped dvc repro) must not leave seeds training for nobody."""
    script = tmp_path / "train.py"
    script.write_text(
        "import sys\n"
        "from musiclust.params import TrainParams\n"
        "from musiclust.training.run import train_model\n"
        "if __name__ == '__main__':\n"
        "    cfg = TrainParams(max_steps=10**8, patience=10**8, device='cpu', seed_workers=3)\n"
        "    train_model('vae', {'latent_dim': 2, 'hidden': [8]}, cfg, [0, 1, 2], *sys.argv[1:])\n"
    )
    args = [str(dataset["segments"]), str(dataset["features"]), str(dataset["lyrics"]), str(tmp_path / "out")]
    proc = subprocess.Popen([sys.executable, str(script), *args])
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = {
                c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()
            }
        assert len(workers) >= 2, "the seed processes did not start"
        time.sleep(5)  # let them import torch and start training
        assert all(Path(f"/proc/{w}").exists() for w in workers), "a seed process ended on its own"
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.5)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    assert not alive, "seed processes outlived their stage"


def test_text_models_are_not_applicable_without_lyrics(dataset, tmp_path):
    lyr = pd.read_parquet(dataset["lyrics"])
    lyr["has_lyrics"] = False
    lyr["text_source"] = "none"
    lyr.to_parquet(dataset["lyrics"], index=False)
    out = tmp_path / "models" / "hybrid"
    out.mkdir(parents=True)
    (out / "seed_0.pt").write_bytes(b"stale")  # an earlier run's checkpoint must not survive
    result = _train("hybrid", {"latent_dim": 2, "hidden": [8]}, dataset, out)
    _assert_not_applicable(out, result, "no song has lyrics")


def test_cvae_is_not_applicable_without_the_condition(dataset, tmp_path):
    seg_path = dataset["segments"] / "segments.parquet"
    seg = pd.read_parquet(seg_path)
    seg["language"] = None  # e.g. GTZAN: no language labels at all
    seg.to_parquet(seg_path, index=False)
    out = tmp_path / "cvae_language"
    result = _train("cvae_language", {"latent_dim": 2, "hidden": [8]}, dataset, out)
    _assert_not_applicable(out, result, "'language' is empty for every clip")


def test_cvae_is_not_applicable_with_one_class_in_train(dataset, tmp_path):
    seg_path = dataset["segments"] / "segments.parquet"
    seg = pd.read_parquet(seg_path)
    seg.loc[seg["split"] == "train", "language"] = "en"  # val/test may still hold bn
    seg.to_parquet(seg_path, index=False)
    out = tmp_path / "cvae_language"
    result = _train("cvae_language", {"latent_dim": 2, "hidden": [8]}, dataset, out)
    _assert_not_applicable(out, result, "1 class(es) in the train split")


def _assert_not_applicable(out, result, reason_part: str) -> None:
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "info.json", "metrics.json"]
    info = json.loads((out / "info.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    for rec in (info, metrics, result.metrics):
        assert rec["applicable"] is False and reason_part in rec["reason"] and "\n" not in rec["reason"]
    assert info["conditioned_on"] == []
    assert "best_val_loss_mean" not in metrics and metrics["n_clips"] == 48
    hist = pd.read_csv(out / "history.csv")
    assert hist.empty and list(hist.columns) == HISTORY_COLUMNS


def test_sharded_array_reads_rows_across_shards_in_order(tmp_path):
    """Log-mel rows are memory-mapped and read per batch, in the order asked, from any shard."""
    import pickle

    from musiclust.training.streaming import ShardedArray, batches, open_tensor_set

    d = tmp_path / "features" / "logmel"
    d.mkdir(parents=True)
    full = np.arange(7 * 2 * 3, dtype=np.float16).reshape(7, 2, 3)
    np.save(d / "shard-00000.npy", full[:4])
    np.save(d / "shard-00001.npy", full[4:])
    pd.DataFrame(
        {
            "segment_id": [f"c{i}" for i in range(7)],
            "shard": [0, 0, 0, 0, 1, 1, 1],
            "row": [0, 1, 2, 3, 0, 1, 2],
        }
    ).to_parquet(d / "index.parquet", index=False)
    index, arr = open_tensor_set(tmp_path / "features", "logmel")
    assert isinstance(arr, ShardedArray) and arr.shape == (7, 2, 3) and arr.dtype == np.float16
    np.testing.assert_array_equal(arr[np.array([5, 0, 6, 2])], full[[5, 0, 6, 2]])
    view = arr.subset(np.array([6, 1, 4]))  # lazy: nothing read
    np.testing.assert_array_equal(view[1:], full[[1, 4]])
    np.testing.assert_array_equal(np.asarray(pickle.loads(pickle.dumps(view))), full[[6, 1, 4]])
    got = list(batches({"x": arr}, [np.array([3, 4]), np.array([0])], torch.device("cpu")))
    assert [b["x"].dtype for b in got] == [torch.float32, torch.float32]
    np.testing.assert_array_equal(got[0]["x"].numpy(), full[[3, 4]].astype(np.float32))


def test_logmel_clips_are_streamed_and_workers_do_not_change_results(dataset, tmp_path):
    from musiclust.training.streaming import ShardedArray

    _, data = _load(dataset, x_kind="logmel")
    assert isinstance(data.arrays["x"], ShardedArray)  # never the whole set as float32 in memory
    assert isinstance(data.select(data.split_mask("train"))["x"], ShardedArray)
    cfg = {"latent_dim": 2, "channels": [4], "pool": [2, 2], "target": "sorted"}
    fast = dataclasses.replace(FAST, max_steps=4)
    _train("conv_vae", cfg, dataset, tmp_path / "w0", seeds=[0], train_cfg=fast)
    _train(
        "conv_vae", cfg, dataset, tmp_path / "w2", seeds=[0], train_cfg=dataclasses.replace(fast, workers=2)
    )
    for name in ("latents.parquet", "history.csv", "metrics.json"):
        assert (tmp_path / "w0" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes(), name
    # the checkpoints differ only in the params record (train.workers)
    c0, c2 = (load_model(tmp_path / w / "seed_0.pt")[1] for w in ("w0", "w2"))
    assert all(torch.equal(v, c2["state_dict"][k]) for k, v in c0["state_dict"].items())


def test_sequence_model_reencodes_from_mfcc_seq(dataset, tmp_path):
    """attention_mm reads the raw mfcc_seq tensors plus lyrics; its checkpoint re-encodes them exactly."""
    seg = pd.read_parquet(dataset["segments"] / "segments.parquet")
    data = load_clip_data(seg, dataset["features"], x_kind="mfcc_seq")
    assert np.asarray(data.arrays["x"]).shape == (48, 8, 32) and data.dims == {"mfcc_seq_shape": [8, 32]}
    out = tmp_path / "attention_mm"
    cfg = {
        "latent_dim": 2, "channels": [4, 8], "kernel": 5, "pool": 4, "heads": 2, "text_tokens": 2,
        "text_hidden": [8], "fusion": "residual",
    }  # fmt: skip
    _train("attention_mm", cfg, dataset, out, seeds=[0])
    model, ckpt = load_model(out / "seed_0.pt")
    assert ckpt["inputs"]["feature_sets"] == ["mfcc_seq"] and ckpt["inputs"]["x_kind"] == "mfcc_seq"
    again, _ = encode_clips(model, ckpt, seg, dataset["features"], pd.read_parquet(dataset["lyrics"]))
    stored = pd.read_parquet(out / "latents.parquet")
    np.testing.assert_allclose(
        again[["z_00", "z_01"]].to_numpy(), stored[["z_00", "z_01"]].to_numpy(), atol=1e-5
    )


def test_latent_usage_finds_a_collapsed_dimension():
    """A dimension whose posterior is the prior (mean 0, variance 1) for every clip is inactive
    with zero KL; one whose mean follows the input is active with positive KL."""

    class Fixed(torch.nn.Module):
        def encode(self, batch):
            x = batch["x"]
            mu = torch.stack([x[:, 0], torch.zeros(len(x))], dim=1)
            return mu, torch.zeros_like(mu)

    x = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
    usage = latent_usage(Fixed(), {"x": x}, torch.device("cpu"))
    assert usage["active_units"] == 1 and usage["clips"] == 300
    assert usage["kl_per_dim"][1] == 0.0 and usage["kl_per_dim"][0] == pytest.approx(
        0.5 * np.mean(x[:, 0] ** 2), rel=1e-4
    )
    assert usage["latent_var"][0] == pytest.approx(x[:, 0].var(), rel=1e-4)


def test_song_batches_keep_songs_whole():
    from musiclust.training.streaming import eval_order, song_batches

    song = np.array([3, 3, 1, 1, 1, 7, 3, 2, 2, 9], dtype=np.float32)  # song 3's rows are not adjacent
    order = song_batches(song, 4)
    assert [sorted(set(song[b])) for b in order] == [[1.0, 3.0], [2.0, 7.0, 9.0]]
    assert np.array_equal(np.sort(np.concatenate(order)), np.arange(len(song)))
    shuffled = [song_batches(song, 4, torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert all(np.array_equal(a, b) for a, b in zip(shuffled[0], shuffled[1]))  # same seed, same order
    for batches in shuffled:
        for b in batches:  # every song whole, in one batch
            assert all(set(np.flatnonzero(song == c)) <= set(b) for c in song[b])
    assert eval_order({"x": np.zeros((10, 2))}, 4)[1].tolist() == [4, 5, 6, 7]  # clip models unchanged
    assert song_batches(np.array([0, 0, 0, 1], np.float32), 3)[0].tolist() == [0, 1, 2, 3]  # no lone song


@pytest.mark.parametrize("key", ["song_vae", "song_ae"])
def test_song_model_writes_its_song_embedding_for_every_clip(key, dataset, tmp_path):
    """Each clip's latent is its song's embedding (from the song's non-silent clips), so the song
    mean the cluster stage takes equals it; info.json says level: song; re-encoding the same
    clips from the checkpoint gives the same latents; a silent clip does not change its song."""
    out = tmp_path / key
    _train(key, {"latent_dim": 3, "hidden": [16, 8], "clips_per_song": 2}, dataset, out)
    info = json.loads((out / "info.json").read_text())
    zc = ["z_00", "z_01", "z_02"]
    lat = pd.read_parquet(out / "latents.parquet")
    n_val_songs = lat.loc[lat["split"] == "val", "song_id"].nunique()
    assert info["level"] == "song" and info["per_seed"]["0"]["latent_usage"]["songs"] == n_val_songs
    assert (lat.groupby(["seed", "song_id"])[zc].nunique() == 1).all().all()
    # the cluster stage's song mean of these latents is the song embedding itself
    from musiclust.clustering.representations import Units, song_means

    first = lat[lat["seed"] == 0].reset_index(drop=True)
    means = song_means(
        Units(first["segment_id"].to_numpy(object), first["song_id"].to_numpy(object),
              first["split"].to_numpy(object), first[zc].to_numpy(np.float32))
    )  # fmt: skip
    per_song = (
        first.drop_duplicates("song_id").set_index("song_id").loc[means.song_id, zc].to_numpy(np.float32)
    )
    np.testing.assert_allclose(means.x, per_song, rtol=1e-6)
    model, ckpt = load_model(out / "seed_1.pt")
    seg = pd.read_parquet(dataset["segments"] / "segments.parquet")
    again, _ = encode_clips(model, ckpt, seg, dataset["features"])
    np.testing.assert_allclose(again[zc].to_numpy(), lat.loc[lat["seed"] == 1, zc].to_numpy(), atol=1e-6)
    # song_001's first clip is silent: the song is encoded from its 3 other clips only
    quiet = seg[seg["song_id"] == "song_001"]
    alone, _ = encode_clips(model, ckpt, quiet[~quiet["is_silent"]], dataset["features"])
    np.testing.assert_allclose(alone[zc].to_numpy()[0], again.loc[quiet.index[0], zc].to_numpy(), atol=1e-6)


def test_deterministic_sets_and_restores_torch_settings():
    """Inside: deterministic kernels, one chosen thread count, no NaN-filling of new tensors
    (a debug aid that costs time); afterwards the caller's settings are back."""
    import torch.utils.deterministic as det

    from musiclust.training.determinism import deterministic

    before = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        det.fill_uninitialized_memory,
    )
    with deterministic(1, torch.device("cpu")):
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
        assert det.fill_uninitialized_memory is False
    after = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        det.fill_uninitialized_memory,
    )
    assert after == before
