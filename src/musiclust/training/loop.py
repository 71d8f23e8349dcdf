"""One training loop for every model in the family.

Adam/AdamW, KL annealing (linear warm-up of the KL weight over optimizer steps), early stopping
on the validation loss with patience, ReduceLROnPlateau, gradient clipping, CUDA with mixed
precision when present, and a clear error on a NaN/inf loss.

The budget is counted in optimizer steps, not in passes over the collection: training runs at
most ``train.max_steps`` steps, validates every ``train.eval_every`` steps on at most
``train.val_clips`` validation clips (a fixed seeded subset), and stops after
``train.patience`` validation passes without improvement. So a bigger collection costs no more
steps: it only draws each batch from more clips. Batches come from a stream of seeded shuffled
passes over the training clips, so the clips seen depend on the seed and the data only.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from musiclust.models.base import LatentModel
from musiclust.params import TrainParams
from musiclust.training.streaming import batches, eval_order, song_batches, subset

log = logging.getLogger(__name__)

#: clips per forward pass when evaluating/encoding (no gradients, so bigger is fine)
EVAL_BATCH = 512


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


@dataclass
class FitResult:
    """What :func:`fit` did: the history (one row per validation pass) and the best (restored) step."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_val_loss: float = math.inf
    first_val_loss: float = math.nan
    #: optimizer steps taken when the best validation loss was reached (its weights are restored)
    best_step: int = 0
    #: optimizer steps taken in all
    steps: int = 0
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


def kl_weight_at(step: int, warmup_steps: int) -> float:
    """Linear KL annealing: ``1/warmup`` at step 0, up to 1 from step ``warmup_steps - 1`` on."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def validation_subset(val: Mapping[str, Any], cap: int, seed: int = 0) -> Mapping[str, Any]:
    """At most ``cap`` rows of ``val`` (0: all), drawn at random with a fixed ``seed`` and kept in
    their original order, so the cost of a validation pass does not grow with the collection.

    A clip-level model's rows are drawn one by one (a uniform sample of the validation clips); a
    song-level model's (arrays with a ``"song"`` column) as whole songs, since it encodes a song
    from its clips. The seed is not the training seed: every seed of a model, and every
    clip-level model of the same clips, is scored on the same subset.
    """
    n = len(val["x"])
    if cap <= 0 or n <= cap:
        return val
    gen = torch.Generator().manual_seed(seed)
    if "song" in val:
        songs = song_batches(val["song"], 1, gen)  # one song per entry, in a random order
        sizes = np.cumsum([len(r) for r in songs])
        take = max(1, int(np.searchsorted(sizes, cap, side="right")))
        rows = np.sort(np.concatenate(songs[:take]))
    else:
        rows = np.sort(torch.randperm(n, generator=gen)[:cap].numpy())
    return {k: subset(v, rows) for k, v in val.items()}


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
    max_steps: int | None = None,
    kl_warmup_steps: int | None = None,
    on_pass: Callable[[FitResult, Mapping[str, torch.Tensor]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` for at most ``max_steps`` optimizer steps (``train.max_steps``),
    validate every ``train.eval_every`` steps on at most ``train.val_clips`` clips of ``val``,
    early-stop, and restore the best validation pass's weights.

    The loss that is optimised uses the annealed KL weight; the loss that selects the best
    weights, drives ReduceLROnPlateau and early stopping is the full objective (weight 1) on
    the validation clips, and patience only counts once the warm-up is over, so a rising KL
    weight is not mistaken for overfitting. ``label`` names the model in logs and errors.
    ``on_pass``, if given, is called after every validation pass with the result so far and the
    best weights so far (what training with ``max_steps`` equal to the steps taken would restore:
    the batches do not depend on ``max_steps``), e.g. to score several budgets in one run.
    """
    max_steps = cfg.max_steps if max_steps is None else max_steps
    warmup = cfg.kl_warmup_steps if kl_warmup_steps is None else kl_warmup_steps
    model.to(device)
    n = len(train["x"])
    va = _checked_splits(n, val, label, seed)
    if va is not None:
        va = validation_subset(va, cfg.val_clips)
    step = _Stepper(model, cfg, device, label, seed)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        step.opt, factor=cfg.lr_factor, patience=cfg.lr_patience
    )
    gen = torch.Generator().manual_seed(seed)  # batch order depends on the seed only
    stream = _batch_stream(train, n, max(2, min(cfg.batch_size, n)), gen)
    res = FitResult()
    best = _Best(model, res, cfg.patience, warmup)
    t0 = time.perf_counter()
    bar = tqdm(total=max_steps, desc=f"{label} seed {seed}", unit="step", leave=False, mininterval=2.0)
    while res.steps < max_steps:
        first = res.steps
        order = [next(stream) for _ in range(min(cfg.eval_every, max_steps - first))]
        tr_m = _train_steps(model, batches(train, order, device, cfg.workers), step, first, warmup)
        res.steps = first + len(order)
        bar.update(len(order))
        va_m = evaluate(model, va, device=device, workers=cfg.workers) if va is not None else tr_m
        if not math.isfinite(va_m["total"]):
            raise TrainingError(
                f"{label}: validation loss is {va_m['total']} at step {res.steps} (seed {seed})"
            )
        w = kl_weight_at(res.steps - 1, warmup)
        res.history.append(_history_row(res.steps, seed, tr_m, va_m, step.opt.param_groups[0]["lr"], w))
        if not res.history[:-1]:
            res.first_val_loss = va_m["total"]
        sched.step(va_m["total"])
        stop = best.update(va_m["total"], res.steps)
        if on_pass is not None:
            on_pass(res, best.state)
        bar.set_postfix(val=f"{va_m['total']:.3g}", best=f"{res.best_val_loss:.3g}")
        log.debug("%s seed %d step %d: %s", label, seed, res.steps, res.history[-1])
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


def _pass_order(train: Mapping[str, np.ndarray], n: int, bs: int, gen: torch.Generator) -> list[np.ndarray]:
    """One shuffled pass over the training rows in batches (drawn from ``gen``)."""
    if "song" in train:  # a song-level model: whole songs, about bs clips, in a random order
        return song_batches(train["song"], bs, gen)
    perm = torch.randperm(n, generator=gen).numpy()
    # drop a trailing batch of one: batch norm cannot train on it
    return [perm[s : s + bs] for s in range(0, n, bs) if n - s >= 2]


def _batch_stream(
    train: Mapping[str, np.ndarray], n: int, bs: int, gen: torch.Generator
) -> Iterator[np.ndarray]:
    """Batches of training row indices without end: shuffled pass after shuffled pass.

    Which batch comes at step ``s`` depends on the seed of ``gen`` and the data only, not on
    ``train.eval_every`` or ``train.max_steps``; a collection bigger than the budget is simply
    not seen whole.
    """
    while True:
        yield from _pass_order(train, n, bs, gen)


class _Best:
    """Tracks the best validation total (into ``res``) and its weights; counts bad validation passes.

    An improvement must beat the best by a relative 1e-6 (float noise is not progress), and
    bad passes only count once the KL warm-up is over.
    """

    def __init__(self, model: LatentModel, res: FitResult, patience: int, warmup: int) -> None:
        self.model, self.res, self.patience, self.warmup = model, res, patience, warmup
        self.state = copy.deepcopy(model.state_dict())
        self.bad_passes = 0

    def update(self, val_total: float, steps: int) -> bool:
        """Record the validation total after ``steps`` steps; True when patience is exhausted (stop)."""
        best = self.res.best_val_loss
        if not math.isfinite(best) or val_total < best - 1e-6 * abs(best):
            self.res.best_val_loss, self.res.best_step = val_total, steps
            self.state = copy.deepcopy(self.model.state_dict())
            self.bad_passes = 0
        elif steps >= self.warmup:
            self.bad_passes += 1
        return self.bad_passes >= self.patience


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
        """Step on ``batch``; returns its recon and kl means. ``where`` (the step) names it in errors."""
        with _autocast(self.device):
            parts = self.model.loss(batch, kl_weight=kl_weight)
        loss = parts["total"]
        if not torch.isfinite(loss):
            raise TrainingError(
                f"{self.label}: loss is {float(loss.detach())} at {where} (seed {self.seed}; "
                f"recon {float(parts['recon'].detach()):.4g}, kl {float(parts['kl'].detach()):.4g}). "
                "Lower train.lr, raise train.kl_warmup_steps, or check the input features for extreme values."
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


def _train_steps(
    model: LatentModel,
    loader: Iterable[Mapping[str, torch.Tensor]],
    step: _Stepper,
    first: int,
    warmup: int,
) -> dict[str, float]:
    """Optimizer steps ``first``, ``first + 1``, ... on the batches of ``loader`` (each at its own
    annealed KL weight); means of recon, kl and total over those batches.

    The total is the model's objective at full KL weight on those means (no second pass over
    the training batches): the KL term as the objective charges it (a model with a KL floor, such as
    beta_vae's free bits, reports it as ``kl_charged``), so it is the same quantity as the
    validation total, which :func:`evaluate` takes from the model's loss at weight 1.
    """
    model.train()
    run = {"recon": 0.0, "kl": 0.0, "kl_charged": 0.0, "n": 0}
    for i, batch in enumerate(loader):
        parts = step(batch, kl_weight_at(first + i, warmup), f"step {first + i}")
        b = model.n_examples(batch)
        for k in ("recon", "kl", "kl_charged"):
            run[k] += parts[k] * b
        run["n"] += b
    out = {k: run[k] / run["n"] for k in ("recon", "kl", "kl_charged")}
    out["total"] = float(model.objective(out["recon"], out.pop("kl_charged"), 1.0))
    return out


def _history_row(
    steps: int, seed: int, tr_m: Mapping[str, float], va_m: Mapping[str, float], lr: float, w: float
) -> dict[str, float]:
    """One row of the history (the columns of ``history.csv``): a validation pass after ``steps``
    optimizer steps, the training means over the steps since the previous pass, the learning rate
    and the KL weight of the last step."""
    return {
        "step": steps,
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
