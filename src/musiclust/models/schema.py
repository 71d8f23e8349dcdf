"""What each model class accepts and needs, without torch: its settings schema.

A :class:`Schema` per model class holds the class key, the settings its ``models.<key>`` block
may hold, the batch inputs it needs beyond ``x``, the level of its latents, the kind of its
audio input and the check of settings that are fine one by one but not together. The class
names its schema (``schema = schema.VAE``) and :class:`~musiclust.models.base.LatentModel` sets
its ``key``, ``config_keys``, ``needs``, ``level`` and ``x_kind`` from it: this module is the one
place those facts live. The registry and the ``configure`` stage read them here, so checking
every model's settings imports neither torch nor any model module.

Each setting's own type and range is checked when params.yaml is loaded
(:data:`musiclust.params.MODEL_SETTINGS`); what needs the data's shape, when the model is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from musiclust.fileio import UserInputError

#: batch inputs a model may need beyond ``x`` (see :mod:`musiclust.models.base`)
NEEDS = ("text", "cond", "song")
#: what one latent describes: a clip, or a song (every clip of a song gets the same latent)
LEVELS = ("clip", "song")
#: the audio input ``batch["x"]``: a feature vector, a log-mel patch or an MFCC sequence
X_KINDS = ("vector", "logmel", "mfcc_seq")


class ModelConfigError(ValueError, UserInputError):
    """A model's settings under ``models.<key>`` in params.yaml are unknown or invalid (one line, exit 2)."""


@dataclass(frozen=True)
class Schema:
    """One model class's settings and inputs (see the module docstring)."""

    #: the class key (a registry key may differ where several keys share the class)
    key: str
    #: settings accepted from params.yaml ``models.<key>``, each of them required
    config_keys: frozenset[str]
    #: batch inputs beyond ``x``: "text", "cond", "song"
    needs: tuple[str, ...] = ()
    #: "clip", or "song" for a model whose per-clip latents are its song's embedding repeated
    level: str = "clip"
    #: the kind of ``x``: "vector", "logmel" or "mfcc_seq"
    x_kind: str = "vector"
    #: ``(key, settings) -> None``: refuses settings that are fine one by one but not together
    spanning: Callable[[str, Mapping[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config_keys, frozenset) or "latent_dim" not in self.config_keys:
            raise ValueError(f"{self.key}: config_keys must be a frozenset holding 'latent_dim'")
        if set(self.needs) - set(NEEDS) or self.level not in LEVELS or self.x_kind not in X_KINDS:
            raise ValueError(
                f"{self.key}: needs {self.needs} (of {NEEDS}), level {self.level!r} (of {LEVELS}), "
                f"x_kind {self.x_kind!r} (of {X_KINDS})"
            )

    def check(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``models.<key>`` settings; unknown keys are an error naming them."""
        unknown = set(cfg) - set(self.config_keys)
        if unknown:
            raise ModelConfigError(
                f"models.{self.key}: unknown setting(s) {sorted(unknown)}; allowed: {sorted(self.config_keys)}"
            )
        missing = set(self.config_keys) - set(cfg)
        if missing:
            raise ModelConfigError(
                f"models.{self.key}: missing setting(s) {sorted(missing)}: give every setting in params.yaml "
                "(that is where a model's defaults live)"
            )
        out = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in cfg.items()}
        if int(out.get("latent_dim", 1)) < 1:
            raise ModelConfigError(f"models.{self.key}.latent_dim must be >= 1")
        self.check_spanning(out)
        return out

    def check_spanning(self, cfg: Mapping[str, Any]) -> None:
        """Refuse settings that are fine one by one but not together (ModelConfigError naming them)."""
        if self.spanning is not None:
            self.spanning(self.key, cfg)


# ---- checks of settings together -------------------------------------------------------

#: how attention_mm fuses an audio token with its attended lyrics context
FUSIONS = ("residual", "gated")


def check_attention(key: str, fusion: str, heads: int, d: int, text_tokens: int, kernel: int) -> None:
    """Refuse an unknown ``fusion``, ``heads`` that do not divide the token width ``d``, or a bad kernel."""
    if fusion not in FUSIONS:
        raise ModelConfigError(f"models.{key}.fusion: {fusion!r} is not one of {', '.join(FUSIONS)}")
    if heads < 1 or d % heads:
        raise ModelConfigError(f"models.{key}.heads: {heads} must divide the token width channels[-1] = {d}")
    if text_tokens < 1 or kernel < 1 or kernel % 2 == 0:
        raise ModelConfigError(f"models.{key}: text_tokens must be >= 1 and kernel a positive odd int")


def _attention_spanning(key: str, cfg: Mapping[str, Any]) -> None:
    # the token width is the last conv block's channels
    check_attention(
        key, cfg["fusion"], cfg["heads"], list(cfg["channels"])[-1], cfg["text_tokens"], cfg["kernel"]
    )


def check_shared_private(key: str, cfg: Mapping[str, Any]) -> None:
    """Refuse private latents that leave no shared dimension, negative ones, or empty hidden layers."""
    latent, pa, pt = int(cfg["latent_dim"]), int(cfg["audio_private_dim"]), int(cfg["text_private_dim"])
    if min(pa, pt) < 0 or latent - pa - pt < 1 or not cfg["hidden"] or not cfg["text_hidden"]:
        raise ModelConfigError(
            f"models.{key}: latent_dim ({latent}) must exceed audio_private_dim + text_private_dim "
            f"({pa} + {pt}) by at least one shared dimension, private dims must be >= 0, hidden and "
            "text_hidden non-empty"
        )


# ---- one schema per model class ---------------------------------------------------------

AUTOENCODER = Schema("autoencoder", frozenset({"latent_dim", "hidden"}))
VAE = Schema("vae", frozenset({"latent_dim", "hidden"}))
BETA_VAE = Schema("beta_vae", frozenset({"latent_dim", "hidden", "beta", "free_bits"}))
CONV_VAE = Schema("conv_vae", frozenset({"latent_dim", "channels", "pool", "target"}), x_kind="logmel")
CONV1D_VAE = Schema("conv1d_vae", frozenset({"latent_dim", "channels", "kernel", "pool"}), x_kind="mfcc_seq")
CVAE = Schema("cvae", frozenset({"latent_dim", "hidden", "condition"}), needs=("cond",))
VADE = Schema("vade", frozenset({"latent_dim", "hidden", "n_components", "pretrain_steps"}))
MULTIMODAL = Schema("multimodal", frozenset({"latent_dim", "hidden", "text_hidden"}), needs=("text",))
#: the VAE's settings: the hybrid is the VAE on concat(audio, lyrics)
HYBRID = Schema("hybrid", VAE.config_keys, needs=("text",))
ATTENTION_MM = Schema(
    "attention_mm",
    frozenset({"latent_dim", "channels", "kernel", "pool", "heads", "text_tokens", "text_hidden", "fusion"}),
    needs=("text",),
    x_kind="mfcc_seq",
    spanning=_attention_spanning,
)
SHARED_PRIVATE = Schema(
    "shared_private",
    frozenset({"latent_dim", "audio_private_dim", "text_private_dim", "hidden", "text_hidden"}),
    needs=("text",),
    spanning=check_shared_private,
)
SONG_VAE = Schema(
    "song_vae",
    frozenset({"latent_dim", "hidden", "clips_per_song", "variational"}),
    needs=("song",),
    level="song",
)
