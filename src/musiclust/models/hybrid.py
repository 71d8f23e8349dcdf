"""Hybrid: an MLP VAE on audio features concatenated with the lyrics embedding."""

from __future__ import annotations

import torch

from musiclust.models import schema
from musiclust.models.base import Batch, Standardizer, TextInputs
from musiclust.models.vae import VAE


class HybridVAE(TextInputs, VAE):
    """Early-fusion VAE (Kingma & Welling 2014 objective) on ``concat(audio, lyrics)``: the
    simple fusion baseline for :class:`~musiclust.models.multimodal.MultimodalVAE`.

    The lyrics embedding is standardized with train-split statistics and zeroed for songs
    without lyrics (``has_text`` = 0), so those songs are represented by audio alone.
    """

    schema = schema.HYBRID

    def __init__(
        self,
        audio_dim: int,
        text_dim: int,
        latent_dim: int,
        hidden: list[int] | tuple[int, ...],
    ) -> None:
        super().__init__(
            audio_dim + text_dim,
            latent_dim,
            hidden,
        )
        self.text_norm = Standardizer(text_dim)

    def inputs(self, batch: Batch) -> torch.Tensor:
        # concat(audio (B, F), masked standardized text (B, E)) -> (B, F + E)
        text = self.masked_text(batch)
        return torch.cat([batch["x"], text.to(batch["x"].dtype)], dim=1)
