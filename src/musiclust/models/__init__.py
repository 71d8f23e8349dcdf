"""The model family: one class per file, one interface (:class:`LatentModel`), one registry.

``REGISTRY`` maps the model key (the same string in params.yaml, dvc.yaml, ``models/<key>/``
and the metrics file names) to its entry: the class's schema (:mod:`musiclust.models.schema`:
the settings it accepts, the inputs it needs), the class plus the settings the key fixes (several
keys may share a class, e.g. ``cvae_language`` and ``cvae_genre``). ``load_model`` rebuilds a trained model from a
checkpoint; :func:`musiclust.training.encode.encode_clips` encodes new clips with it.

The names that need torch (the interface and the checkpoints) are imported on first use (PEP 562),
so that the registry and the settings checks (the ``configure`` stage) run without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from musiclust.models.registry import REGISTRY, ModelSpec, build_model, model_class, model_spec
from musiclust.models.schema import ModelConfigError

if TYPE_CHECKING:
    from musiclust.models.base import Batch, LatentModel
    from musiclust.models.checkpoint import CheckpointError, load_model, make_checkpoint, save_checkpoint

#: name -> the module it comes from, for the torch-bound names imported on first use
_LAZY = {
    "Batch": "musiclust.models.base",
    "LatentModel": "musiclust.models.base",
    "CheckpointError": "musiclust.models.checkpoint",
    "load_model": "musiclust.models.checkpoint",
    "make_checkpoint": "musiclust.models.checkpoint",
    "save_checkpoint": "musiclust.models.checkpoint",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "REGISTRY",
    "Batch",
    "CheckpointError",
    "LatentModel",
    "ModelConfigError",
    "ModelSpec",
    "build_model",
    "load_model",
    "make_checkpoint",
    "model_class",
    "model_spec",
    "save_checkpoint",
]
