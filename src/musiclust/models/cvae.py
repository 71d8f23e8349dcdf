"""Conditional VAE: encoder and decoder both see a metadata condition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from musiclust.models import schema
from musiclust.models.base import Batch, LatentModel, ModelConfigError, clamp_logvar, mlp


class CVAE(LatentModel):
    """Conditional VAE (Sohn, Lee & Yan, "Learning Structured Output Representation using Deep
    Conditional Generative Models", NeurIPS 2015): q(z|x, c) and p(x|z, c) with a one-hot
    condition ``c`` taken from the metadata column ``condition`` (e.g. ``language``).

    This is the one model that sees a label: the latent is meant to explain what the condition
    does not, and evaluation flags its scores on the condition column as not unsupervised.
    A clip whose condition value is missing or unseen gets an all-zero condition vector; a
    corpus where the column is empty everywhere (e.g. no ``language`` for GTZAN) gives
    ``condition_values == []``, and the model is then an unconditioned VAE (and says so).
    """

    schema = schema.CVAE

    def __init__(
        self,
        in_dim: int,
        condition: str,
        condition_values: list[str] | tuple[str, ...],
        latent_dim: int,
        hidden: list[int] | tuple[int, ...],
    ) -> None:
        super().__init__(latent_dim=latent_dim)
        hidden = list(hidden)
        self.condition = condition
        self.condition_values = [str(v) for v in condition_values]
        n_cond = len(self.condition_values)
        self.encoder = mlp([in_dim + n_cond, *hidden], final_activation=True)
        self.mu_head = nn.Linear(hidden[-1], latent_dim)
        self.logvar_head = nn.Linear(hidden[-1], latent_dim)
        self.decoder = mlp([latent_dim + n_cond, *reversed(hidden), in_dim])

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> CVAE:
        cfg = cls.check_config(cfg)
        if "condition" not in cfg:
            raise ModelConfigError("models.cvae.condition: name the metadata column to condition on")
        return cls(in_dim=int(dims["audio_dim"]), condition_values=list(dims["condition_values"]), **cfg)

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        # encoder: concat(x (B, F), c (B, C)) -> (B, H) -> mu, logvar (B, D)
        h = self.encoder(torch.cat([batch["x"], batch["cond"].to(batch["x"].dtype)], dim=1))
        return self.mu_head(h), clamp_logvar(self.logvar_head(h))

    def decode(self, z: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        # decoder: concat(z (B, D), c (B, C)) -> (B, F)
        return {"x": self.decoder(torch.cat([z, batch["cond"].to(z.dtype)], dim=1))}
