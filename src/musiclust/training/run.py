"""Train one model key on every seed and write its outputs (the ``train@<key>`` stage's library side).

Everything goes under ``out_dir`` (``models/<key>/``, :mod:`musiclust.contracts.models`): ``seed_<s>.pt``
checkpoints (plus ``pretrain_seed_<s>.pt`` for a model with a pretraining stage, e.g. VaDE),
``latents.parquet``, ``recon.npz``, ``history.csv``,
``metrics.json`` and ``info.json``. A model whose inputs are absent (a text model when no song
has lyrics, a conditional model without two condition classes in the train split) is not
trained, and neither is a model with too few clips to train on (:func:`musiclust.params.check_training_data`):
it writes ``info.json`` and ``metrics.json`` with ``applicable: false`` and a reason,
and a ``history.csv`` with only its header. Timings are returned, never written there.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from musiclust.contracts import lyrics as lyrics_contract
from musiclust.contracts import models as contract
from musiclust.contracts import segments as segments_contract
from musiclust.log import setup_logging
from musiclust.models.base import LatentModel
from musiclust.models.checkpoint import make_checkpoint, save_checkpoint
from musiclust.models.registry import build_model, model_spec
from musiclust.params import TrainParams, check_training_data
from musiclust.training.data import (
    ClipData,
    load_clip_data,
    not_applicable_reason,
)
from musiclust.training.determinism import deterministic, seed_everything
from musiclust.training.diagnostics import latent_usage
from musiclust.training.encode import encode_arrays, encode_data
from musiclust.training.loop import FitResult, fit, resolve_device, to_tensors, validation_subset

log = logging.getLogger(__name__)

#: test clips kept with their reconstructions for the report
N_RECON_SAMPLES = 8


@dataclass
class TrainResult:
    """What :func:`train_model` wrote (``metrics``, ``info``) and how long it took (``timings``:
    wall-clock seconds, for the log and the stage's timings file only)."""

    metrics: dict[str, Any]
    info: dict[str, Any]
    timings: dict[str, Any]


@dataclass
class _SeedRun:
    """One seed's outcome: its summary for info/metrics, history rows, latents, seconds and the
    process it ran in (``stage`` or ``child``: for the timings file only)."""

    summary: dict[str, Any]
    history: list[dict[str, float]]
    latents: pd.DataFrame
    seconds: dict[str, float]
    model: LatentModel
    process: str = "stage"


def train_model(
    key: str,
    model_cfg: Mapping[str, Any],
    train_cfg: TrainParams,
    seeds: Sequence[int],
    segments_dir: str | Path,
    features_dir: str | Path,
    lyrics_path: str | Path | None,
    out_dir: str | Path,
) -> TrainResult:
    """Train model ``key`` once per seed into ``out_dir``; see the module docstring for the files.

    ``model_cfg`` are the model's resolved settings (``data/configs/<key>/settings.json``);
    ``lyrics_path`` the lyrics table of a model that reads lyrics (None for the others).

    Training uses the non-silent clips of the train split; early stopping the non-silent
    val clips; latents are written for every usable clip of every split. Runs with
    ``train.threads`` CPU threads and deterministic kernels, so the same code, params and
    inputs give byte-identical files on the same machine.
    """
    if not seeds:
        raise ValueError("params 'seeds' is empty: list at least one seed")
    device = resolve_device(train_cfg.device)
    with deterministic(train_cfg.threads, device):
        result = _train_all_seeds(
            key, model_cfg, train_cfg, [int(s) for s in seeds], device,
            segments_dir, features_dir, lyrics_path, Path(out_dir),
        )  # fmt: skip
        result.timings["threads"] = torch.get_num_threads()
    return result


def _train_all_seeds(
    key: str,
    model_cfg: Mapping[str, Any],
    train_cfg: TrainParams,
    seeds: list[int],
    device: torch.device,
    segments_dir: str | Path,
    features_dir: str | Path,
    lyrics_path: str | Path | None,
    out_dir: Path,
) -> TrainResult:
    spec = model_spec(key)
    cls, cfg = spec.cls, spec.config(model_cfg)  # checked again: a hand-edited settings file
    data = _load_data(cls, cfg, train_cfg, segments_dir, features_dir, lyrics_path)
    train_mask, val_mask = data.split_mask("train"), data.split_mask("val")
    counts, info_args = _describe(key, data, cfg, seeds, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    contract.clear_outputs(out_dir)
    # inputs absent, or too few clips to train on (e.g. VaDE components > training clips): not applicable
    # at once, not after minutes, and the run goes on with the other representations
    reason = not_applicable_reason(data, cls.needs, cfg.get("condition")) or check_training_data(
        key, cfg, int(train_mask.sum()), int(val_mask.sum())
    )
    if reason is not None:
        log.warning("%s: not trained (applicable: false): %s", key, reason)
        return _write_run(key, out_dir, reason, [], {}, counts, {**info_args, "conditioned_on": []})

    train, val = data.select(train_mask), data.select(val_mask)
    params_record = {
        # seed_workers changes how long training takes, not what it writes: left out of the record
        "train": _plain({k: v for k, v in dataclasses.asdict(train_cfg).items() if k != "seed_workers"}),
        "model": _plain(cfg),
        "seeds": list(seeds),
    }
    job = _SeedJob(
        key, dict(model_cfg), train_cfg, str(segments_dir), str(features_dir), None if lyrics_path is None else str(lyrics_path),
        str(out_dir), params_record, str(device),
    )  # fmt: skip
    procs = _seed_processes(train_cfg, len(seeds), device)

    def here(s: int) -> _SeedRun:
        return _train_seed(key, cfg, data, train, val, train_cfg, s, device, out_dir, params_record)

    runs = _train_seeds_in_processes(job, seeds, procs, here) if procs > 1 else {s: here(s) for s in seeds}
    _write_latents(out_dir, data, runs, device)
    conditioned_on = [cfg["condition"]] if data.dims.get("condition_values") else []
    latent_dim = runs[seeds[0]].model.latent_dim
    result = _write_run(
        key,
        out_dir,
        None,
        [row for r in runs.values() for row in r.history],
        {s: r.summary for s, r in runs.items()},
        counts,
        {**info_args, "conditioned_on": conditioned_on, "latent_dim": latent_dim},
    )
    result.timings["per_seed"] = {str(s): r.seconds for s, r in runs.items()}
    result.timings["seed_process"] = {str(s): r.process for s, r in runs.items()}
    result.timings["seconds_total"] = round(sum(sum(r.seconds.values()) for r in runs.values()), 3)
    return result


@dataclass(frozen=True)
class _SeedJob:
    """What a seed's training process needs (paths and params: the process reloads the clips itself)."""

    key: str
    model_cfg: dict[str, Any]
    train_cfg: TrainParams
    segments_dir: str
    features_dir: str
    lyrics_path: str | None
    out_dir: str
    params_record: dict[str, Any]
    device: str


def _seed_processes(train_cfg: TrainParams, n_seeds: int, device: torch.device) -> int:
    """How many seeds train at once: ``train.seed_workers`` processes on CPU (one GPU: one at a time)."""
    if device.type != "cpu":
        return 1
    return max(1, min(train_cfg.seed_workers, n_seeds))


def _train_seeds_in_processes(
    job: _SeedJob, seeds: list[int], procs: int, here: Callable[[int], _SeedRun]
) -> dict[int, _SeedRun]:
    """``procs`` seeds at a time: this process trains seeds itself (``here``, on the clips it has
    already loaded) beside ``procs - 1`` child processes; results in seed order.

    This process takes the first seed and each child one of the next; whenever this process
    finishes a seed it hands the next ones to children that are idle and takes one itself. A
    seed's run depends only on its seed and inputs (everything is reseeded, each process runs
    ``train.threads`` threads with deterministic kernels), so the files are byte-identical to
    training the seeds one after another, wherever each ran. A child costs a Python start, the
    torch imports (about 3.5 s of CPU) and a load of the clips, which this process has done
    already; ``spawn`` keeps the children free of this process's thread pools.
    """
    ctx = mp.get_context("spawn")
    log.info(
        "%s: training %d seeds, %d at a time (this process and %d more; train.seed_workers)",
        job.key, len(seeds), procs, procs - 1,
    )  # fmt: skip
    queue, runs = list(seeds), {}
    with ProcessPoolExecutor(
        max_workers=procs - 1, mp_context=ctx, initializer=_init_seed_process, initargs=(os.getpid(),)
    ) as pool:
        mine = queue.pop(0)
        futures = {s: pool.submit(_seed_in_process, job, s) for s in queue[: procs - 1]}
        del queue[: procs - 1]
        while mine is not None:
            runs[mine] = here(mine)
            idle = procs - 1 - sum(not f.done() for f in futures.values())
            futures.update({s: pool.submit(_seed_in_process, job, s) for s in queue[:idle]})
            del queue[:idle]
            mine = queue.pop(0) if queue else None
        runs.update({s: f.result() for s, f in futures.items()})
    return {s: runs[s] for s in seeds}


def _init_seed_process(parent: int) -> None:
    """Logging, and exit when the parent (the stage, pid ``parent``) is gone: a stage killed from
    outside (a stopped `dvc repro`, a `kill` of the stage) must not leave seeds training for nobody.

    The parent's pid comes from the parent itself: read here with ``os.getppid()`` it would be
    init's when the stage died while this process was still starting (importing torch).
    """
    setup_logging()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _seed_in_process(job: _SeedJob, seed: int) -> _SeedRun:
    """Load the clips and train one seed (the body of a seed process)."""
    device = torch.device(job.device)
    spec = model_spec(job.key)
    cls, cfg = spec.cls, spec.config(job.model_cfg)
    with deterministic(job.train_cfg.threads, device):
        data = _load_data(cls, cfg, job.train_cfg, job.segments_dir, job.features_dir, job.lyrics_path)
        train, val = data.select(data.split_mask("train")), data.select(data.split_mask("val"))
        run = _train_seed(
            job.key, cfg, data, train, val, job.train_cfg, seed, device, Path(job.out_dir), job.params_record
        )
    run.model.to("cpu")
    run.process = "child"
    return run


def _load_data(
    cls: type[LatentModel],
    cfg: Mapping[str, Any],
    train_cfg: TrainParams,
    segments_dir: str | Path,
    features_dir: str | Path,
    lyrics_path: str | Path | None,
) -> ClipData:
    """The clips a model of class ``cls`` trains on, with its inputs (same in every seed process)."""
    if "text" in cls.needs and lyrics_path is None:
        raise ValueError(f"{cls.key} reads lyrics but was given no lyrics table")
    return load_clip_data(
        segments_contract.read_segments(segments_dir),
        features_dir,
        x_kind=cls.x_kind,
        needs=cls.needs,
        feature_sets=train_cfg.features,
        lyrics=lyrics_contract.read(lyrics_path) if "text" in cls.needs else None,
        condition=cfg.get("condition"),
    )


def _describe(
    key: str, data: ClipData, cfg: Mapping[str, Any], seeds: list[int], device: torch.device
) -> tuple[dict[str, int], dict[str, Any]]:
    """Log the clips a run uses; return the clip counts (metrics.json) and info.json fields."""
    n_train, n_val = int(data.split_mask("train").sum()), int(data.split_mask("val").sum())
    n_silent = int(data.clips["is_silent"].sum())
    log.info(
        "%s: %d clips in, %d usable (train %d, val %d, silent %d), skipped %s; device %s",
        key, data.n_in, len(data.clips), n_train, n_val, n_silent, data.skipped or "none", device,
    )  # fmt: skip
    counts = contract.clip_counts(data.n_in, len(data.clips), n_train, n_val, n_silent)
    clips = {
        "in": data.n_in, "used": len(data.clips), "skipped": data.skipped,
        "train": n_train, "val": n_val, "silent_not_trained_on": n_silent,
    }  # fmt: skip
    info_args = {
        "level": model_spec(key).cls.level,
        "inputs": data.inputs,
        "latent_dim": cfg.get("latent_dim"),
        "seeds": seeds,
        "device": str(device),
        "clips": clips,
    }
    return counts, info_args


def _write_latents(out_dir: Path, data: ClipData, runs: Mapping[int, _SeedRun], device: torch.device) -> None:
    """latents.parquet (every seed) and recon.npz (first seed's model)."""
    contract.write_latents(out_dir, pd.concat([r.latents for r in runs.values()], ignore_index=True))
    recon = _recon_samples(next(iter(runs.values())).model, data, device)
    if recon is not None:
        contract.write_recon(out_dir, recon)


def _write_run(
    key: str,
    out_dir: Path,
    reason: str | None,
    history: list[dict[str, float]],
    per_seed: Mapping[int, Mapping[str, Any]],
    counts: Mapping[str, int],
    info_args: Mapping[str, Any],
) -> TrainResult:
    """Write history.csv, metrics.json and info.json (for an applicable model or not)."""
    metrics = contract.metrics_record(per_seed, counts, reason)
    info = contract.info_record(key, reason=reason, per_seed=per_seed, **info_args)
    contract.write_records(out_dir, history, metrics, info)
    timings = {"model_key": key, "device": info["device"], "seconds_total": 0.0, "per_seed": {}}
    return TrainResult(metrics=metrics, info=info, timings=timings)


def _train_seed(
    key: str,
    cfg: Mapping[str, Any],
    data: ClipData,
    train: Mapping[str, Any],
    val: Mapping[str, Any],
    train_cfg: TrainParams,
    seed: int,
    device: torch.device,
    out_dir: Path,
    params_record: Mapping[str, Any],
) -> _SeedRun:
    """Build, (pre)train, checkpoint and encode one seed's model."""
    seed_everything(seed)
    model = build_model(key, cfg, data.dims)
    norm = model.fit_input_stats(train)
    inputs = {**data.inputs, **({"normalization": norm} if norm else {})}
    ckpt_extra = {"params": params_record, "seed": seed, "inputs": inputs}
    seconds: dict[str, float] = {}
    extra: dict[str, Any] = {}
    if model.pretrain_steps > 0:
        extra, seconds["pretrain_seconds"] = _pretrain_seed(
            key, model, train, val, train_cfg, seed, device, out_dir, ckpt_extra
        )
    res = fit(model, train, val, train_cfg, seed=seed, label=key, device=device)
    seconds["seconds"] = round(res.seconds, 3)
    save_checkpoint(contract.checkpoint_path(out_dir, seed), _checkpoint(model, res, ckpt_extra))
    mu, cluster = encode_data(model, data, device, train_cfg.workers)
    # on the validation clips each pass scores (train.val_clips): its cost is flat in the collection
    scored = validation_subset(val, train_cfg.val_clips) if len(val["x"]) else train
    usage = latent_usage(model, scored, device, train_cfg.workers)
    log.info(
        "%s seed %s: val loss %.4g (first pass, step %d) -> %.4g (best, step %d of %d) in %.1f s",
        key, seed, res.first_val_loss, min(train_cfg.eval_every, res.steps), res.best_val_loss,
        res.best_step, res.steps, res.seconds,
    )  # fmt: skip
    summary = {
        "first_val_loss": float(res.first_val_loss),
        "best_val_loss": float(res.best_val_loss),
        "best_step": res.best_step,
        "steps": res.steps,
        "stopped_early": res.stopped_early,
        **extra,
        "latent_usage": usage,
    }
    return _SeedRun(
        summary, res.history, contract.latents_frame(data.clips, mu, cluster, seed), seconds, model
    )


def _pretrain_seed(
    key: str,
    model: LatentModel,
    train: Mapping[str, Any],
    val: Mapping[str, Any],
    train_cfg: TrainParams,
    seed: int,
    device: torch.device,
    out_dir: Path,
    ckpt_extra: Mapping[str, Any],
) -> tuple[dict[str, Any], float]:
    """Pretrain one seed's model, checkpoint it and run its ``after_pretraining`` step.

    Returns ``(summary entries, pretraining seconds)``.
    """
    pre = _pretrain(model, train, val, train_cfg, seed, device, label=f"{key}/pretrain")
    save_checkpoint(
        contract.checkpoint_path(out_dir, seed, "pretrain"),
        _checkpoint(model, pre, ckpt_extra, stage="pretrain"),
    )
    pretrain_seconds = round(pre.seconds, 3)
    codes, _ = encode_arrays(model, train, device, train_cfg.workers)
    extra = {
        "pretrain_steps": pre.steps,
        "pretrain_val_loss": float(pre.best_val_loss),
        **model.after_pretraining(codes, seed),
    }
    log.info(
        "%s seed %d: pretrained %d steps (val loss %.4g); %s",
        key,
        seed,
        pre.steps,
        pre.best_val_loss,
        extra,
    )
    return extra, pretrain_seconds


def _pretrain(
    model: LatentModel,
    train: Mapping[str, Any],
    val: Mapping[str, Any],
    cfg: TrainParams,
    seed: int,
    device: torch.device,
    label: str,
) -> FitResult:
    """The model's first training stage (``pretrain_steps``, no KL warm-up, ``pretraining`` on)."""
    model.pretraining = True
    try:
        return fit(
            model, train, val, cfg, seed=seed, label=label, device=device,
            max_steps=model.pretrain_steps, kl_warmup_steps=0,
        )  # fmt: skip
    finally:
        model.pretraining = False


def _checkpoint(model: LatentModel, res: FitResult, extra: Mapping[str, Any], **more: Any) -> dict[str, Any]:
    """A checkpoint of ``model`` after ``res`` (no timings: the file must be reproducible)."""
    return make_checkpoint(
        model,
        step=res.best_step,
        best_val_loss=float(res.best_val_loss),
        history=[dict(h) for h in res.history],
        **extra,
        **more,
    )


@torch.no_grad()
def _recon_samples(model: LatentModel, data: ClipData, device: torch.device) -> dict[str, np.ndarray] | None:
    """A few TEST clips (one per song, non-silent) with inputs and reconstructions in model space
    (``segment_id``); for a song-level model a few TEST songs (``song_id``) with the song
    statistics it reconstructs."""
    clips = data.clips
    cand = clips[(clips["split"] == "test") & ~clips["is_silent"]]
    if cand.empty:
        cand = clips[~clips["is_silent"]]
    pick = cand.drop_duplicates("song_id").index[:N_RECON_SAMPLES].to_numpy()
    if len(pick) == 0:
        return None
    model.eval()
    ids = clips.loc[pick, "segment_id"].to_numpy().astype(str)
    if model.level == "song":  # every non-silent clip of those songs; one sample per song
        pick = cand.index[cand["song_id"].isin(clips.loc[pick, "song_id"])].to_numpy()
        codes = np.asarray(data.arrays["song"][pick])
        ids = clips.loc[pick, "song_id"].to_numpy().astype(str)[np.unique(codes, return_index=True)[1]]
    batch = to_tensors({k: np.asarray(v[pick]) for k, v in data.arrays.items()}, device)
    target = model.targets(batch)
    rec = model(batch)["recon"]  # eval mode: decoded from the posterior means
    out: dict[str, np.ndarray] = {"segment_id" if model.level == "clip" else "song_id": ids}
    for name in target:
        t, r = target[name].float().cpu().numpy(), rec[name].float().cpu().numpy()
        if t.ndim == 4:  # conv: (B, 1, h, w) -> (B, h, w)
            t, r = t[:, 0], r[:, 0]
        out[name], out[f"{name}_recon"] = t, r
    if "has_text" in batch:
        out["has_text"] = batch["has_text"].cpu().numpy()
    return out


def _plain(obj: Any) -> Any:
    """Tuples -> lists, mappings -> dicts (checkpoint params must load with weights_only)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
