"""Model key -> registry entry. The key is the same in params.yaml, dvc.yaml, models/<key>/ and metrics.

An entry is a class plus *fixed settings*: several keys may share one class with different
fixed settings (``cvae_language`` and ``cvae_genre`` are both :class:`CVAE`, conditioned on
``language`` and on ``genre``). Fixed settings belong to the key, not to params.yaml: a
``models.<key>`` setting that contradicts one is an error naming it. An entry also names the
top-level params the model reads (``reads``: ``beta_vae`` reads ``beta``, the knob of
``dvc exp run -S beta=8``).

An entry names its class by import path and imports it on first use (:attr:`ModelSpec.cls`);
what the class accepts and needs is its schema (:mod:`musiclust.models.schema`), which the entry
holds. So resolving and checking every model's settings (the ``configure`` stage) imports
neither torch nor any model module.

Adding a model: its module (a :class:`~musiclust.models.base.LatentModel` subclass citing its
paper, naming its schema), its schema in :mod:`musiclust.models.schema`, one entry in
``REGISTRY`` below, and its ``models.<key>`` block (plus its key in ``train.models``) in
params.yaml. dvc.yaml iterates over ``train.models``; the registry-wide tests pick it up.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from musiclust.models import schema
from musiclust.models.schema import ModelConfigError, Schema
from musiclust.params import MODEL_GLOBALS, Params, check_model_settings

if TYPE_CHECKING:
    from musiclust.models.base import LatentModel


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: the model ``key``, its class's schema, the class (as ``"module:Class"``,
    imported on first use) and the settings the key fixes."""

    key: str
    schema: Schema
    #: ``"musiclust.models.vae:VAE"``; a test checks that the class names this entry's schema
    class_path: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: top-level params (of :data:`musiclust.params.MODEL_GLOBALS`) the model reads as settings
    reads: tuple[str, ...] = ()

    @cached_property
    def cls(self) -> type[LatentModel]:
        """The model class (its module, and torch, are imported here, on first use)."""
        module, _, name = self.class_path.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def needs(self) -> tuple[str, ...]:
        return self.schema.needs

    @property
    def x_kind(self) -> str:
        return self.schema.x_kind

    def config(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """``models.<key>`` settings plus the fixed ones, validated by the class's schema.

        A fixed setting may be repeated in params.yaml with the same value; any other value
        is an error, as is any setting the class does not know.
        """
        clash = {k: cfg[k] for k in self.fixed if k in cfg and cfg[k] != self.fixed[k]}
        if clash:
            raise ModelConfigError(
                f"models.{self.key}: {clash} contradict(s) the settings fixed by the key "
                f"{dict(self.fixed)}; use another model key instead"
            )
        try:
            return self.schema.check({**cfg, **self.fixed})
        except ModelConfigError as exc:  # the schema names the class key; name the registry key
            if self.schema.key == self.key:
                raise
            raise ModelConfigError(
                str(exc).replace(f"models.{self.schema.key}", f"models.{self.key}")
            ) from exc

    def resolve(self, params: Params) -> dict[str, Any]:
        """The settings this key trains with: its ``models.<key>`` block, the top-level params it
        reads and its fixed settings, validated by the class's schema (the one place they are put together)."""
        if self.key not in params.models:
            raise ModelConfigError(f"models.{self.key}: no settings block for this model in params.yaml")
        cfg = check_model_settings(self.key, params.models[self.key])
        cfg.update({name: getattr(params, name) for name in self.reads})
        return self.config(cfg)


def _entries(*specs: ModelSpec) -> dict[str, ModelSpec]:
    for s in specs:
        if set(s.reads) - set(MODEL_GLOBALS):
            raise ValueError(f"{s.key}: reads {s.reads}, not among the model globals {MODEL_GLOBALS}")
    return {s.key: dataclasses.replace(s, fixed=MappingProxyType(dict(s.fixed))) for s in specs}


REGISTRY: dict[str, ModelSpec] = _entries(
    ModelSpec("autoencoder", schema.AUTOENCODER, "musiclust.models.autoencoder:AutoEncoder"),
    ModelSpec("vae", schema.VAE, "musiclust.models.vae:VAE"),
    ModelSpec("beta_vae", schema.BETA_VAE, "musiclust.models.beta_vae:BetaVAE", reads=("beta",)),
    ModelSpec("conv_vae", schema.CONV_VAE, "musiclust.models.conv_vae:ConvVAE"),
    ModelSpec("conv1d_vae", schema.CONV1D_VAE, "musiclust.models.conv1d_vae:Conv1dVAE"),
    ModelSpec("cvae_language", schema.CVAE, "musiclust.models.cvae:CVAE", {"condition": "language"}),
    ModelSpec("cvae_genre", schema.CVAE, "musiclust.models.cvae:CVAE", {"condition": "genre"}),
    ModelSpec("vade", schema.VADE, "musiclust.models.vade:VaDE"),
    ModelSpec("multimodal", schema.MULTIMODAL, "musiclust.models.multimodal:MultimodalVAE"),
    ModelSpec("hybrid", schema.HYBRID, "musiclust.models.hybrid:HybridVAE"),
    ModelSpec("attention_mm", schema.ATTENTION_MM, "musiclust.models.attention:AttentionMultimodalVAE"),
    ModelSpec("shared_private", schema.SHARED_PRIVATE, "musiclust.models.shared_private:SharedPrivateVAE"),
    ModelSpec("song_vae", schema.SONG_VAE, "musiclust.models.song_vae:SongVAE", {"variational": True}),
    ModelSpec("song_ae", schema.SONG_VAE, "musiclust.models.song_vae:SongVAE", {"variational": False}),
)


def model_spec(key: str) -> ModelSpec:
    """The registry entry of ``key`` (error lists the known keys)."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise ModelConfigError(
            f"unknown model {key!r}; known models: {', '.join(sorted(REGISTRY))}"
        ) from None


def resolve_settings(params: Params) -> dict[str, dict[str, Any]]:
    """Model key -> resolved settings (:meth:`ModelSpec.resolve`) of every model in ``train.models``.

    Every ``models.<key>`` block must name a registered model (a typo is an error, not an
    ignored block); a bad setting is a :class:`ModelConfigError` naming ``models.<key>.<setting>``.
    """
    unknown = sorted(set(params.models) - set(REGISTRY))
    if unknown:
        raise ModelConfigError(
            f"models.{unknown[0]}: no such model; known models: {', '.join(sorted(REGISTRY))}"
        )
    return {key: model_spec(key).resolve(params) for key in params.train.models}


def model_class(key: str) -> type[LatentModel]:
    """The class registered under ``key``."""
    return model_spec(key).cls


def build_model(key: str, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> LatentModel:
    """Build model ``key`` from its params settings (plus the key's fixed ones) and the data dimensions.

    ``dims`` holds what the data decides: ``audio_dim`` (vector models), ``logmel_shape``
    (conv_vae), ``mfcc_seq_shape`` (conv1d_vae, attention_mm), ``text_dim`` (multimodal,
    hybrid, attention_mm), ``condition_values`` (cvae_*). The model's ``key`` is the registry
    key (so its checkpoints rebuild under that key even where a class serves several keys).
    """
    spec = model_spec(key)
    return with_key(spec.cls.from_config(spec.config(cfg), dims), key)


def with_key(model: LatentModel, key: str) -> LatentModel:
    """Set the instance's registry key (a class shared by several keys has one class-level key)."""
    model.key = key  # type: ignore[misc]  # instance attribute shadows the class default
    return model
