"""Hybrid: an MLP VAE on audio features concatenated with the lyrics embedding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from musiclust.models.base import Batch, Standardizer
from musiclust.models.vae import VAE


class HybridVAE(VAE):
    """Early-fusion VAE (Kingma & Welling 2014 objective) on ``concat(audio, lyrics)``: the
    simple fusion baseline for :class:`~musiclust.models.multimodal.MultimodalVAE`.

    The lyrics embedding is standardized with train-split statistics and zeroed for songs
    without lyrics (``has_text`` = 0), so those songs are represented by audio alone.
    """

    key = "hybrid"
    needs = ("text",)

    def __init__(
        self,
        audio_dim: int,
        text_dim: int,
        latent_dim: int = 8,
        hidden: list[int] | tuple[int, ...] = (128, 64),
    ) -> None:
        super(VAE, self).__init__(
            audio_dim=audio_dim, text_dim=text_dim, latent_dim=latent_dim, hidden=list(hidden)
        )
        self.text_norm = Standardizer(text_dim)
        self._build(audio_dim + text_dim, latent_dim, list(hidden))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], dims: Mapping[str, Any]) -> HybridVAE:
        return cls(audio_dim=int(dims["audio_dim"]), text_dim=int(dims["text_dim"]), **cls.check_config(cfg))

    def fit_input_stats(self, train: Mapping[str, np.ndarray]) -> dict[str, Any]:
        mask = np.asarray(train["has_text"]) > 0.5
        self.text_norm.fit(np.asarray(train["text"])[mask])
        return {"text_norm": "per-dimension mean/std over train clips with lyrics (buffers text_norm.*)"}

    def inputs(self, batch: Batch) -> torch.Tensor:
        # concat(audio (B, F), masked standardized text (B, E)) -> (B, F + E)
        text = self.text_norm(batch["text"].float()) * batch["has_text"].float().unsqueeze(1)
        return torch.cat([batch["x"], text.to(batch["x"].dtype)], dim=1)
