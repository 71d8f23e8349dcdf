"""Stage train@<model>: stages.train.main on a tiny synthetic dataset writes every declared output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tests.test_training import make_dataset

from musiclust.contracts.models import HISTORY_COLUMNS
from musiclust.models import REGISTRY, load_model

REPO = Path(__file__).resolve().parents[1]


def _tiny_params(tmp_path: Path) -> Path:
    """The repository's params.yaml with short training, 2 seeds, small models."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["seeds"] = [0, 1]
    params["train"].update(
        max_steps=6, eval_every=2, patience=2, kl_warmup_steps=4, batch_size=16, device="cpu", threads=1
    )
    params["models"]["vade"]["pretrain_steps"] = 4
    params["models"]["conv_vae"].update(channels=[4, 8], pool=[2, 2])
    params["models"]["conv1d_vae"].update(channels=[4, 8])
    params["models"]["attention_mm"].update(channels=[8, 16], heads=2)
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    return p


def _declared_cmd(key: str, root: Path, params: Path) -> list[str]:
    """Run the configure stage on ``params`` into ``root/data/configs``, then return the train stage's
    command line from dvc.yaml with ${item} filled and paths moved under ``root``."""
    import stages.configure

    stages.configure.main(
        ["--lyrics", str(root / "data" / "lyrics.parquet"), "--out", str(root / "data" / "configs"),
         "--params", str(params)]
    )  # fmt: skip
    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["do"]["cmd"]
    argv = cmd.replace("${item}", key).split()[2:]  # drop `python stages/train.py`
    return [str(root / a) if i % 2 == 1 and argv[i - 1] != "--model" else a for i, a in enumerate(argv)]


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_train_stage_writes_declared_outputs(key, tmp_path):
    import stages.train

    root = tmp_path / "repo"
    d = make_dataset(root / "data")
    assert d["segments"] == root / "data" / "segments"
    stages.train.main(_declared_cmd(key, root, _tiny_params(tmp_path)))

    out = root / "models" / key
    for s in (0, 1):
        model, ckpt = load_model(out / f"seed_{s}.pt")
        assert ckpt["model_key"] == key and ckpt["seed"] == s and np.isfinite(ckpt["best_val_loss"])
        assert {"params", "step", "inputs", "constructor", "state_dict"} <= set(ckpt)
    if key == "vade":
        assert (out / "pretrain_seed_0.pt").exists()
    latent_dim = yaml.safe_load((REPO / "params.yaml").read_text())["models"][key]["latent_dim"]
    zc = [f"z_{i:02d}" for i in range(latent_dim)]
    lat = pd.read_parquet(out / "latents.parquet")
    want = ["segment_id", "song_id", "split", "seed", *zc] + (["cluster"] if key == "vade" else [])
    assert list(lat.columns) == want
    assert len(lat) == 2 * 48 and np.isfinite(lat[zc].to_numpy()).all()
    assert not (out / "song_latents.parquet").exists()  # song means are the cluster stage's
    info = json.loads((out / "info.json").read_text())
    assert info["model_key"] == key and info["seeds"] == [0, 1] and info["latent_dim"] == latent_dim
    assert info["conditioned_on"] == {"cvae_language": ["language"], "cvae_genre": ["genre"]}.get(key, [])
    assert info["level"] == REGISTRY[key].cls.level
    rec = np.load(out / "recon.npz", allow_pickle=False)
    test_songs = set(lat.loc[lat["split"] == "test", "song_id"])
    if info["level"] == "song":  # song-level: one sample per test song, the song's clip statistics
        assert rec["x"].shape == rec["x_recon"].shape == (len(rec["song_id"]), 2 * 12)
        assert 0 < len(rec["song_id"]) and set(rec["song_id"]) <= test_songs
        # every clip of a song carries the song's latent: the song mean IS the song embedding
        assert (lat.groupby(["seed", "song_id"])[zc].nunique() == 1).all().all()
    else:
        assert rec["x"].shape == rec["x_recon"].shape and len(rec["segment_id"]) == rec["x"].shape[0] > 0
        assert all(s.split("__")[0] in test_songs for s in rec["segment_id"])

    hist = pd.read_csv(out / "history.csv")
    assert list(hist.columns) == HISTORY_COLUMNS
    assert set(hist["seed"]) == {0, 1}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["applicable"] is True and metrics["reason"] is None
    assert info["applicable"] is True and info["reason"] is None
    assert metrics["best_val_loss_mean"] == pytest.approx(
        np.mean([metrics["seed_0_best_val_loss"], metrics["seed_1_best_val_loss"]])
    )
    assert {"n_clips", "n_train_clips", "n_val_clips", "seed_1_best_step", "steps_mean"} <= set(metrics)
    # every output is inside models/<key>/; timings only in the (undeclared) timings file
    assert sorted(p.name for p in (root / "models").iterdir()) == [key]
    assert not (root / "metrics").exists() and not (root / "plots").exists()
    timings = json.loads((root / "logs" / "train" / f"{key}.json").read_text())
    assert timings["seconds_total"] > 0 and set(timings["per_seed"]) == {"0", "1"}
    _assert_no_timing_keys(metrics, info, ckpt)


def _assert_no_timing_keys(*records) -> None:
    """No wall-clock value anywhere in a cached output (any key mentioning seconds/time)."""

    def keys(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield str(k)
                yield from keys(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from keys(v)

    for rec in records:
        bad = [k for k in keys(rec) if re.search(r"second|time|duration|elapsed", k)]
        assert not bad, f"timing keys in a cached output: {bad}"


def test_train_stage_uses_the_configured_thread_count(tmp_path):
    """train.threads is what torch runs with during training (and the caller's count is restored)."""
    import stages.train

    root = tmp_path / "repo"
    make_dataset(root / "data")
    params = _tiny_params(tmp_path)
    cfg = yaml.safe_load(params.read_text())
    cfg["train"]["threads"] = 3
    params.write_text(yaml.safe_dump(cfg))
    before = torch.get_num_threads()
    stages.train.main(_declared_cmd("autoencoder", root, params))
    timings = json.loads((root / "logs" / "train" / "autoencoder.json").read_text())
    assert timings["threads"] == 3
    assert torch.get_num_threads() == before


def test_declared_stage_cmd_matches_argparse():
    """dvc.yaml's train cmd uses exactly the options stages/train.py defines."""
    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["do"]["cmd"]
    used = set(re.findall(r"--(\w+)", cmd))
    text = (REPO / "stages" / "train.py").read_text()
    defined = set(re.findall(r'add_argument\("--(\w+)"', text))
    assert used == defined
