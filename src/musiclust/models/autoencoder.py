"""Deterministic MLP autoencoder: the baseline that shows what the KL term buys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from musiclust.models import schema
from musiclust.models.base import Batch, LatentModel, mlp


class AutoEncoder(LatentModel):
    """Deterministic MLP autoencoder (Hinton & Salakhutdinov, "Reducing the dimensionality of
    data with neural networks", Science 2006) on a standardized clip feature vector.

    No KL term: ``encode`` returns ``logvar=None`` and ``kl`` is zero.
    """

    schema = schema.AUTOENCODER

    def __init__(self, in_dim: int, latent_dim: int, hidden: list[int] | tuple[int, ...]) -> None:
        super().__init__(latent_dim=latent_dim)
        hidden = list(hidden)
        self.encoder = mlp([in_dim, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), in_dim])

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> AutoEncoder:
        return cls(in_dim=int(dims["audio_dim"]), **cls.check_config(cfg))

    def encode(self, batch: Batch) -> tuple[torch.Tensor, None]:
        # encoder: (B, F) -> (B, D)
        return self.encoder(batch["x"]), None

    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # decoder: (B, D) -> (B, F)
        return {"x": self.decoder(z)}
