"""Train one model key on every seed and write its outputs (the ``train@<key>`` stage's library side).

Outputs under ``out_dir`` (see docs/pipeline.md, ``models/<key>/``): ``seed_<s>.pt``
checkpoints (VaDE also ``pretrain_seed_<s>.pt``), ``latents.parquet``,
``song_latents.parquet``, ``recon.npz`` and ``info.json``; plus the per-epoch history CSV
and the small metrics JSON at the paths given.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from musiclust.fileio import atomic_write_bytes, write_json, write_parquet
from musiclust.models.base import LatentModel
from musiclust.models.checkpoint import make_checkpoint, save_checkpoint
from musiclust.models.registry import build_model, model_spec
from musiclust.models.vade import VaDE
from musiclust.params import TrainParams
from musiclust.training.data import ClipData, load_clip_data, read_lyrics, read_segments
from musiclust.training.encode import encode_arrays, latents_frame, song_latents
from musiclust.training.loop import FitResult, fit, resolve_device, seed_everything, to_tensors

log = logging.getLogger(__name__)

PLOT_COLUMNS = [
    "epoch",
    "seed",
    "train_recon",
    "train_kl",
    "train_total",
    "val_recon",
    "val_kl",
    "val_total",
    "lr",
    "kl_weight",
]
#: test clips kept with their reconstructions for the report
N_RECON_SAMPLES = 8


def train_model(
    key: str,
    model_cfg: Mapping[str, Any],
    train_cfg: TrainParams,
    seeds: Sequence[int],
    segments_dir: str | Path,
    features_dir: str | Path,
    lyrics_path: str | Path,
    out_dir: str | Path,
    metrics_path: str | Path,
    plots_path: str | Path,
) -> dict[str, Any]:
    """Train model ``key`` once per seed; write checkpoints, latents, history and metrics.

    Training uses the non-silent clips of the train split; early stopping the non-silent
    val clips; latents are written for every usable clip of every split. Returns the metrics.
    """
    if not seeds:
        raise ValueError("params 'seeds' is empty: list at least one seed")
    torch.set_num_threads(max(1, train_cfg.threads))
    device = resolve_device(train_cfg.device)
    spec = model_spec(key)
    cls, cfg = spec.cls, spec.config(model_cfg)  # the key's fixed settings included
    segments = read_segments(segments_dir)
    lyrics = read_lyrics(lyrics_path) if "text" in cls.needs else None
    data = load_clip_data(
        segments,
        features_dir,
        x_kind=cls.x_kind,
        needs=cls.needs,
        feature_sets=train_cfg.features,
        lyrics=lyrics,
        condition=cfg.get("condition"),
    )
    train_mask, val_mask = data.split_mask("train"), data.split_mask("val")
    log.info(
        "%s: %d clips in, %d usable (train %d, val %d, silent %d), skipped %s; device %s",
        key,
        data.n_in,
        len(data.clips),
        train_mask.sum(),
        val_mask.sum(),
        int(data.clips["is_silent"].sum()),
        data.skipped or "none",
        device,
    )
    train, val = data.select(train_mask), data.select(val_mask)
    conditioned_on = [cfg["condition"]] if data.dims.get("condition_values") else []
    if "cond" in cls.needs and not conditioned_on:
        log.warning(
            "%s: column %r is empty for every clip; training WITHOUT a condition (a plain VAE)",
            key,
            cfg.get("condition"),
        )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("seed_*.pt"), *out_dir.glob("pretrain_seed_*.pt")]:
        stale.unlink()  # outputs are rewritten whole: no checkpoint of an old seed list survives

    params_record = {
        "train": _plain(dataclasses.asdict(train_cfg)),
        "model": _plain(cfg),
        "seeds": list(seeds),
    }
    history: list[dict[str, float]] = []
    latents: list[pd.DataFrame] = []
    per_seed: dict[int, dict[str, Any]] = {}
    recon = None
    for seed in seeds:
        seed_everything(int(seed))
        model = build_model(key, cfg, data.dims)
        norm = model.fit_input_stats(train)
        inputs = {**data.inputs, **({"normalization": norm} if norm else {})}
        extra: dict[str, Any] = {}
        if isinstance(model, VaDE):
            extra = _pretrain_vade(
                model, train, val, train_cfg, int(seed), device, out_dir, params_record, inputs
            )
        res = fit(model, train, val, train_cfg, seed=int(seed), label=key, device=device)
        history.extend(res.history)
        save_checkpoint(
            out_dir / f"seed_{seed}.pt",
            make_checkpoint(
                model,
                params=params_record,
                epoch=res.best_epoch,
                best_val_loss=float(res.best_val_loss),
                seed=int(seed),
                inputs=inputs,
                history=[dict(h) for h in res.history],
            ),
        )
        mu, cluster = encode_arrays(model, data.arrays, device)
        latents.append(latents_frame(data.clips, mu, cluster, int(seed)))
        per_seed[int(seed)] = _seed_summary(res, extra)
        log.info(
            "%s seed %s: val loss %.4g (epoch 0) -> %.4g (best, epoch %d of %d) in %.1f s",
            key,
            seed,
            res.first_val_loss,
            res.best_val_loss,
            res.best_epoch,
            res.epochs,
            res.seconds,
        )
        if recon is None:
            recon = _recon_samples(model, data, device)

    lat = pd.concat(latents, ignore_index=True)
    silent = np.tile(data.clips["is_silent"].to_numpy(bool), len(seeds))
    write_parquet(lat, out_dir / "latents.parquet")
    write_parquet(song_latents(lat, silent), out_dir / "song_latents.parquet")
    if recon is not None:
        _write_npz(out_dir / "recon.npz", recon)
    write_json(
        out_dir / "info.json",
        {
            "model_key": key,
            "conditioned_on": conditioned_on,
            "inputs": data.inputs,
            "latent_dim": int(cfg.get("latent_dim", model.latent_dim)),
            "seeds": [int(s) for s in seeds],
            "clips": {
                "in": data.n_in,
                "used": len(data.clips),
                "skipped": data.skipped,
                "train": int(train_mask.sum()),
                "val": int(val_mask.sum()),
                "silent_not_trained_on": int(data.clips["is_silent"].sum()),
            },
            "device": str(device),
            "per_seed": {str(s): v for s, v in per_seed.items()},
        },
    )
    plots = pd.DataFrame(history, columns=PLOT_COLUMNS)
    Path(plots_path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(plots_path, plots.to_csv(index=False).encode("utf-8"))
    metrics = _metrics(per_seed, data, int(train_mask.sum()), int(val_mask.sum()))
    write_json(metrics_path, metrics)
    return metrics


def _pretrain_vade(
    model: VaDE,
    train: Mapping[str, np.ndarray],
    val: Mapping[str, np.ndarray],
    cfg: TrainParams,
    seed: int,
    device: torch.device,
    out_dir: Path,
    params_record: dict,
    inputs: dict,
) -> dict[str, Any]:
    """VaDE stages 1-2: autoencoder pretraining (its own checkpoint), then GMM init of the prior."""
    model.pretraining = True
    res = fit(
        model,
        train,
        val,
        cfg,
        seed=seed,
        label="vade/pretrain",
        device=device,
        max_epochs=model.pretrain_epochs,
        kl_warmup_epochs=0,
    )
    model.pretraining = False
    save_checkpoint(
        out_dir / f"pretrain_seed_{seed}.pt",
        make_checkpoint(
            model,
            params=params_record,
            epoch=res.best_epoch,
            best_val_loss=float(res.best_val_loss),
            seed=seed,
            inputs=inputs,
            stage="pretrain",
            history=[dict(h) for h in res.history],
        ),
    )
    model.eval()
    with torch.no_grad():
        codes = model.latent(to_tensors(train, device)).float().cpu().numpy()
    gmm = model.init_prior(codes, seed)
    log.info(
        "vade seed %d: pretrained %d epochs (val recon %.4g), GMM prior initialised %s",
        seed,
        res.epochs,
        res.best_val_loss,
        gmm,
    )
    return {
        "pretrain_epochs": res.epochs,
        "pretrain_val_loss": float(res.best_val_loss),
        "pretrain_seconds": res.seconds,
        **gmm,
    }


def _seed_summary(res: FitResult, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "first_val_loss": float(res.first_val_loss),
        "best_val_loss": float(res.best_val_loss),
        "best_epoch": res.best_epoch,
        "epochs": res.epochs,
        "seconds": round(res.seconds, 2),
        "stopped_early": res.stopped_early,
        **extra,
    }


def _metrics(
    per_seed: Mapping[int, Mapping[str, Any]], data: ClipData, n_train: int, n_val: int
) -> dict[str, Any]:
    """Small flat JSON: per-seed best/first val loss, epochs, seconds, and their means."""
    out: dict[str, Any] = {"n_clips": len(data.clips), "n_train_clips": n_train, "n_val_clips": n_val}
    keys = ("best_val_loss", "first_val_loss", "epochs", "seconds")
    for seed, s in per_seed.items():
        for k in keys:
            out[f"seed_{seed}_{k}"] = s[k]
    for k in keys:
        out[f"{k}_mean"] = float(np.mean([s[k] for s in per_seed.values()]))
    out["seconds_total"] = float(
        sum(s["seconds"] + s.get("pretrain_seconds", 0.0) for s in per_seed.values())
    )
    return out


@torch.no_grad()
def _recon_samples(model: LatentModel, data: ClipData, device: torch.device) -> dict[str, np.ndarray] | None:
    """A few TEST clips (one per song, non-silent) with inputs and reconstructions in model space."""
    clips = data.clips
    cand = clips[(clips["split"] == "test") & ~clips["is_silent"]]
    if cand.empty:
        cand = clips[~clips["is_silent"]]
    pick = cand.drop_duplicates("song_id").index[:N_RECON_SAMPLES].to_numpy()
    if len(pick) == 0:
        return None
    model.eval()
    batch = to_tensors({k: v[pick] for k, v in data.arrays.items()}, device)
    target = model.targets(batch)
    rec = model.decode(model.latent(batch), batch)
    out: dict[str, np.ndarray] = {"segment_id": clips.loc[pick, "segment_id"].to_numpy().astype(str)}
    for name in target:
        t, r = target[name].float().cpu().numpy(), rec[name].float().cpu().numpy()
        if t.ndim == 4:  # conv: (B, 1, h, w) -> (B, h, w)
            t, r = t[:, 0], r[:, 0]
        out[name], out[f"{name}_recon"] = t, r
    if "has_text" in batch:
        out["has_text"] = batch["has_text"].cpu().numpy()
    return out


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _plain(obj: Any) -> Any:
    """Tuples -> lists, mappings -> dicts (checkpoint params must load with weights_only)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
