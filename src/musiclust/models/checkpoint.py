"""Checkpoints: plain dicts of primitives and tensors, loadable with ``weights_only=True``."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import torch

from musiclust.fileio import UserInputError, atomic_write_bytes
from musiclust.models.base import LatentModel
from musiclust.models.registry import REGISTRY, model_class, with_key


class CheckpointError(ValueError, UserInputError):
    """A checkpoint file is missing, unreadable, not one of ours, or its contents do not rebuild a
    model (one line naming the file; a stage shows it without a traceback)."""


_RETRAIN = "re-run training to rewrite it"


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
    never code. Its contents are data too and are checked before use: a registry key, constructor
    arguments that rebuild that model with exactly the stored weights' names and shapes (tried on
    PyTorch's ``meta`` device first, so edited arguments cannot make it allocate gigabytes), and
    finite weights. Anything else raises :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint; run the train stage for this model first")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/unsafe files
        raise CheckpointError(f"{path}: cannot be loaded safely ({_first_line(exc)}); {_RETRAIN}") from None
    key, kwargs, state = _parts(path, ckpt)
    cls = model_class(key)
    try:
        with torch.device("meta"):  # shapes only, no memory
            shell = cls(**kwargs)
    except Exception as exc:  # whatever the constructor says about arguments it cannot take
        raise CheckpointError(
            f"{path}: its constructor arguments do not build a {key} model ({_first_line(exc)}); {_RETRAIN}"
        ) from None
    _check_shapes(path, key, {k: (tuple(v.shape), v.dtype) for k, v in shell.state_dict().items()}, state)
    model = with_key(cls(**kwargs), key)
    model.load_state_dict(state)
    model.to(device).eval()
    return model, ckpt


def _parts(path: Path, ckpt: Any) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """``(model_key, constructor kwargs, state_dict)`` of a loaded checkpoint, each checked for its type."""
    if not isinstance(ckpt, dict) or not {"model_key", "constructor", "state_dict"} <= set(ckpt):
        raise CheckpointError(
            f"{path}: not a musiclust checkpoint (needs model_key, constructor, state_dict); {_RETRAIN}"
        )
    key, kwargs, state = ckpt["model_key"], ckpt["constructor"], ckpt["state_dict"]
    if not isinstance(key, str) or key not in REGISTRY:
        raise CheckpointError(
            f"{path}: model_key {str(key)[:80]!r} is not a known model ({', '.join(sorted(REGISTRY))}); "
            f"{_RETRAIN}"
        )
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise CheckpointError(f"{path}: constructor is not a mapping of argument names; {_RETRAIN}")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: state_dict is not a mapping of names to tensors; {_RETRAIN}")
    if not isinstance(ckpt.get("inputs", {}), dict):
        raise CheckpointError(f"{path}: inputs is not a mapping; {_RETRAIN}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{path}: non-finite weights (NaN or inf) in {', '.join(bad[:3])}"
            f"{' and more' if len(bad) > 3 else ''}: the model would place every song at random; {_RETRAIN}"
        )
    return key, kwargs, state


def _check_shapes(
    path: Path,
    key: str,
    expected: dict[str, tuple[tuple[int, ...], torch.dtype]],
    state: dict[str, torch.Tensor],
) -> None:
    """The stored weights must be exactly the ones the constructor arguments build, name by name:
    shape and dtype (``load_state_dict`` would cast float weights to int8 without a word)."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and (tuple(state[k].shape), state[k].dtype) != expected[k]]
    if missing or extra or wrong:
        if wrong:
            shape, dtype = expected[wrong[0]]
            what = (
                f"{wrong[0]} is {list(state[wrong[0]].shape)} {state[wrong[0]].dtype}, "
                f"the arguments build {list(shape)} {dtype}"
            )
        else:
            what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(
            f"{path}: its weights do not fit the {key} model its constructor arguments build ({what}); "
            f"{_RETRAIN}"
        )


def _first_line(exc: BaseException) -> str:
    """An exception's message, one line of it (torch's explanations run over several)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
