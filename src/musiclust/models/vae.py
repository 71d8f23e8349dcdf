"""MLP variational autoencoder on a clip feature vector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from musiclust.models import schema
from musiclust.models.base import Batch, LatentModel, clamp_logvar, mlp


class VAE(LatentModel):
    """Variational autoencoder (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014).

    Gaussian encoder q(z|x) = N(mu(x), diag exp(logvar(x))), standard normal prior, Gaussian
    decoder with unit variance on standardized features (so the reconstruction term is half
    the summed squared error). Subclasses change the input (:meth:`inputs`) or the KL weight.
    """

    schema = schema.VAE

    def __init__(self, in_dim: int, latent_dim: int, hidden: list[int] | tuple[int, ...]) -> None:
        super().__init__(latent_dim=latent_dim)
        self._build(in_dim, latent_dim, list(hidden))

    def _build(self, in_dim: int, latent_dim: int, hidden: list[int]) -> None:
        self.encoder = mlp([in_dim, *hidden], final_activation=True)
        self.mu_head = nn.Linear(hidden[-1] if hidden else in_dim, latent_dim)
        self.logvar_head = nn.Linear(hidden[-1] if hidden else in_dim, latent_dim)
        self.decoder = mlp([latent_dim, *reversed(hidden), in_dim])

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> VAE:
        return cls(in_dim=int(dims["audio_dim"]), **cls.check_config(cfg))

    def inputs(self, batch: Batch) -> torch.Tensor:
        """The vector the encoder sees and the decoder reproduces ``(B, F)``."""
        return batch["x"]

    def targets(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"x": self.inputs(batch)}

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        # encoder: (B, F) -> (B, H) -> mu, logvar (B, D)
        h = self.encoder(self.inputs(batch))
        return self.mu_head(h), clamp_logvar(self.logvar_head(h))

    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # decoder: (B, D) -> (B, F)
        return {"x": self.decoder(z)}
