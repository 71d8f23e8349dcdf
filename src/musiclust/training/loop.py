"""One training loop for every model in the family.

Adam/AdamW, KL annealing (linear warm-up of the KL weight), early stopping on the
validation loss with patience, ReduceLROnPlateau, gradient clipping, CUDA with
mixed precision when present, and a clear error on a NaN/inf loss.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from musiclust.models.base import LatentModel
from musiclust.params import TrainParams
from musiclust.training.streaming import batches, eval_order, song_batches

log = logging.getLogger(__name__)

#: clips per forward pass when evaluating/encoding (no gradients, so bigger is fine)
EVAL_BATCH = 512


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


@dataclass
class FitResult:
    """What :func:`fit` did: per-epoch history and the best (restored) epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_val_loss: float = math.inf
    first_val_loss: float = math.nan
    best_epoch: int = 0
    epochs: int = 0
    seconds: float = 0.0
    stopped_early: bool = False


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(
            "train.device is cuda but no CUDA device is available; set train.device: auto or cpu"
        )
    return torch.device(name)


def to_tensors(arrays: Mapping[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Numpy arrays -> float32 tensors on ``device`` (the whole split fits in memory)."""
    return {
        k: torch.as_tensor(np.ascontiguousarray(v), dtype=torch.float32, device=device)
        for k, v in arrays.items()
    }


def _autocast(device: torch.device):
    """Mixed precision on CUDA (bfloat16 where supported, no loss scaling needed); off on CPU."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def kl_weight_at(epoch: int, warmup_epochs: int) -> float:
    """Linear KL annealing: 1/warmup at epoch 0 up to 1 after ``warmup_epochs`` epochs."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + 1) / warmup_epochs)


@torch.no_grad()
def evaluate(
    model: LatentModel,
    data: Mapping[str, Any],
    kl_weight: float = 1.0,
    *,
    device: torch.device | None = None,
    workers: int = 0,
) -> dict[str, float]:
    """Mean recon/kl/total per example (:meth:`LatentModel.n_examples`: clips, or songs for a
    song-level model) over ``data`` in eval mode (posterior means, no sampling).

    ``data``: arrays keyed like a batch (numpy, :class:`~musiclust.training.streaming.ShardedArray`
    or tensors), read in batches of :data:`EVAL_BATCH`; ``device`` defaults to the model's.
    """
    model.eval()
    device = device or next(model.parameters()).device
    n = 0
    sums = {"recon": 0.0, "kl": 0.0, "total": 0.0}
    for batch in batches(data, eval_order(data, EVAL_BATCH), device, workers):
        with _autocast(device):
            parts = model.loss(batch, kl_weight=kl_weight)
        b = model.n_examples(batch)
        n += b
        for k in sums:
            sums[k] += float(parts[k]) * b
    return {k: v / max(n, 1) for k, v in sums.items()}


def fit(
    model: LatentModel,
    train: Mapping[str, np.ndarray],
    val: Mapping[str, np.ndarray] | None,
    cfg: TrainParams,
    *,
    seed: int,
    label: str,
    device: torch.device,
    max_epochs: int | None = None,
    kl_warmup_epochs: int | None = None,
) -> FitResult:
    """Train ``model`` on ``train``, early-stop on ``val``, restore the best epoch's weights.

    The loss that is optimised uses the annealed KL weight; the loss that selects the best
    epoch, drives ReduceLROnPlateau and early stopping is the full objective (weight 1) on
    the validation clips, and patience only counts once the warm-up is over, so a rising KL
    weight is not mistaken for overfitting. ``label`` names the model in logs and errors.
    """
    max_epochs = cfg.max_epochs if max_epochs is None else max_epochs
    warmup = cfg.kl_warmup_epochs if kl_warmup_epochs is None else kl_warmup_epochs
    model.to(device)
    n = len(train["x"])
    va = _checked_splits(n, val, label, seed)
    step = _Stepper(model, cfg, device, label, seed)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        step.opt, factor=cfg.lr_factor, patience=cfg.lr_patience
    )
    gen = torch.Generator().manual_seed(seed)  # batch order depends on the seed only
    bs = max(2, min(cfg.batch_size, n))
    res = FitResult()
    best = _BestEpoch(model, res, cfg.patience, warmup)
    t0 = time.perf_counter()
    bar = tqdm(range(max_epochs), desc=f"{label} seed {seed}", leave=False, mininterval=2.0)
    for epoch in bar:
        w = kl_weight_at(epoch, warmup)
        order = _epoch_order(train, n, bs, gen)
        tr_m = _train_epoch(model, batches(train, order, device, cfg.workers), step, w, epoch)
        va_m = evaluate(model, va, device=device, workers=cfg.workers) if va is not None else tr_m
        if not math.isfinite(va_m["total"]):
            raise TrainingError(f"{label}: validation loss is {va_m['total']} at epoch {epoch} (seed {seed})")
        res.history.append(_history_row(epoch, seed, tr_m, va_m, step.opt.param_groups[0]["lr"], w))
        if epoch == 0:
            res.first_val_loss = va_m["total"]
        sched.step(va_m["total"])
        stop = best.update(va_m["total"], epoch)
        bar.set_postfix(val=f"{va_m['total']:.3g}", best=f"{res.best_val_loss:.3g}")
        log.debug("%s seed %d epoch %d: %s", label, seed, epoch, res.history[-1])
        res.epochs = epoch + 1
        if stop:
            res.stopped_early = True
            break
    bar.close()
    model.load_state_dict(best.state)
    model.eval()
    res.seconds = time.perf_counter() - t0
    return res


def _checked_splits(
    n: int, val: Mapping[str, np.ndarray] | None, label: str, seed: int
) -> Mapping[str, np.ndarray] | None:
    """Refuse fewer than 2 training clips; return the validation split, or None (with a warning) if empty."""
    if n < 2:
        raise TrainingError(
            f"{label}: {n} training clips; need at least 2 (check the split and silence flags)"
        )
    va = val if val is not None and len(val["x"]) else None
    if va is None:
        log.warning(
            "%s seed %d: no validation clips; early stopping uses the training loss instead", label, seed
        )
    return va


def _epoch_order(train: Mapping[str, np.ndarray], n: int, bs: int, gen: torch.Generator) -> list[np.ndarray]:
    """One epoch's batches of training row indices, shuffled by ``gen``."""
    if "song" in train:  # a song-level model: whole songs, about bs clips, in a random order
        return song_batches(train["song"], bs, gen)
    perm = torch.randperm(n, generator=gen).numpy()
    # drop a trailing batch of one: batch norm cannot train on it
    return [perm[s : s + bs] for s in range(0, n, bs) if n - s >= 2]


class _BestEpoch:
    """Tracks the best validation total (into ``res``) and its weights; counts bad epochs.

    An improvement must beat the best by a relative 1e-6 (float noise is not progress), and
    bad epochs only count once the KL warm-up is over.
    """

    def __init__(self, model: LatentModel, res: FitResult, patience: int, warmup: int) -> None:
        self.model, self.res, self.patience, self.warmup = model, res, patience, warmup
        self.state = copy.deepcopy(model.state_dict())
        self.bad_epochs = 0

    def update(self, val_total: float, epoch: int) -> bool:
        """Record ``epoch``'s validation total; True when patience is exhausted (stop)."""
        best = self.res.best_val_loss
        if not math.isfinite(best) or val_total < best - 1e-6 * abs(best):
            self.res.best_val_loss, self.res.best_epoch = val_total, epoch
            self.state = copy.deepcopy(self.model.state_dict())
            self.bad_epochs = 0
        elif epoch + 1 >= self.warmup:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


class _Stepper:
    """One optimiser step on a batch: loss, NaN check, (scaled) backward, gradient clipping."""

    def __init__(self, model: LatentModel, cfg: TrainParams, device: torch.device, label: str, seed: int):
        self.model, self.device, self.label, self.seed = model, device, label, seed
        self.grad_clip = cfg.grad_clip
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        # foreach: one fused update over all parameters instead of a Python loop over them (the
        # default on CUDA only); the same numbers, fewer small CPU kernels per step
        self.opt = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
        # float16 autocast (GPUs without bfloat16) needs loss scaling; elsewhere this is a no-op
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported()
        )

    def __call__(self, batch: Mapping[str, torch.Tensor], kl_weight: float, where: str) -> dict[str, float]:
        """Step on ``batch``; returns its recon and kl means. ``where`` (epoch/step) names it in errors."""
        with _autocast(self.device):
            parts = self.model.loss(batch, kl_weight=kl_weight)
        loss = parts["total"]
        if not torch.isfinite(loss):
            raise TrainingError(
                f"{self.label}: loss is {float(loss.detach())} at {where} (seed {self.seed}; "
                f"recon {float(parts['recon'].detach()):.4g}, kl {float(parts['kl'].detach()):.4g}). "
                "Lower train.lr, raise train.kl_warmup_epochs, or check the input features for extreme values."
            )
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.opt)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        charged = parts.get("kl_charged", parts["kl"])  # the KL as the objective charges it (free bits)
        return {
            "recon": float(parts["recon"].detach()),
            "kl": float(parts["kl"].detach()),
            "kl_charged": float(charged.detach()),
        }


def _train_epoch(
    model: LatentModel,
    loader: Iterable[Mapping[str, torch.Tensor]],
    step: _Stepper,
    kl_weight: float,
    epoch: int,
) -> dict[str, float]:
    """One pass over the training batches of ``loader``; means of recon, kl and total.

    The total is the model's objective at full KL weight on those means (no second pass over
    the training set): the KL term as the objective charges it (a model with a KL floor, such as
    beta_vae's free bits, reports it as ``kl_charged``), so it is the same quantity as the
    validation total, which :func:`evaluate` takes from the model's loss at weight 1.
    """
    model.train()
    run = {"recon": 0.0, "kl": 0.0, "kl_charged": 0.0, "n": 0}
    for i, batch in enumerate(loader):
        parts = step(batch, kl_weight, f"epoch {epoch} step {i}")
        b = model.n_examples(batch)
        for k in ("recon", "kl", "kl_charged"):
            run[k] += parts[k] * b
        run["n"] += b
    out = {k: run[k] / run["n"] for k in ("recon", "kl", "kl_charged")}
    out["total"] = float(model.objective(out["recon"], out.pop("kl_charged"), 1.0))
    return out


def _history_row(
    epoch: int, seed: int, tr_m: Mapping[str, float], va_m: Mapping[str, float], lr: float, w: float
) -> dict[str, float]:
    """One row of the per-epoch history (the columns of ``history.csv``)."""
    return {
        "epoch": epoch,
        "seed": seed,
        "train_recon": tr_m["recon"],
        "train_kl": tr_m["kl"],
        "train_total": tr_m["total"],
        "val_recon": va_m["recon"],
        "val_kl": va_m["kl"],
        "val_total": va_m["total"],
        "lr": lr,
        "kl_weight": w,
    }
