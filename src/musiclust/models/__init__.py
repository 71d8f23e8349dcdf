"""The model family: one class per file, one interface (:class:`LatentModel`), one registry.

``REGISTRY`` maps the model key (the same string in params.yaml, dvc.yaml, ``models/<key>/``
and the metrics file names) to its entry: the class plus the settings the key fixes (several
keys may share a class, e.g. ``cvae_language`` and ``cvae_genre``). ``load_model`` rebuilds a trained model from a
checkpoint; :func:`musiclust.training.encode.encode_clips` encodes new clips with it.
"""

from musiclust.models.base import Batch, LatentModel, ModelConfigError
from musiclust.models.checkpoint import CheckpointError, load_model, make_checkpoint, save_checkpoint
from musiclust.models.registry import REGISTRY, ModelSpec, build_model, model_class, model_spec

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
