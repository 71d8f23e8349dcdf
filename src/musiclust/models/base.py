"""The interface every model in the family shares.

A *batch* is a dict of tensors. Every model reads ``batch["x"]`` (the audio input:
a standardized feature vector ``(B, F)`` or a log-mel patch ``(B, n_mels, frames)``);
models that need more say so in :attr:`LatentModel.needs`:

- ``"text"``: ``batch["text"]`` lyrics embedding ``(B, E)`` and ``batch["has_text"]`` ``(B,)`` 0/1 mask;
- ``"cond"``: ``batch["cond"]`` one-hot condition ``(B, C)`` (only the CVAE; a label);
- ``"song"``: ``batch["song"]`` ``(B,)`` the song of each clip (an integer code stored as float32).
  Batches then hold whole songs (training and encoding never split a song across batches) and
  the model's examples are songs: ``encode``, ``decode``, ``targets`` and the loss are per song,
  :meth:`LatentModel.n_examples` counts songs, and :meth:`LatentModel.latent` gives every clip
  the latent of its song (``song_vae``, ``song_ae``).

Every model implements ``encode(batch) -> (mu, logvar)`` (``logvar`` is ``None`` for a
deterministic encoder), ``decode(z, batch) -> recon dict``, ``forward`` and
``loss(batch, kl_weight) -> {"recon", "kl", "total"}`` (batch means of per-example sums),
so one training loop and one encoding function serve them all. What the loop needs beyond
that is also on the interface, with defaults that most models keep:

- ``objective(recon, kl, kl_weight)``: how ``loss`` combines its parts into ``total`` (the loop
  uses it for the full-weight training total between two validation passes);
- ``pretrain_steps`` / ``pretraining`` / ``after_pretraining(codes, seed)``: an optional first
  training stage (VaDE's autoencoder pretraining and GMM initialisation of its prior);
- ``assign(batch)``: the model's own cluster of each example, or ``None`` (every model but VaDE);
- ``n_examples(batch)``: how many examples the loss averages over (clips; songs for a song-level
  model), the weight of a batch in the training means of the history;
- ``level``: ``"clip"``, or ``"song"`` for a model whose per-clip latents are its song's
  embedding repeated (written to info.json, so clip-level scores are not read as clip evidence).
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from musiclust.models.schema import ModelConfigError as ModelConfigError  # re-exported: its old home
from musiclust.models.schema import Schema

Batch = Mapping[str, torch.Tensor]

#: class attributes every model takes from its schema (:mod:`musiclust.models.schema`), never states itself
_FROM_SCHEMA = ("key", "config_keys", "needs", "level", "x_kind")


class LatentModel(nn.Module, abc.ABC):
    """Base class: records the constructor's arguments and defines the shared interface.

    The arguments of the outermost ``__init__`` (the class being built, primitives only) are
    recorded as they are given (:meth:`constructor_kwargs`), so a checkpoint rebuilds the model
    with ``cls(**checkpoint["constructor"])`` without any class restating them. Constructors
    have no defaults: a model's settings come from its ``models.<key>`` block in params.yaml.

    Each class names its :class:`~musiclust.models.schema.Schema` (``schema = schema.VAE``), and
    its ``key``, ``config_keys``, ``needs``, ``level`` and ``x_kind`` are set from it when the
    class is created; a class that states one of them itself is a TypeError.
    """

    #: the class's settings and inputs, the one place the five attributes below come from
    schema: ClassVar[Schema]
    #: the model key (params.yaml ``models.<key>``, registry, dvc stage, output folder)
    key: ClassVar[str]
    #: settings accepted from params.yaml ``models.<key>``
    config_keys: ClassVar[frozenset[str]]
    #: batch inputs beyond ``x`` ("text", "cond", "song")
    needs: ClassVar[tuple[str, ...]]
    #: what one latent describes: "clip", or "song" (every clip of a song gets the same latent)
    level: ClassVar[str]
    #: the kind of ``x``: "vector", "logmel" or "mfcc_seq"
    x_kind: ClassVar[str]
    #: KL weight of the objective (beta-VAE overrides it)
    beta: float = 1.0
    #: optimizer steps of a first training stage run before the main one (0: none); see after_pretraining
    pretrain_steps: int = 0
    #: True while the loop runs that first stage (a model's ``loss`` may then differ)
    pretraining: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        stated = sorted(set(cls.__dict__) & {*_FROM_SCHEMA, "check_config", "check_spanning"})
        if stated:
            raise TypeError(
                f"{cls.__name__} sets {stated}: a model's settings, inputs and their checks live in "
                "its schema (musiclust.models.schema)"
            )
        schema = getattr(cls, "schema", None)
        if not isinstance(schema, Schema):
            raise TypeError(
                f"{cls.__name__} names no schema (schema = schema.<NAME>, musiclust.models.schema)"
            )
        if "schema" in cls.__dict__:  # a subclass without its own schema keeps its parent's attributes
            for name in _FROM_SCHEMA:
                setattr(cls, name, getattr(schema, name))
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _recording(init)  # type: ignore[method-assign]

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def check_config(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``models.<key>`` settings (:meth:`Schema.check <musiclust.models.schema.Schema.check>`);
        unknown keys are an error naming them."""
        return cls.schema.check(cfg)

    @classmethod
    def check_spanning(cls, cfg: Mapping[str, Any]) -> None:
        """Refuse settings that are fine one by one but not together (ModelConfigError naming
        them; the schema's check). Each setting's own type and range is checked when params.yaml is loaded
        (:data:`musiclust.params.MODEL_SETTINGS`); what needs the data's shape, when the model is built."""
        cls.schema.check_spanning(cfg)

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> LatentModel:
        """Build from params settings plus data dimensions (``audio_dim``, ``text_dim``, ...)."""

    def constructor_kwargs(self) -> dict[str, Any]:
        """The kwargs that rebuild this model (stored in every checkpoint)."""
        return dict(self.__dict__["_constructor"])

    # ---- the shared interface ---------------------------------------------------------
    @abc.abstractmethod
    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Posterior mean and log-variance ``(B, D)`` each (logvar ``None`` if deterministic)."""

    @abc.abstractmethod
    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Reconstructions from latents ``z`` ``(B, D)``, keyed like the batch (``"x"``, ``"text"``)."""

    def forward(self, batch: Batch) -> dict[str, Any]:
        """Encode, sample (training) or take the mean (eval), decode."""
        mu, logvar = self.encode(batch)
        z = reparameterize(mu, logvar) if (self.training and logvar is not None) else mu
        return {"mu": mu, "logvar": logvar, "z": z, "recon": self.decode(z, batch)}

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        """What the decoder should reproduce, in model space (after any input normalization)."""
        return {"x": batch["x"]}

    def loss(self, batch: Batch, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Negative ELBO parts, batch means of per-example sums: recon, kl, total.

        ``total = recon + kl_weight * beta * kl``; ``kl_weight`` is the annealing factor.
        """
        out = self.forward(batch)
        recon = sse(out["recon"]["x"], self.targets(batch)["x"])
        kl = gaussian_kl(out["mu"], out["logvar"]) if out["logvar"] is not None else torch.zeros_like(recon)
        total = self.objective(recon, kl, kl_weight)
        return {"recon": recon.mean(), "kl": kl.mean(), "total": total.mean()}

    def objective(self, recon: Any, kl: Any, kl_weight: float = 1.0) -> Any:
        """The loss total from its parts (tensors or floats): ``recon + kl_weight * beta * kl``.

        :meth:`loss` uses it, and the training loop calls it on the mean recon and kl of the steps between validation passes
        (at ``kl_weight`` 1) so that the reported training total is the model's own objective.
        """
        return recon + kl_weight * self.beta * kl

    def after_pretraining(self, codes: np.ndarray, seed: int) -> dict[str, Any]:
        """Called once after the ``pretrain_steps`` stage with the TRAIN clips' codes ``(N, D)``
        (posterior means); returns a summary (primitives) for info.json. Default: nothing to do."""
        return {}

    @torch.no_grad()
    def assign(self, batch: Batch) -> torch.Tensor | None:
        """The model's own cluster ``(B,)`` int of each example, or ``None`` when it has none."""
        return None

    @torch.no_grad()
    def latent(self, batch: Batch) -> torch.Tensor:
        """Posterior mean ``(B, D)``, one row per clip of the batch: the representation used for clustering."""
        return self.encode(batch)[0]

    def n_examples(self, batch: Batch) -> int:
        """The number of examples :meth:`loss` averages over (the rows of ``x``: clips)."""
        return len(batch["x"])

    def fit_input_stats(self, train: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Fit any input normalization on TRAIN arrays into buffers; returns a description."""
        return {}


# ---- shared pieces -----------------------------------------------------------------


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _recording(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` that first records its bound arguments on the instance, when it is the outermost
    ``__init__`` running (a subclass calling ``super().__init__`` does not overwrite them)."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: LatentModel, *args: Any, **kwargs: Any) -> None:
        if "_constructor" not in self.__dict__:
            bound = sig.bind(self, *args, **kwargs)
            record = {k: _plain(v) for k, v in list(bound.arguments.items())[1:]}
            object.__setattr__(self, "_constructor", record)
        init(self, *args, **kwargs)

    return wrapper


def mlp(dims: list[int], final_activation: bool = False) -> nn.Sequential:
    """Linear layers ``dims[0] -> ... -> dims[-1]`` with LeakyReLU between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or final_activation:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def row_chunks(a: Any, size: int = 4096) -> Iterator[np.ndarray]:
    """Consecutive blocks of ``size`` rows of an array-like (numpy, or the training's lazy
    sharded arrays, which read only the rows asked for): a pass over every row in flat memory."""
    for start in range(0, len(a), size):
        yield np.asarray(a[start : start + size])


# logvar is clamped so exp() can neither overflow nor underflow to a zero variance
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps (Kingma & Welling 2014), eps ~ N(0, I) from torch's global RNG."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example ``(B,)``."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def sse(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Half the summed squared error per example ``(B,)``: Gaussian NLL with unit variance, up to a constant."""
    diff = (recon.float() - target.float()).flatten(1)
    return 0.5 * diff.pow(2).sum(dim=1)


def clamp_logvar(logvar: torch.Tensor) -> torch.Tensor:
    """Keep a predicted log-variance in a numerically safe range."""
    return logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)


class Standardizer(nn.Module):
    """Per-feature ``(x - mean) / std`` whose statistics are buffers (saved in the state_dict).

    Fit on training rows only; stored with the weights so encoding new inputs needs nothing else.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: np.ndarray) -> None:
        """Set the statistics from rows ``x`` ``(N, dim)`` (a constant column keeps std 1)."""
        if len(x) == 0:
            return  # nothing to fit on (e.g. no training song has lyrics): identity
        x = np.asarray(x, dtype=np.float64)
        self.set_stats(x.mean(axis=0), x.std(axis=0))

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Set the statistics directly (e.g. accumulated over chunks); std <= 1e-6 becomes 1."""
        std = np.asarray(std, dtype=np.float64)
        self.mean.copy_(torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TextInputs:
    """Mixin for the models that read the lyrics embedding (their schema's ``needs`` has "text").

    Builds from ``audio_dim``/``text_dim``, fits a per-dimension standardizer of the
    embedding on training clips that have lyrics, and gives the masked, standardized text
    (zero for songs without lyrics). The class must create ``self.text_norm = Standardizer(E)``.
    """

    text_norm: Standardizer

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # LatentModel's: sets needs from the schema
        if "text" not in getattr(cls, "needs", ()):
            raise TypeError(f"{cls.__name__} reads lyrics (TextInputs), but its schema's needs lack 'text'")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> Any:
        return cls(audio_dim=int(dims["audio_dim"]), text_dim=int(dims["text_dim"]), **cls.check_config(cfg))

    def fit_input_stats(self, train: Mapping[str, np.ndarray]) -> dict[str, Any]:
        mask = np.asarray(train["has_text"]) > 0.5
        self.text_norm.fit(np.asarray(train["text"])[mask])
        return {"text_norm": "per-dimension mean/std over train clips with lyrics (buffers text_norm.*)"}

    def masked_text(self, batch: Batch) -> torch.Tensor:
        """Standardized lyrics embedding, zero where a song has no lyrics: ``(B, E)``."""
        return self.text_norm(batch["text"].float()) * batch["has_text"].float().unsqueeze(1)
