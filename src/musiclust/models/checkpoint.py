"""Checkpoints: plain dicts of primitives and tensors, loadable with ``weights_only=True``."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import torch

from musiclust.fileio import atomic_write_bytes
from musiclust.models.base import LatentModel
from musiclust.models.registry import model_class, with_key


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not one of ours."""


def make_checkpoint(model: LatentModel, **extra: Any) -> dict[str, Any]:
    """The checkpoint dict: ``model_key``, ``constructor`` kwargs, ``state_dict`` plus ``extra``
    (``params``, ``step``, ``best_val_loss``, ``seed``, ``inputs``, ...; primitives only)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"model_key": model.key, "constructor": model.constructor_kwargs(), "state_dict": state, **extra}


def _canonical(obj: Any) -> Any:
    """``obj`` rebuilt with fresh containers and interned strings.

    Pickle writes an object seen twice as a back-reference, so the bytes of a checkpoint depend
    on which equal strings or containers happen to be the same object, which differs between a
    seed trained here and one trained in a child process (``train.seed_workers``). Rebuilt this
    way the bytes depend only on the values.
    """
    if isinstance(obj, dict):
        return {_canonical(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_canonical(v) for v in obj)
    if isinstance(obj, str):
        return sys.intern(obj)
    return obj


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Write a checkpoint atomically (bytes a function of its values only: :func:`_canonical`)."""
    buf = io.BytesIO()
    torch.save(_canonical(checkpoint), buf)
    atomic_write_bytes(path, buf.getvalue())


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[LatentModel, dict[str, Any]]:
    """Rebuild a trained model from ``path``: ``(model in eval mode, checkpoint dict)``.

    Uses ``torch.load(weights_only=True)``: a checkpoint can hold only tensors and primitives,
    never code.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint; run the train stage for this model first")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/unsafe files
        raise CheckpointError(
            f"{path}: cannot be loaded safely ({exc}); re-run training to rewrite it"
        ) from exc
    if not isinstance(ckpt, dict) or not {"model_key", "constructor", "state_dict"} <= set(ckpt):
        raise CheckpointError(
            f"{path}: not a musiclust checkpoint (needs model_key, constructor, state_dict)"
        )
    model = with_key(model_class(ckpt["model_key"])(**ckpt["constructor"]), ckpt["model_key"])
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval()
    return model, ckpt
